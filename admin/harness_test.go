package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/parse"
	"github.com/hookrelay/hookrelay/schedule"
)

const token = "admin-token-for-tests-0123456789"

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// env is the delivery pipeline wired as serve wires it (fan-out, schedule, workers)
// on a real JetStream and Redis with a fake clock, and the admin API in front of it
// on a real listener.
type env struct {
	t         *testing.T
	ctx       context.Context
	nats      *testenv.NATS
	clock     *clock.Fake
	store     *schedule.Store
	sched     *schedule.Scheduler
	endpoints *deliver.EndpointStore
	set       *deliver.EndpointSet
	api       *httptest.Server
	redis     *testenv.Redis
	ingest    *ingest.Handler // the provider receiver (source acme-maya, token mayaToken)
}

const mayaToken = "maya-token-for-tests-0123"

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with change applied to the admin API's config.
func newEnvWith(t *testing.T, change func(*admin.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e := &env{t: t, ctx: ctx, nats: testenv.NewNATS(t), clock: clock.NewFake(t0)}
	rd := testenv.NewRedis(t)
	e.redis = rd
	must(t, natsx.EnsureStreams(ctx, e.nats.JS, e.nats.Topo, natsx.StreamConfig{}))
	var err error
	e.store, err = schedule.NewStore(rd.Client, schedule.StoreConfig{Keys: rkeys.Keyspace{Prefix: rd.Prefix}})
	must(t, err)
	e.endpoints, err = deliver.OpenEndpointStore(ctx, e.nats.JS, e.nats.Topo.EndpointsBucket(), 1, e.clock)
	must(t, err)
	e.set, err = e.endpoints.Watch(ctx)
	must(t, err)
	disp, err := deliver.NewDispatcher(ctx, deliver.DispatcherConfig{JS: e.nats.JS, Topology: e.nats.Topo, Endpoints: e.set, Store: e.store, Clock: e.clock})
	must(t, err)
	e.sched, err = schedule.New(schedule.Config{Store: e.store, Clock: e.clock, Dispatch: disp, Parallel: 32})
	must(t, err)
	index := deliver.NewEventIndex(rd.Client, rkeys.Keyspace{Prefix: rd.Prefix}, 0)
	fan, err := deliver.NewFanout(ctx, deliver.FanoutConfig{JS: e.nats.JS, Topology: e.nats.Topo, Endpoints: e.set, Schedule: e.store, Index: index, Clock: e.clock})
	must(t, err)
	sender, err := deliver.NewSender(deliver.SenderConfig{
		Guard:   deliver.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}),
		Timeout: 2 * time.Second, Clock: e.clock,
	})
	must(t, err)
	worker, err := deliver.NewWorker(deliver.WorkerConfig{
		JS: e.nats.JS, Topology: e.nats.Topo, Endpoints: e.set, Store: e.store, Sender: sender,
		Clock: e.clock, RetryDelay: 50 * time.Millisecond,
	})
	must(t, err)
	letters, err := deliver.NewDeadLetterStore(ctx, deliver.DeadLetterConfig{
		JS: e.nats.JS, Topology: e.nats.Topo, Schedule: e.store, Endpoints: e.endpoints, Notify: e.sched, Clock: e.clock,
	})
	must(t, err)
	events, err := deliver.NewEvents(ctx, deliver.EventsConfig{JS: e.nats.JS, Topology: e.nats.Topo, Index: index, Schedule: e.store, Endpoints: e.endpoints})
	must(t, err)
	marker := ingest.NewRedisMarker(rd.Client, rkeys.Keyspace{Prefix: rd.Prefix})
	t.Cleanup(marker.Close)
	e.ingest, err = ingest.New(ingest.Config{
		Sources:  []ingest.Source{{ID: "acme-maya", Provider: "paymaya", Merchant: "acme", Token: mayaToken}},
		Topology: e.nats.Topo, Clock: e.clock,
	}, e.nats.JS, marker)
	must(t, err)
	quarantine, err := ingest.NewQuarantine(ctx, e.nats.JS, e.ingest)
	must(t, err)
	redriver, err := deliver.NewRedriver(ctx, deliver.RedriveConfig{
		JS: e.nats.JS, Topology: e.nats.Topo, Endpoints: e.set, Schedule: e.store, Index: index, Notify: e.sched, Clock: e.clock,
	})
	must(t, err)
	acfg := admin.Config{Token: token, Endpoints: e.endpoints, Letters: letters, Events: events, Rejected: quarantine,
		Redrive: redriver, Live: e.set, Clock: e.clock}
	if change != nil {
		change(&acfg)
	}
	srv, err := admin.New(acfg)
	must(t, err)
	e.api = httptest.NewServer(srv)
	var wg sync.WaitGroup
	wg.Go(func() { _ = fan.Run(ctx) })
	wg.Go(func() { _ = worker.Run(ctx) })
	t.Cleanup(func() {
		e.api.Close()
		srv.Close()
		cancel()
		wg.Wait()
		sender.Close()
		e.store.Close()
	})
	return e
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// answer is an admin API response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// decode reads the answer's JSON body into v.
func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("decode %s: %v", a.body, err)
	}
}

// envelope is SPEC §9's error body.
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

// wantError checks an error answer: status, code in body and header.
func (a answer) wantError(t *testing.T, status int, code string) envelope {
	t.Helper()
	var e envelope
	if a.status != status {
		t.Fatalf("status %d, want %d (body %s)", a.status, status, a.body)
	}
	a.decode(t, &e)
	if e.Error.Code != code || a.header.Get("X-Application-Error-Code") != code || e.Error.Message == "" {
		t.Fatalf("error %+v (header %q), want code %s", e.Error, a.header.Get("X-Application-Error-Code"), code)
	}
	return e
}

// do sends a request with the admin token (tok "" sends none).
func (e *env) doAs(tok, method, path string, body any) answer {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		must(e.t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.api.URL+path, rd)
	must(e.t, err)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	must(e.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(e.t, err)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (e *env) do(method, path string, body any) answer {
	e.t.Helper()
	return e.doAs(token, method, path, body)
}

// createEndpoint creates an endpoint through the API. The answer comes once fan-out's
// live set has it (admin.Config.Live), so events published after it are routed to it.
func (e *env) createEndpoint(body map[string]any) {
	e.t.Helper()
	if a := e.do("POST", "/v1/endpoints", body); a.status != http.StatusCreated {
		e.t.Fatalf("create endpoint = %d %s", a.status, a.body)
	}
	id, _ := body["id"].(string)
	waitFor(e.t, func() bool { _, ok := e.set.Get(id); return ok }) // as the real set sees it
}

// publish stores an event on HOOKRELAY_EVENTS as ingest does.
func (e *env) publish(id, typ string) {
	e.t.Helper()
	ev := parse.Event{ID: id, Type: typ, Provider: "paymaya", Source: "acme-maya", Merchant: "acme", ReceivedAt: parse.Timestamp{Time: e.clock.Now()}}
	b, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: e.nats.Topo.EventSubject("paymaya", "acme-maya", typ), Data: b}
	if _, err := e.nats.JS.PublishMsgAsync(msg, jetstream.WithMsgID(id)); err != nil {
		e.t.Fatal(err)
	}
}

// waitPublished waits for every async publish to be stored.
func (e *env) waitPublished() {
	e.t.Helper()
	select {
	case <-e.nats.JS.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		e.t.Fatal("publishes not acknowledged in 30 s")
	}
}

// drain runs the schedule at the fake clock until nothing is due, leased or queued
// for ids, moving the clock to each next wake-up (at most rounds times).
func (e *env) drain(ids []string, final func(schedule.StateName) bool) {
	e.t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // generous: a loaded 2-core CI machine
	for {
		for {
			n, err := e.sched.Tick(e.ctx)
			must(e.t, err)
			if n == 0 {
				break
			}
		}
		pendingLeft := false
		for _, id := range ids {
			for {
				st, err := e.store.Get(e.ctx, id)
				if err == nil && final(st.Name) {
					break
				}
				if err == nil && st.Name == schedule.StatePending {
					pendingLeft = true
					break
				}
				if time.Now().After(deadline) {
					e.t.Fatalf("%s: %+v, %v after 3 minutes", id, st, err)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		if !pendingLeft {
			return
		}
		wake, ok, err := e.store.NextWake(e.ctx)
		must(e.t, err)
		if ok && wake.After(e.clock.Now()) {
			e.clock.Set(wake)
		}
	}
}

// merchant is a merchant endpoint that answers with status(webhook-id) and counts
// requests by webhook-id and status.
type merchant struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status func(webhookID string) int
	got    map[string][]int // webhook-id → statuses answered, in order
	reqs   []request
}

// request is one request a merchant got.
type request struct {
	header http.Header
	body   []byte
}

func newMerchant(t *testing.T, status func(string) int) *merchant {
	m := &merchant{status: status, got: map[string][]int{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		id := r.Header.Get("webhook-id")
		st := m.status(id)
		m.got[id] = append(m.got[id], st)
		m.reqs = append(m.reqs, request{r.Header.Clone(), body})
		m.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *merchant) requests() []request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]request(nil), m.reqs...)
}

func (m *merchant) setStatus(f func(string) int) {
	m.mu.Lock()
	m.status = f
	m.mu.Unlock()
}

// answered returns how many requests with webhook-id id got each status.
func (m *merchant) answered(id string) map[int]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[int]int{}
	for _, s := range m.got[id] {
		out[s]++
	}
	return out
}
