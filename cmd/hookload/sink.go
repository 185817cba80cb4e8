package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// arrival is what the sink saw of one event at one endpoint.
type arrival struct {
	firstOK int64 // ns since the epoch of the first POST answered 200; 0: none yet
	posts   int32 // POSTs with a valid signature
	failed  int32 // answered other than 200 on purpose (--sink-fail, the fault shares)
	afterOK int32 // POSTs that came after one was answered 200: duplicates
	gone    bool  // answered 410: every later POST is answered 410 too
	log     []sinkPost
}

// sinkEndpoint is one merchant endpoint: its verifier and what arrived.
type sinkEndpoint struct {
	id       string
	verifier *standardwebhooks.Webhook
	mu       sync.Mutex
	got      map[string]*arrival // by webhook-id
}

// SinkPolicy is how the merchant answers. Shares are per million. Outcomes are sticky,
// as a real merchant's would be: once an event was answered 200 every later POST of it
// is answered 200 (a duplicate, counted), once 410 always 410.
type SinkPolicy struct {
	FailFirst uint64        // first attempts answered 500
	Dead      uint64        // events answered 500 on every attempt (they exhaust the schedule)
	Gone      uint64        // POSTs answered 410 (the delivery is dead at once)
	Hang      uint64        // POSTs left unanswered until the client gives up (or HangMax: 503)
	TooMany   uint64        // POSTs answered 429
	Fail      uint64        // POSTs answered 500
	HangMax   time.Duration // how long a hang lasts at most
	CheckBody bool          // check that the body's event id is the webhook-id
}

// perMillion converts a share (0..1).
func perMillion(share float64) uint64 { return uint64(share*1e6 + 0.5) }

// Sink is the merchant: an HTTP server that verifies each delivery's Standard
// Webhooks signature, records its webhook-id and each POST's arrival and end, counts
// repeats, and answers as its SinkPolicy says.
type Sink struct {
	epoch     time.Time
	endpoints map[string]*sinkEndpoint
	policy    SinkPolicy
	srv       *http.Server
	ln        net.Listener

	okDistinct  atomic.Int64 // (endpoint, id) pairs answered 200 at least once
	posts       atomic.Int64
	badSig      atomic.Int64
	badBody     atomic.Int64 // body's event id is not the webhook-id (CheckBody)
	unknownPath atomic.Int64
	answered    [600]atomic.Int64 // POSTs by the status answered; [0]: hung until the client gave up
	bufs        sync.Pool
}

// NewSink listens on a loopback port for the endpoints (ids and secrets).
func NewSink(epoch time.Time, ids, secrets []string, policy SinkPolicy, addr string) (*Sink, error) {
	s := &Sink{epoch: epoch, endpoints: map[string]*sinkEndpoint{}, policy: policy}
	if s.policy.HangMax <= 0 {
		s.policy.HangMax = time.Minute
	}
	for i, id := range ids {
		v, err := standardwebhooks.NewWebhook(secrets[i])
		if err != nil {
			return nil, err
		}
		s.endpoints[id] = &sinkEndpoint{id: id, verifier: v, got: map[string]*arrival{}}
	}
	s.bufs.New = func() any { return new(bytes.Buffer) }
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 5 * time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// URL is the sink's base URL.
func (s *Sink) URL() string { return "http://" + s.ln.Addr().String() }

// Close stops the server.
func (s *Sink) Close() { _ = s.srv.Close() }

// hash01 is a number below a million drawn from id and n alone (FNV-1a, mixed), so
// every decision can be made again from the same inputs.
func hash01(id string, n uint64) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return mix64(h^(n*0x9e3779b97f4a7c15)) % 1_000_000
}

// failFirst decides, from the id alone, whether an event's first attempt fails.
func (s *Sink) failFirst(id string) bool {
	return s.policy.FailFirst != 0 && hash01(id, 0) < s.policy.FailFirst
}

// alwaysFails decides, from the id alone, whether every attempt of an event fails.
func (s *Sink) alwaysFails(id string) bool {
	return s.policy.Dead != 0 && hash01(id, 1<<40) < s.policy.Dead
}

// answer decides the status of POST number n (1-based) of an event not yet answered
// 200 or 410; 0 is a hang.
func (s *Sink) answer(id string, n int32) int {
	p := &s.policy
	if n == 1 && s.failFirst(id) || s.alwaysFails(id) {
		return http.StatusInternalServerError
	}
	r := hash01(id, uint64(n)+2)
	for _, c := range []struct {
		share  uint64
		status int
	}{{p.Gone, http.StatusGone}, {p.Hang, 0}, {p.TooMany, http.StatusTooManyRequests}, {p.Fail, http.StatusInternalServerError}} {
		if r < c.share {
			return c.status
		}
		r -= c.share
	}
	return http.StatusOK
}

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Since(s.epoch).Nanoseconds()
	ep := s.endpoints[strings.TrimPrefix(r.URL.Path, "/hooks/")]
	if ep == nil || r.Method != http.MethodPost {
		s.unknownPath.Add(1)
		http.Error(w, "no such endpoint", http.StatusNotFound)
		return
	}
	buf := s.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer s.bufs.Put(buf)
	if _, err := io.Copy(buf, io.LimitReader(r.Body, 4<<20)); err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	if err := ep.verifier.Verify(buf.Bytes(), r.Header); err != nil {
		s.badSig.Add(1)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	id := r.Header.Get("webhook-id")
	if s.policy.CheckBody {
		var ev struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(buf.Bytes(), &ev) != nil || ev.ID != id {
			s.badBody.Add(1)
			http.Error(w, "the body's event id is not the webhook-id", http.StatusBadRequest)
			return
		}
	}
	s.posts.Add(1)
	ep.mu.Lock()
	a := ep.got[id]
	if a == nil {
		a = &arrival{}
		ep.got[id] = a
	}
	a.posts++
	status := http.StatusOK
	switch {
	case a.firstOK != 0:
		a.afterOK++
	case a.gone:
		status = http.StatusGone
	default:
		status = s.answer(id, a.posts)
	}
	switch status {
	case http.StatusOK:
		if a.firstOK == 0 {
			a.firstOK = now
			s.okDistinct.Add(1)
		}
	case http.StatusGone:
		a.gone = true
		a.failed++
	default:
		a.failed++
	}
	i := len(a.log)
	a.log = append(a.log, sinkPost{At: now, Status: int16(status)})
	ep.mu.Unlock()

	switch status {
	case http.StatusOK:
		w.WriteHeader(http.StatusOK)
	case 0: // hang until the client gives up
		t := time.NewTimer(s.policy.HangMax)
		select {
		case <-r.Context().Done():
		case <-t.C:
			status = http.StatusServiceUnavailable
			http.Error(w, "hookload: hung on purpose", status)
		}
		t.Stop()
	default:
		http.Error(w, "hookload: failing this attempt on purpose", status)
	}
	s.answered[status].Add(1)
	end := time.Since(s.epoch).Nanoseconds()
	ep.mu.Lock()
	a.log[i].End = end
	a.log[i].Status = int16(status)
	ep.mu.Unlock()
}

// sinkCounts are the sink's totals.
type sinkCounts struct {
	Posts       int64            `json:"posts"`            // validly signed POSTs
	OKDistinct  int64            `json:"delivered"`        // (endpoint, event) pairs answered 200
	Duplicates  int64            `json:"duplicates"`       // POSTs after the pair was answered 200
	Failed      int64            `json:"answered_non_200"` // answered other than 200 on purpose
	Answered    map[string]int64 `json:"answered"`         // POSTs by the status answered ("hung": the client gave up)
	BadSig      int64            `json:"bad_signatures"`   // refused: signature did not verify
	BadBody     int64            `json:"bad_bodies"`       // refused: the body's event id is not the webhook-id
	UnknownPath int64            `json:"unknown_requests"` // not POST /hooks/<endpoint>
}

func (s *Sink) counts() sinkCounts {
	c := sinkCounts{Posts: s.posts.Load(), OKDistinct: s.okDistinct.Load(), BadSig: s.badSig.Load(), BadBody: s.badBody.Load(),
		UnknownPath: s.unknownPath.Load(), Answered: map[string]int64{}}
	for code := range s.answered {
		if n := s.answered[code].Load(); n > 0 {
			k := "hung"
			if code != 0 {
				k = strconv.Itoa(code)
			}
			c.Answered[k] = n
		}
	}
	for _, ep := range s.endpoints {
		ep.mu.Lock()
		for _, a := range ep.got {
			c.Duplicates += int64(a.afterOK)
			c.Failed += int64(a.failed)
		}
		ep.mu.Unlock()
	}
	return c
}

// firstOK returns when (ns since the epoch) id was first answered 200 at endpoint ep.
func (s *Sink) firstOK(ep, id string) (int64, bool) {
	e := s.endpoints[ep]
	e.mu.Lock()
	defer e.mu.Unlock()
	if a := e.got[id]; a != nil && a.firstOK != 0 {
		return a.firstOK, true
	}
	return 0, false
}

// each calls f for every (endpoint, id) the sink received, holding its lock; a's log
// must not be kept.
func (s *Sink) each(f func(ep, id string, a arrival)) {
	for _, e := range s.endpoints {
		e.mu.Lock()
		for id, a := range e.got {
			f(e.id, id, *a)
		}
		e.mu.Unlock()
	}
}
