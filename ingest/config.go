// Package ingest is the providers' side of hookrelay: the HTTP receivers at
// POST /ingest/{provider}/{source}. A request is limited, authenticated against its
// source, parsed into an event, deduplicated and published to JetStream, and answered
// 2xx only after the PubAck. A body that cannot be parsed is answered 400 and kept,
// raw, in HOOKRELAY_REJECTED. See SPEC §2.
package ingest

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/parse"
)

// Defaults for Config.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultPublishTimeout = 3 * time.Second
	DefaultSeenTimeout    = 250 * time.Millisecond
	DefaultRetryAfter     = 5 * time.Second
)

// Config configures a Handler. Zero values take the defaults noted.
type Config struct {
	Sources []Source

	// MaxBodyBytes caps a request body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for a JetStream PubAck; past it the provider gets
	// 503 with Retry-After. Default 3 s.
	PublishTimeout time.Duration
	// SeenTimeout bounds the Redis look-up of the seen marker; past it the request goes
	// on to JetStream, whose duplicate window still dedupes. Default 250 ms.
	SeenTimeout time.Duration
	// RetryAfter is the Retry-After sent with a 503. Default 5 s.
	RetryAfter time.Duration
	// TrustedProxies are the load balancers in front: a request from one of them is
	// matched against a source's AllowCIDRs by the nearest untrusted address in its
	// X-Forwarded-For. Empty: the TCP peer is the client, and the header is ignored.
	TrustedProxies []netip.Prefix

	Topology natsx.Topology
	Clock    clock.Clock // nil = real
	Logger   *zap.Logger // nil = no logs
	Observer Observer    // nil = not measured
}

// Observer is told what each provider request came to (metrics).
type Observer interface {
	// IngestRequest: one request to /ingest/{provider}/{source}, answered after d.
	// provider and source are "unknown" when not configured (their values come from
	// the URL); outcome is "accepted", "duplicate", or the error code of the answer.
	IngestRequest(provider, source, outcome string, d time.Duration)
	// PublishFailed: a JetStream publish to stream failed (not a message too large).
	PublishFailed(stream string)
}

type nopObserver struct{}

func (nopObserver) IngestRequest(string, string, string, time.Duration) {}
func (nopObserver) PublishFailed(string)                                {}

// Source is one provider account of one merchant: who may post to
// /ingest/{Provider}/{ID} and how they prove it.
type Source struct {
	ID       string
	Provider string // parse.ProviderPayMaya or parse.ProviderPaytia
	Merchant string
	// Token is the inbound credential, accepted as the HTTP Basic password, ?token=, or
	// Authorization: Bearer. Compared in constant time.
	Token string
	// PreviousToken, when set, is accepted too: during a rotation the provider may
	// still send the old token until its settings change. Remove it once they have.
	PreviousToken string
	// AllowCIDRs, when not empty, are the only client networks accepted.
	AllowCIDRs []netip.Prefix
}

// Validate reports every problem with the sources.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range c.Sources {
		at := fmt.Sprintf("sources[%d]", i)
		if !natsx.ValidID(s.ID) {
			errs = append(errs, fmt.Errorf("%s.id %q: want lower-case letters, digits, '-' or '_' (at most 64)", at, s.ID))
		}
		if seen[s.ID] {
			errs = append(errs, fmt.Errorf("%s.id %q: used twice", at, s.ID))
		}
		seen[s.ID] = true
		if s.Provider != parse.ProviderPayMaya && s.Provider != parse.ProviderPaytia {
			errs = append(errs, fmt.Errorf("%s.provider %q: want %q or %q", at, s.Provider, parse.ProviderPayMaya, parse.ProviderPaytia))
		}
		if !natsx.ValidID(s.Merchant) {
			errs = append(errs, fmt.Errorf("%s.merchant %q: want lower-case letters, digits, '-' or '_'", at, s.Merchant))
		}
		if len(s.Token) < 16 {
			errs = append(errs, fmt.Errorf("%s.token: must be at least 16 characters (is its environment variable set?)", at))
		}
		if s.PreviousToken != "" && len(s.PreviousToken) < 16 {
			errs = append(errs, fmt.Errorf("%s.previous_token: must be at least 16 characters, or empty", at))
		}
	}
	if c.MaxBodyBytes < 0 || c.PublishTimeout < 0 || c.SeenTimeout < 0 || c.RetryAfter < 0 {
		errs = append(errs, errors.New("ingest limits and timeouts must not be negative"))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.SeenTimeout == 0 {
		c.SeenTimeout = DefaultSeenTimeout
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	c.Clock = clock.Or(c.Clock)
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Observer == nil {
		c.Observer = nopObserver{}
	}
	return c
}
