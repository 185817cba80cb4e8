package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/parse"
	"github.com/hookrelay/hookrelay/schedule"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// merchant is a real HTTP endpoint scripted per test. It verifies every request with
// the independent Standard Webhooks library and records what it received.
type merchant struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(n int, webhookID string) int // status for the n-th request (1-based)
	hang   chan struct{}                     // when set, requests block until closed

	mu       sync.Mutex
	received []received
}

type received struct {
	webhookID string
	timestamp time.Time
	body      []byte
	status    int
}

func newMerchant(t *testing.T, answer func(n int, webhookID string) int) *merchant {
	t.Helper()
	m := &merchant{t: t, answer: answer}
	verifier, err := standardwebhooks.NewWebhook(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := verifier.VerifyIgnoringTimestamp(body, r.Header); err != nil {
			t.Errorf("merchant: signature does not verify: %v", err)
		}
		sec, err := strconv.ParseInt(r.Header.Get("webhook-timestamp"), 10, 64)
		if err != nil {
			t.Errorf("merchant: webhook-timestamp %q: %v", r.Header.Get("webhook-timestamp"), err)
		}
		ts := time.Unix(sec, 0).UTC()
		if m.hang != nil {
			select {
			case <-m.hang:
			case <-r.Context().Done():
			}
		}
		m.mu.Lock()
		n := len(m.received) + 1
		status := m.answer(n, r.Header.Get("webhook-id"))
		m.received = append(m.received, received{webhookID: r.Header.Get("webhook-id"), timestamp: ts, body: body, status: status})
		m.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(m.srv.Close)
	return m
}

func (m *merchant) got() []received {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]received(nil), m.received...)
}

// pipeline is fan-out, schedule, dispatch and workers wired as serve wires them, on a
// real JetStream and Redis, with a fake clock the test moves.
type pipeline struct {
	t         *testing.T
	nats      *testenv.NATS
	redis     *testenv.Redis
	index     *deliver.EventIndex // set when pipelineOpts.index is
	clock     *clock.Fake
	store     *schedule.Store
	sched     *schedule.Scheduler
	endpoints *deliver.EndpointStore
	set       *deliver.EndpointSet
	events    jetstream.Stream
	ctx       context.Context
}

type pipelineOpts struct {
	policy      schedule.Policy
	recorder    func(deliver.Recorder) deliver.Recorder
	schedule    func(deliver.Scheduler) deliver.Scheduler     // wraps fan-out's schedule
	fanoutJS    func(jetstream.JetStream) jetstream.JetStream // wraps fan-out's JetStream
	index       func(deliver.Indexer) deliver.Indexer         // gives fan-out an event index (wrapped)
	timeout     time.Duration
	ackWait     time.Duration
	keepAlive   time.Duration                                 // the worker's KeepAlive
	bookkeeping time.Duration                                 // the worker's Bookkeeping timeout
	workerJS    func(jetstream.JetStream) jetstream.JetStream // replaces the worker's JetStream
	pullExpiry  time.Duration                                 // the fan-out's and worker's PullExpiry
	log         *zap.Logger                                   // the fan-out's and worker's logger
}

func newPipeline(t *testing.T, opts pipelineOpts) *pipeline {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{t: t, nats: testenv.NewNATS(t), clock: clock.NewFake(t0), ctx: ctx}
	rd := testenv.NewRedis(t)
	p.redis = rd
	if err := natsx.EnsureStreams(ctx, p.nats.JS, p.nats.Topo, natsx.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	var err error
	p.store, err = schedule.NewStore(rd.Client, schedule.StoreConfig{Keys: rkeys.Keyspace{Prefix: rd.Prefix}, Policy: opts.policy})
	if err != nil {
		t.Fatal(err)
	}
	var rec deliver.Recorder = p.store
	if opts.recorder != nil {
		rec = opts.recorder(p.store)
	}
	p.endpoints = openStore(t, p.nats.JS, p.nats.Topo.EndpointsBucket(), p.clock)
	p.set, err = p.endpoints.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p.events, _ = p.nats.JS.Stream(ctx, p.nats.Topo.EventsStream())
	disp, err := deliver.NewDispatcher(ctx, deliver.DispatcherConfig{JS: p.nats.JS, Topology: p.nats.Topo, Endpoints: p.set, Store: rec, Clock: p.clock})
	if err != nil {
		t.Fatal(err)
	}
	p.sched, err = schedule.New(schedule.Config{Store: p.store, Clock: p.clock, Dispatch: disp, Parallel: 8})
	if err != nil {
		t.Fatal(err)
	}
	var fanSched deliver.Scheduler = p.store
	if opts.schedule != nil {
		fanSched = opts.schedule(p.store)
	}
	var fanJS = p.nats.JS
	if opts.fanoutJS != nil {
		fanJS = opts.fanoutJS(p.nats.JS)
	}
	var index deliver.Indexer
	if opts.index != nil {
		p.index = deliver.NewEventIndex(rd.Client, rkeys.Keyspace{Prefix: rd.Prefix}, 0)
		index = opts.index(p.index)
	}
	fan, err := deliver.NewFanout(ctx, deliver.FanoutConfig{JS: fanJS, Topology: p.nats.Topo, Endpoints: p.set, Schedule: fanSched, Index: index, Clock: p.clock, Logger: opts.log, PullExpiry: opts.pullExpiry})
	if err != nil {
		t.Fatal(err)
	}
	timeout := opts.timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	sender, err := deliver.NewSender(deliver.SenderConfig{
		Guard:   deliver.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}),
		Timeout: timeout,
		Clock:   p.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	workerJS := p.nats.JS
	if opts.workerJS != nil {
		workerJS = opts.workerJS(p.nats.JS)
	}
	worker, err := deliver.NewWorker(deliver.WorkerConfig{
		JS: workerJS, Topology: p.nats.Topo, Endpoints: p.set, Store: rec, Sender: sender,
		Clock: p.clock, RetryDelay: 50 * time.Millisecond, AckWait: opts.ackWait, Bookkeeping: opts.bookkeeping,
		KeepAlive: opts.keepAlive, PullExpiry: opts.pullExpiry, Logger: opts.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = fan.Run(ctx) })
	wg.Go(func() { _ = worker.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait(); sender.Close() })
	return p
}

// addEndpoint registers an endpoint for merchant acme pointing at m.
func (p *pipeline) addEndpoint(id string, m *merchant, change func(*deliver.Endpoint)) {
	p.t.Helper()
	e := validEndpoint(id)
	e.URL = m.srv.URL + "/hooks"
	if change != nil {
		change(&e)
	}
	if _, err := p.endpoints.Create(p.ctx, e); err != nil {
		p.t.Fatal(err)
	}
	eventually(p.t, func() bool { _, ok := p.set.Get(id); return ok })
}

// publish stores an event on HOOKRELAY_EVENTS as ingest does.
func (p *pipeline) publish(id, typ string) {
	p.t.Helper()
	ev := parse.Event{ID: id, Type: typ, Provider: "paymaya", Source: "acme-maya", Merchant: "acme", ReceivedAt: parse.Timestamp{Time: p.clock.Now()}}
	b, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: p.nats.Topo.EventSubject("paymaya", "acme-maya", typ), Data: b}
	if _, err := p.nats.JS.PublishMsg(p.ctx, msg, jetstream.WithMsgID(id)); err != nil {
		p.t.Fatal(err)
	}
}

// publishCopy stores the same event again under another Nats-Msg-Id.
func (p *pipeline) publishCopy(id, typ string) {
	p.t.Helper()
	ev := parse.Event{ID: id, Type: typ, Provider: "paymaya", Source: "acme-maya", Merchant: "acme", ReceivedAt: parse.Timestamp{Time: p.clock.Now()}}
	b, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: p.nats.Topo.EventSubject("paymaya", "acme-maya", typ), Data: b}
	if _, err := p.nats.JS.PublishMsg(p.ctx, msg, jetstream.WithMsgID(id+"-copy")); err != nil {
		p.t.Fatal(err)
	}
}

// state waits for the fan-out to have scheduled the delivery, then returns its state.
func (p *pipeline) state(id string) schedule.State {
	p.t.Helper()
	var st schedule.State
	eventually(p.t, func() bool {
		var err error
		st, err = p.store.Get(p.ctx, id)
		return err == nil
	})
	return st
}

// tick runs the scheduler at the fake now.
func (p *pipeline) tick() int {
	p.t.Helper()
	n, err := p.sched.Tick(p.ctx)
	if err != nil {
		p.t.Fatalf("Tick: %v", err)
	}
	return n
}

// settle waits until the delivery is neither leased nor queued (its attempt is
// recorded).
func (p *pipeline) settle(id string) schedule.State {
	p.t.Helper()
	var st schedule.State
	eventually(p.t, func() bool {
		st = p.state(id)
		return st.Name != schedule.StateLeased && st.Name != schedule.StateQueued
	})
	return st
}

// waitDeadLetters waits until at least n dead letters are stored, then returns all.
func (p *pipeline) waitDeadLetters(n int) []deliver.DeadLetter {
	p.t.Helper()
	var letters []deliver.DeadLetter
	eventually(p.t, func() bool { letters = p.deadLetters(); return len(letters) >= n })
	return letters
}

// deadLetters reads every dead letter.
func (p *pipeline) deadLetters() []deliver.DeadLetter {
	p.t.Helper()
	s, err := p.nats.JS.Stream(p.ctx, p.nats.Topo.DeadStream())
	if err != nil {
		p.t.Fatal(err)
	}
	info, _ := s.Info(p.ctx)
	var out []deliver.DeadLetter
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(p.ctx, seq)
		if err != nil {
			continue
		}
		var dl deliver.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			p.t.Fatal(err)
		}
		out = append(out, dl)
	}
	return out
}

var specOffsets = []time.Duration{0, time.Minute, 3 * time.Minute, 7 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 26 * time.Hour, 50 * time.Hour, 74 * time.Hour, 98 * time.Hour, 122 * time.Hour, 146 * time.Hour}

// TestAlwaysFailing: exactly 14 attempts at the SPEC §7 offsets, each started at its due
// time, then one dead letter carrying all 14, and nothing more even 30 days on.
func TestAlwaysFailing(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return 500 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_fail", "payment.succeeded")
	id := deliver.DeliveryID("evt_fail", "acme-orders")

	st := p.settle(id) // fan-out hands attempt 1 to the worker itself
	for st.Name == schedule.StatePending {
		p.clock.Set(st.Due)
		if n := p.tick(); n != 1 {
			t.Fatalf("Tick at %v dispatched %d, want 1", st.Due, n)
		}
		st = p.settle(id)
	}
	if st.Name != schedule.StateDead {
		t.Fatalf("final state %s, want dead", st.Name)
	}
	got := m.got()
	if len(got) != len(specOffsets) {
		t.Fatalf("merchant got %d attempts, want %d", len(got), len(specOffsets))
	}
	for i, r := range got {
		if off := r.timestamp.Sub(t0); off < specOffsets[i] || off > specOffsets[i]+time.Second {
			t.Errorf("attempt %d at offset %v, want %v (within 1 s)", i+1, off, specOffsets[i])
		}
		if r.webhookID != "evt_fail" {
			t.Errorf("attempt %d webhook-id %q", i+1, r.webhookID)
		}
	}
	p.clock.Set(t0.Add(30 * 24 * time.Hour))
	if n := p.tick(); n != 0 {
		t.Errorf("Tick after death dispatched %d", n)
	}
	time.Sleep(50 * time.Millisecond) // nothing is in flight; give a stray job a chance to show
	if n := len(m.got()); n != 14 {
		t.Errorf("merchant got %d attempts after death, want 14", n)
	}
	letters := p.waitDeadLetters(1) // the letter follows the dead record
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	dl := letters[0]
	if dl.ID != id || dl.EventID != "evt_fail" || dl.Endpoint.ID != "acme-orders" || len(dl.Attempts) != 14 || len(dl.Event) == 0 {
		t.Errorf("dead letter = %+v", dl)
	}
	for i, a := range dl.Attempts {
		if a.Attempt != i+1 || a.Status != 500 {
			t.Errorf("dead letter attempt %d = %+v", i+1, a)
		}
	}
}

// TestRecoversAtAttempt5: five attempts, delivered, no dead letter.
func TestRecoversAtAttempt5(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(n int, _ string) int {
		if n < 5 {
			return 503
		}
		return 204
	})
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_recover", "payment.failed")
	id := deliver.DeliveryID("evt_recover", "acme-orders")
	st := p.settle(id)
	for st.Name == schedule.StatePending {
		p.clock.Set(st.Due)
		p.tick()
		st = p.settle(id)
	}
	if st.Name != schedule.StateDone || st.Attempt != 5 {
		t.Fatalf("final state %s at attempt %d, want done at 5", st.Name, st.Attempt)
	}
	if n := len(m.got()); n != 5 {
		t.Errorf("merchant got %d requests, want 5", n)
	}
	if n := len(p.deadLetters()); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
	log, _ := p.store.Attempts(p.ctx, id)
	if len(log) != 5 {
		t.Errorf("attempt log has %d records, want 5", len(log))
	}
}

// TestGone: 410 is a dead letter after one attempt.
func TestGone(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return http.StatusGone })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_gone", "payment.succeeded")
	id := deliver.DeliveryID("evt_gone", "acme-orders")
	p.state(id)
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDead {
		t.Fatalf("state %s, want dead", st.Name)
	}
	letters := p.waitDeadLetters(1) // the letter follows the dead record
	if len(letters) != 1 || len(letters[0].Attempts) != 1 || letters[0].Attempts[0].Status != 410 {
		t.Fatalf("dead letters = %+v", letters)
	}
	p.clock.Advance(48 * time.Hour)
	if n := p.tick(); n != 0 || len(m.got()) != 1 {
		t.Errorf("after 410: %d dispatched, %d received", n, len(m.got()))
	}
}

// TestHangingEndpoint: an endpoint that never answers fails by timeout and does not
// hold up another merchant endpoint's deliveries.
//
// The bookkeeping timeout is shorter than the POST's, as in production where both are
// 10 s: the timed-out attempt must still be recorded (with a deadline of its own).
func TestHangingEndpoint(t *testing.T) {
	p := newPipeline(t, pipelineOpts{timeout: 300 * time.Millisecond, bookkeeping: 200 * time.Millisecond})
	slow := newMerchant(t, func(int, string) int { return 200 })
	slow.hang = make(chan struct{})
	t.Cleanup(func() { close(slow.hang) })
	fast := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-slow", slow, func(e *deliver.Endpoint) { e.MaxInFlight = 1 })
	p.addEndpoint("acme-fast", fast, nil)
	const n = 5
	for i := range n {
		p.publish("evt_h"+string(rune('a'+i)), "payment.succeeded")
	}
	for i := range n {
		p.state(deliver.DeliveryID("evt_h"+string(rune('a'+i)), "acme-fast"))
	}
	start := time.Now()
	for p.tick() > 0 {
	}
	eventually(t, func() bool { return len(fast.got()) == n })
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("fast endpoint took %v behind a hanging one", d)
	}
	id := deliver.DeliveryID("evt_ha", "acme-slow")
	st := p.settle(id)
	if st.Name != schedule.StatePending || st.Attempt != 2 {
		t.Errorf("hanging endpoint's delivery = %s attempt %d, want pending attempt 2 (timed out)", st.Name, st.Attempt)
	}
	log, _ := p.store.Attempts(p.ctx, id)
	var rec deliver.AttemptRecord
	if len(log) == 0 || json.Unmarshal(log[0], &rec) != nil || rec.Status != 0 || rec.Error == "" {
		t.Errorf("timed-out attempt record = %s", log)
	}
	time.Sleep(500 * time.Millisecond) // a job nak'd for want of a record would be sent again by now
	sent := 0
	for _, r := range slow.got() {
		if r.webhookID == "evt_ha" {
			sent++
		}
	}
	if sent != 1 {
		t.Errorf("hanging endpoint got evt_ha %d times, want once (attempt 1 only)", sent)
	}
}

// TestThousandEvents: 1,000 events, a merchant failing 30 % of first attempts at
// random, driven by the fake clock to the end: every event delivered, nothing dead,
// and any duplicate carries the same webhook-id as its original.
func TestThousandEvents(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	rng := rand.New(rand.NewPCG(7, 7))
	var mu sync.Mutex
	tried := map[string]bool{}
	m := newMerchant(t, func(_ int, id string) int {
		mu.Lock()
		defer mu.Unlock()
		first := !tried[id]
		tried[id] = true
		if first && rng.IntN(100) < 30 {
			return 500
		}
		return 200
	})
	p.addEndpoint("acme-orders", m, nil)
	const n = 1000
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("evt_%04d", i)
		p.publish(ids[i], "payment.succeeded")
	}
	for _, id := range ids {
		p.state(deliver.DeliveryID(id, "acme-orders"))
	}
	for round := 0; ; round++ {
		if round > 50 {
			t.Fatal("schedule did not drain in 50 rounds")
		}
		for p.tick() > 0 {
		}
		for _, id := range ids {
			p.settle(deliver.DeliveryID(id, "acme-orders"))
		}
		wake, ok, err := p.store.NextWake(p.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if wake.After(p.clock.Now()) {
			p.clock.Set(wake)
		}
	}
	ok2xx := map[string]int{}
	failed := 0
	for _, r := range m.got() {
		if r.status == 200 {
			ok2xx[r.webhookID]++
		} else {
			failed++
		}
		if !strings.HasPrefix(r.webhookID, "evt_") {
			t.Fatalf("unknown webhook-id %q", r.webhookID)
		}
	}
	for _, id := range ids {
		if ok2xx[id] == 0 {
			t.Errorf("%s never delivered", id)
		}
		if st := p.state(deliver.DeliveryID(id, "acme-orders")); st.Name != schedule.StateDone {
			t.Errorf("%s state %s, want done", id, st.Name)
		}
	}
	dups := 0
	for _, c := range ok2xx {
		dups += c - 1
	}
	if failed < 200 || failed > 400 {
		t.Errorf("%d first attempts failed, want about 300", failed)
	}
	if l := len(p.deadLetters()); l != 0 {
		t.Errorf("%d dead letters, want 0", l)
	}
	t.Logf("%d events delivered, %d failed first attempts retried, %d duplicate deliveries (same webhook-id)", len(ok2xx), failed, dups)
}
