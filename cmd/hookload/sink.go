package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
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
	failed  int32 // answered 500 on purpose (--sink-fail)
	afterOK int32 // POSTs that came after one was answered 200: duplicates
}

// sinkEndpoint is one merchant endpoint: its verifier and what arrived.
type sinkEndpoint struct {
	id       string
	verifier *standardwebhooks.Webhook
	mu       sync.Mutex
	got      map[string]*arrival // by webhook-id
}

// Sink is the merchant: an HTTP server that verifies each delivery's Standard
// Webhooks signature, records its webhook-id and arrival time, counts repeats, and
// answers 200 (or 500 to a --sink-fail share of first attempts).
type Sink struct {
	epoch     time.Time
	endpoints map[string]*sinkEndpoint
	failShare uint64 // per million: first attempts answered 500
	srv       *http.Server
	ln        net.Listener

	okDistinct  atomic.Int64 // (endpoint, id) pairs answered 200 at least once
	posts       atomic.Int64
	badSig      atomic.Int64
	unknownPath atomic.Int64
	bufs        sync.Pool
}

// NewSink listens on a loopback port for the endpoints (ids and secrets).
func NewSink(epoch time.Time, ids, secrets []string, failShare float64, addr string) (*Sink, error) {
	s := &Sink{epoch: epoch, endpoints: map[string]*sinkEndpoint{}, failShare: uint64(failShare*1e6 + 0.5)}
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

// failFirst decides, from the id alone, whether an event's first attempt fails.
func (s *Sink) failFirst(id string) bool {
	if s.failShare == 0 {
		return false
	}
	var h uint64 = 14695981039346656037 // FNV-1a
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * 1099511628211
	}
	return mix64(h)%1_000_000 < s.failShare
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
	s.posts.Add(1)
	id := r.Header.Get("webhook-id")
	ep.mu.Lock()
	a := ep.got[id]
	if a == nil {
		a = &arrival{}
		ep.got[id] = a
	}
	a.posts++
	fail := a.posts == 1 && s.failFirst(id)
	switch {
	case fail:
		a.failed++
	case a.firstOK != 0:
		a.afterOK++
	default:
		a.firstOK = now
		s.okDistinct.Add(1)
	}
	ep.mu.Unlock()
	if fail {
		http.Error(w, "hookload: failing this first attempt on purpose", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// sinkCounts are the sink's totals.
type sinkCounts struct {
	Posts       int64 `json:"posts"`            // validly signed POSTs
	OKDistinct  int64 `json:"delivered"`        // (endpoint, event) pairs answered 200
	Duplicates  int64 `json:"duplicates"`       // POSTs after the pair was answered 200
	Failed      int64 `json:"answered_500"`     // answered 500 on purpose
	BadSig      int64 `json:"bad_signatures"`   // refused: signature did not verify
	UnknownPath int64 `json:"unknown_requests"` // not POST /hooks/<endpoint>
}

func (s *Sink) counts() sinkCounts {
	c := sinkCounts{Posts: s.posts.Load(), OKDistinct: s.okDistinct.Load(), BadSig: s.badSig.Load(), UnknownPath: s.unknownPath.Load()}
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

// each calls f for every (endpoint, id) the sink answered 200, holding its lock.
func (s *Sink) each(f func(ep, id string, a arrival)) {
	for _, e := range s.endpoints {
		e.mu.Lock()
		for id, a := range e.got {
			f(e.id, id, *a)
		}
		e.mu.Unlock()
	}
}
