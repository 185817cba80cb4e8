package ingest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// Tokens of the test sources.
const (
	mayaToken   = "maya-token-0123456789abcdef"
	paytiaToken = "paytia-token-0123456789abcdef"
)

// receivedAt is the time the goldens in parse/testdata were made with.
var receivedAt = time.Date(2026, 11, 21, 10, 0, 0, 123e6, time.UTC)

// harness is the real handler behind a real HTTP server, publishing to a real
// JetStream and marking in a real (or mini) Redis.
type harness struct {
	t       *testing.T
	nats    *testenv.NATS
	redis   *testenv.Redis
	clock   *clock.Fake
	cfg     ingest.Config
	handler *ingest.Handler
	srv     *httptest.Server
}

type option func(*harnessOpts)

type harnessOpts struct {
	cfg       ingest.Config
	streams   natsx.StreamConfig
	inProcess bool                                       // always an in-process NATS (to stop it)
	publisher func(jetstream.JetStream) ingest.Publisher // wraps the real JetStream
	marker    ingest.Marker                              // replaces the Redis marker
}

func withPublisher(f func(jetstream.JetStream) ingest.Publisher) option {
	return func(o *harnessOpts) { o.publisher = f }
}
func withStreams(s natsx.StreamConfig) option { return func(o *harnessOpts) { o.streams = s } }
func withInProcessNATS() option               { return func(o *harnessOpts) { o.inProcess = true } }
func withMarker(m ingest.Marker) option       { return func(o *harnessOpts) { o.marker = m } }
func withConfig(f func(*ingest.Config)) option {
	return func(o *harnessOpts) { f(&o.cfg) }
}

func newHarness(t *testing.T, opts ...option) *harness {
	t.Helper()
	o := harnessOpts{cfg: ingest.Config{
		Sources: []ingest.Source{
			{ID: "acme-maya", Provider: "paymaya", Merchant: "acme", Token: mayaToken},
			{ID: "acme-paytia", Provider: "paytia", Merchant: "acme", Token: paytiaToken},
			{ID: "fenced-maya", Provider: "paymaya", Merchant: "acme", Token: mayaToken,
				AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}},
			{ID: "local-maya", Provider: "paymaya", Merchant: "acme", Token: mayaToken,
				AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
		},
		PublishTimeout: 2 * time.Second,
	}}
	for _, f := range opts {
		f(&o)
	}
	h := &harness{t: t, clock: clock.NewFake(receivedAt)}
	if o.inProcess {
		h.nats = testenv.NewInProcessNATS(t)
	} else {
		h.nats = testenv.NewNATS(t)
	}
	h.redis = testenv.NewRedis(t)
	if err := natsx.EnsureStreams(context.Background(), h.nats.JS, h.nats.Topo, o.streams); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	var pub ingest.Publisher = h.nats.JS
	if o.publisher != nil {
		pub = o.publisher(h.nats.JS)
	}
	marker := o.marker
	if marker == nil {
		rm := ingest.NewRedisMarker(h.redis.Client, rkeys.Keyspace{Prefix: h.redis.Prefix})
		t.Cleanup(rm.Close)
		marker = rm
	}
	o.cfg.Topology = h.nats.Topo
	o.cfg.Clock = h.clock
	h.cfg = o.cfg
	handler, err := ingest.New(o.cfg, pub, marker)
	if err != nil {
		t.Fatalf("ingest.New: %v", err)
	}
	h.handler = handler
	h.srv = httptest.NewServer(handler)
	t.Cleanup(h.srv.Close)
	return h
}

// auth is one of the three ways a provider may present its token.
type auth int

const (
	authBasic auth = iota
	authBearer
	authQuery
	authNone
)

func (a auth) String() string { return [...]string{"basic", "bearer", "query", "none"}[a] }

// request is one provider call.
type request struct {
	method      string // default POST
	path        string // e.g. /ingest/paymaya/acme-maya
	contentType string
	body        string
	query       url.Values
	auth        auth
	token       string
	header      http.Header // extra headers
}

func (h *harness) do(r request) *http.Response {
	h.t.Helper()
	if r.method == "" {
		r.method = http.MethodPost
	}
	q := url.Values{}
	for k, v := range r.query {
		q[k] = v
	}
	if r.auth == authQuery {
		q.Set("token", r.token)
	}
	u := h.srv.URL + r.path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequest(r.method, u, strings.NewReader(r.body))
	if err != nil {
		h.t.Fatal(err)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	switch r.auth {
	case authBasic:
		req.SetBasicAuth("paymaya", r.token)
	case authBearer:
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	h.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func maya(body string) request {
	return request{path: "/ingest/paymaya/acme-maya", contentType: "application/json", body: body, token: mayaToken}
}

func paytia(form string) request {
	return request{path: "/ingest/paytia/acme-paytia", contentType: "application/x-www-form-urlencoded", body: form, token: paytiaToken}
}

// accepted decodes a 200 answer, failing the test on anything else.
func accepted(t *testing.T, resp *http.Response) ingest.Response {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
	}
	var r ingest.Response
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if !strings.HasPrefix(r.ID, "evt_") || len(r.ID) != 30 {
		t.Fatalf("id = %q, want evt_ and 26 characters", r.ID)
	}
	return r
}

// envelope is the SPEC §9 error body.
type envelope struct {
	Error struct {
		Code        string   `json:"code"`
		Message     string   `json:"message"`
		Details     []string `json:"details"`
		FieldErrors []struct {
			Field string `json:"field"`
			Error string `json:"error"`
		} `json:"fieldErrors"`
	} `json:"error"`
}

// refused checks an error answer: status, code in body and header, a message.
func refused(t *testing.T, resp *http.Response, status int, code string) envelope {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var e envelope
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not the envelope: %v", body, err)
	}
	if e.Error.Code != code {
		t.Errorf("error.code = %q, want %q", e.Error.Code, code)
	}
	if got := resp.Header.Get("X-Application-Error-Code"); got != code {
		t.Errorf("X-Application-Error-Code = %q, want %q", got, code)
	}
	if e.Error.Message == "" {
		t.Errorf("error.message is empty")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return e
}

// streamMsgs counts the messages in a stream.
func (h *harness) streamMsgs(stream string) uint64 {
	h.t.Helper()
	s, err := h.nats.JS.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}

// subjectMsgs counts the messages stored under one subject.
func (h *harness) subjectMsgs(stream, subject string) uint64 {
	h.t.Helper()
	s, err := h.nats.JS.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		h.t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Subjects[subject]
}

// lastMsg returns the last message stored under subject.
func (h *harness) lastMsg(stream, subject string) *jetstream.RawStreamMsg {
	h.t.Helper()
	s, err := h.nats.JS.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatalf("stream %s: %v", stream, err)
	}
	m, err := s.GetLastMsgForSubject(context.Background(), subject)
	if err != nil {
		h.t.Fatalf("last message on %s: %v", subject, err)
	}
	return m
}

// publisherFunc adapts a synchronous function to ingest.Publisher, for injecting
// faults: it runs in its own goroutine and resolves the future with its result.
type publisherFunc func(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)

func (f publisherFunc) PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	fut := &future{msg: msg, ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	go func() {
		ack, err := f(context.Background(), msg, opts...)
		if err != nil {
			fut.err <- err
			return
		}
		fut.ok <- ack
	}()
	return fut, nil
}

type future struct {
	msg *nats.Msg
	ok  chan *jetstream.PubAck
	err chan error
}

func (f *future) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *future) Err() <-chan error            { return f.err }
func (f *future) Msg() *nats.Msg               { return f.msg }

// seenMarkers lists the seen-marker keys in Redis.
func (h *harness) seenMarkers() []string {
	h.t.Helper()
	keys, err := h.redis.Client.Keys(context.Background(), h.redis.Prefix+"*:seen").Result()
	if err != nil {
		h.t.Fatalf("list seen markers: %v", err)
	}
	return keys
}

// waitSeenMarkers waits up to 5 s for exactly n seen markers.
func (h *harness) waitSeenMarkers(n int, when string) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for keys := h.seenMarkers(); len(keys) != n; keys = h.seenMarkers() {
		if time.Now().After(deadline) {
			h.t.Fatalf("seen markers %s: %v, want %d", when, keys, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
