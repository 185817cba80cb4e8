package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/internal/clock"
)

// Version goes into the User-Agent ("hookrelay/<Version>"); cmd/hookrelay sets it at
// start-up from its build version.
var Version = "dev"

// DefaultTimeout bounds one attempt (connect, TLS, request, response head and the
// recorded part of the body) when SenderConfig.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// MaxRecordedBody is how much of a response body an attempt records (and reads).
const MaxRecordedBody = 4 << 10

// drainLimit is how much more of a response body is read and discarded so the
// connection can be reused; a longer body costs the connection instead.
const drainLimit = 64 << 10

// Send errors recorded in Attempt.Err.
var (
	ErrNoSigner  = errors.New("deliver: request has no signer")
	ErrBadURL    = errors.New("deliver: endpoint url is not an absolute http(s) url")
	ErrBodyRead  = errors.New("deliver: reading response body")
	ErrTimeout   = errors.New("deliver: attempt timed out")
	errNoRequest = errors.New("deliver: building request")
)

// HTTPError is an endpoint's non-2xx answer.
type HTTPError struct {
	Status int
	// RetryAfter is the endpoint's Retry-After on 429 and 503, else 0.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	msg := "deliver: endpoint answered " + strconv.Itoa(e.Status)
	if t := http.StatusText(e.Status); t != "" {
		msg += " " + t
	}
	if e.Status >= 300 && e.Status < 400 {
		msg += " (redirects are not followed)"
	}
	if e.RetryAfter > 0 {
		msg += ", retry after " + e.RetryAfter.String()
	}
	return msg
}

// Request is one signed delivery to make.
type Request struct {
	URL string
	// Headers are the endpoint's extra headers. They cannot replace the headers
	// hookrelay sets (webhook-*, Content-Type, User-Agent): those are dropped.
	Headers map[string]string
	MsgID   string // webhook-id: the event id
	Body    []byte
	Signer  *Signer
	// Now is the webhook-timestamp and decides the rotation grace period; it comes
	// from the caller's clock. Zero means the Sender's clock.
	Now time.Time
}

// Attempt records one delivery attempt (SPEC §6). The caller adds the attempt number.
type Attempt struct {
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	Status   int           `json:"status"` // 0 = no response
	// Body is the first MaxRecordedBody bytes of the response body, as received.
	Body string `json:"body,omitempty"`
	Err  string `json:"error,omitempty"`
	// RetryAfter is the endpoint's Retry-After (seconds or HTTP date) on 429 and 503.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

// Outcome is what an attempt means for its delivery.
type Outcome int

// Outcomes. The zero Outcome is not one of them.
const (
	Delivered Outcome = iota + 1 // any 2xx
	Retry                        // a failed attempt: schedule the next one
	Dead                         // 410 Gone: dead letter at once
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Dead:
		return "dead"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Classify is the one place that decides what an attempt means: any 2xx is
// Delivered (even if reading the rest of the body then failed: the endpoint already
// accepted), 410 Gone is Dead, everything else is Retry — other statuses, 3xx (not
// followed), timeouts, connection and TLS errors, SSRF guard blocks.
func Classify(a Attempt) Outcome {
	switch {
	case a.Status >= 200 && a.Status < 300:
		return Delivered
	case a.Status == http.StatusGone:
		return Dead
	default:
		return Retry
	}
}

// SenderConfig configures NewSender. Zero values mean the defaults given per field.
type SenderConfig struct {
	// Guard decides which addresses may be dialled; nil blocks every non-public one.
	Guard *Guard
	// Timeout bounds one attempt; default DefaultTimeout.
	Timeout time.Duration
	// Clock stamps Attempt.Start and Duration and dates a Retry-After; nil is real.
	Clock     clock.Clock
	Transport TransportConfig
}

// Validate reports a bad config.
func (c SenderConfig) Validate() error {
	if c.Timeout < 0 {
		return fmt.Errorf("deliver: sender timeout %v is negative", c.Timeout)
	}
	return nil
}

// Sender makes signed POSTs through the SSRF-guarded transport. Safe for concurrent use.
type Sender struct {
	client    *http.Client
	transport *http.Transport
	timeout   time.Duration
	clock     clock.Clock
	userAgent string
}

// NewSender returns a Sender for cfg.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tr := NewTransport(cfg.Guard, cfg.Transport)
	return &Sender{
		client: &http.Client{
			Transport: tr,
			// A 3xx is the endpoint's answer, a failed attempt: following it would
			// also send the signed body somewhere the merchant did not configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		transport: tr,
		timeout:   orDuration(cfg.Timeout, DefaultTimeout),
		clock:     clock.Or(cfg.Clock),
		userAgent: "hookrelay/" + Version,
	}, nil
}

// Close drops idle kept-alive connections.
func (s *Sender) Close() { s.transport.CloseIdleConnections() }

// Send makes one attempt and records it; it never returns an error of its own, the
// failure is in Attempt.Err (classify it with Classify).
func (s *Sender) Send(ctx context.Context, r Request) Attempt {
	a := Attempt{Start: s.clock.Now()}
	finish := func(err error) Attempt {
		if err != nil {
			a.Err = err.Error()
		}
		a.Duration = s.clock.Now().Sub(a.Start)
		return a
	}

	if r.Signer == nil || r.Signer.Current.IsZero() {
		return finish(ErrNoSigner)
	}
	if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return finish(ErrBadURL)
	}
	now := r.Now
	if now.IsZero() {
		now = a.Start
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return finish(fmt.Errorf("%w: %v", errNoRequest, err))
	}
	for name, value := range r.Headers {
		if !reservedHeader(name) {
			req.Header.Set(name, value)
		}
	}
	req.Header.Set("webhook-id", r.MsgID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", r.Signer.Sign(r.MsgID, now, r.Body, now))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.userAgent)

	resp, err := s.client.Do(req)
	if err != nil {
		return finish(dialError(ctx, err))
	}
	defer resp.Body.Close()
	a.Status = resp.StatusCode

	body, readErr := io.ReadAll(io.LimitReader(resp.Body, MaxRecordedBody))
	a.Body = string(body)
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		a.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.clock.Now())
	}
	var failure error
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		failure = &HTTPError{Status: resp.StatusCode, RetryAfter: a.RetryAfter}
	}
	if readErr != nil {
		failure = errors.Join(failure, fmt.Errorf("%w: %v", ErrBodyRead, dialError(ctx, readErr)))
	}
	a = finish(failure)
	if readErr == nil {
		// Read (and throw away) a bounded rest so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	}
	return a
}

// dialError names a timeout plainly and otherwise keeps the transport's error text
// (connection refused, TLS verification, SSRF block, …). The *url.Error wrapper is
// dropped: it repeats the endpoint URL, whose query may hold a merchant's token.
func dialError(ctx context.Context, err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	}
	return err
}

// reservedHeader reports whether an endpoint's extra header would replace one
// hookrelay sets (the webhook-* namespace is Standard Webhooks', so hookrelay's);
// endpoint validation refuses them and Send drops them. Host and Content-Length are
// ignored by net/http anyway.
func reservedHeader(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	return strings.HasPrefix(n, "webhook-") || n == "content-type" || n == "user-agent" ||
		n == "host" || n == "content-length"
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date (which is
// measured from now). Unparseable, negative or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > math.MaxInt64/int64(time.Second) {
			return time.Duration(math.MaxInt64)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
