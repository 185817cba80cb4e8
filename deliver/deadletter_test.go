package deliver_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/schedule"
)

func (p *pipeline) letters() *deliver.DeadLetterStore {
	p.t.Helper()
	s, err := deliver.NewDeadLetterStore(p.ctx, deliver.DeadLetterConfig{
		JS: p.nats.JS, Topology: p.nats.Topo, Schedule: p.store, Endpoints: p.endpoints, Notify: p.sched, Clock: p.clock,
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// kill410 makes event id's delivery to endpoint a dead letter (the merchant answers
// 410 to its first request) and returns the delivery id.
func (p *pipeline) kill410(event, endpoint string) string {
	p.t.Helper()
	p.publish(event, "payment.succeeded")
	id := deliver.DeliveryID(event, endpoint)
	p.state(id)
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDead {
		p.t.Fatalf("%s: state %s, want dead", id, st.Name)
	}
	return id
}

// goneOnce answers 410 to each webhook-id's first request, 200 after.
func goneOnce() func(int, string) int {
	var mu sync.Mutex
	seen := map[string]bool{}
	return func(_ int, webhookID string) int {
		mu.Lock()
		defer mu.Unlock()
		if seen[webhookID] {
			return http.StatusOK
		}
		seen[webhookID] = true
		return http.StatusGone
	}
}

// TestReplayDeadLetter: a replayed letter is delivered once more, with the same
// webhook-id, a fresh schedule and the earlier attempts kept; eight replays of it at
// once deliver it once, and a second replay later is refused.
func TestReplayDeadLetter(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, goneOnce())
	p.addEndpoint("acme-orders", m, nil)
	id := p.kill410("evt_replay", "acme-orders")
	p.waitDeadLetters(1)
	dls := p.letters()

	got, next, err := dls.List(p.ctx, deliver.LetterFilter{}, 0, 10)
	if err != nil || len(got) != 1 || next != 0 {
		t.Fatalf("List = %d letters, next %d, %v; want 1, 0", len(got), next, err)
	}
	l := got[0]
	if l.ID != id || l.State != deliver.LetterOpen || l.FinalAttempt != 1 || !l.First.Equal(t0) || l.EventSeq != 1 || l.Endpoint.ID != "acme-orders" {
		t.Errorf("letter = %+v; want %s open, final attempt 1, first %v, event seq 1", l, id, t0)
	}

	p.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Go(func() { _, results[i] = dls.Replay(p.ctx, l.Seq) })
	}
	wg.Wait()
	var ok, already int
	for _, err := range results {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, deliver.ErrAlreadyReplayed):
			already++
		default:
			t.Errorf("Replay: %v", err)
		}
	}
	if ok != 1 || already != 7 {
		t.Fatalf("8 concurrent replays: %d replayed, %d already replayed; want 1 and 7", ok, already)
	}
	st := p.state(id)
	if st.Name != schedule.StatePending || st.Attempt != 1 || !st.First.Equal(p.clock.Now()) {
		t.Fatalf("after replay: %+v; want pending attempt 1 from now", st)
	}
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDone {
		t.Fatalf("after the replayed attempt: %s, want done", st.Name)
	}
	rec := m.got()
	if len(rec) != 2 || rec[0].webhookID != "evt_replay" || rec[1].webhookID != "evt_replay" || rec[1].status != 200 {
		t.Fatalf("merchant got %+v; want the 410 then one 200, both webhook-id evt_replay", rec)
	}
	if log, _ := p.store.Attempts(p.ctx, id); len(log) != 2 {
		t.Errorf("attempt log has %d records, want 2 (the dead one kept)", len(log))
	}
	if l, err := dls.Get(p.ctx, l.Seq); err != nil || l.State != deliver.LetterReplayed {
		t.Errorf("Get after replay = %s, %v; want replayed", l.State, err)
	}
	if _, err := dls.Replay(p.ctx, l.Seq); !errors.Is(err, deliver.ErrAlreadyReplayed) {
		t.Errorf("second Replay = %v, want ErrAlreadyReplayed", err)
	}
	if _, err := dls.Get(p.ctx, 999); !errors.Is(err, deliver.ErrDeadLetterNotFound) {
		t.Errorf("Get(999) = %v, want ErrDeadLetterNotFound", err)
	}
	p.clock.Advance(48 * time.Hour)
	p.tick()
	if n := len(m.got()); n != 2 {
		t.Errorf("merchant got %d requests in all, want 2", n)
	}
}

// TestReplayAfterRedisLost: with the schedule gone (Redis flushed), an open letter is
// still replayed: scheduled afresh from the event sequence the letter carries.
func TestReplayAfterRedisLost(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, goneOnce())
	p.addEndpoint("acme-orders", m, nil)
	id := p.kill410("evt_lost", "acme-orders")
	p.waitDeadLetters(1)
	flushPrefix(t, p)
	p.clock.Advance(time.Hour) // a replay's first attempt is later than the death
	dls := p.letters()
	got, _, err := dls.List(p.ctx, deliver.LetterFilter{State: deliver.LetterOpen}, 0, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("open letters after the flush = %d, %v; want 1", len(got), err)
	}
	if _, err := dls.Replay(p.ctx, got[0].Seq); err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if _, err := dls.Replay(p.ctx, got[0].Seq); !errors.Is(err, deliver.ErrAlreadyReplayed) {
		t.Errorf("second Replay = %v, want ErrAlreadyReplayed", err)
	}
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDone {
		t.Fatalf("state %s, want done", st.Name)
	}
	if rec := m.got(); len(rec) != 2 || rec[1].status != 200 || rec[1].webhookID != "evt_lost" {
		t.Errorf("merchant got %+v", rec)
	}
}

// flushPrefix deletes every Redis key of the pipeline, as FLUSHALL would on its own
// Redis (the shared one keeps other tests' keys).
func flushPrefix(t *testing.T, p *pipeline) {
	t.Helper()
	ctx := context.Background()
	keys, err := p.redis.Client.Keys(ctx, p.redis.Prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := p.redis.Client.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDeadLetterFilters: list by endpoint, type, state and time, and page through.
func TestDeadLetterFilters(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return http.StatusGone })
	p.addEndpoint("acme-orders", m, nil)
	p.addEndpoint("acme-ledger", m, nil)
	p.kill410("evt_a", "acme-orders")
	p.settle(deliver.DeliveryID("evt_a", "acme-ledger"))
	p.waitDeadLetters(2) // letters are dated when written, after the dead record
	p.clock.Advance(time.Hour)
	p.publish("evt_b", "payment.failed")
	p.state(deliver.DeliveryID("evt_b", "acme-orders"))
	p.tick()
	p.settle(deliver.DeliveryID("evt_b", "acme-orders"))
	p.settle(deliver.DeliveryID("evt_b", "acme-ledger"))
	p.waitDeadLetters(4)
	dls := p.letters()

	count := func(f deliver.LetterFilter) int {
		t.Helper()
		n := 0
		if _, err := dls.Scan(p.ctx, f, 0, func(deliver.StoredLetter) bool { n++; return true }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name string
		f    deliver.LetterFilter
		want int
	}{
		{"all", deliver.LetterFilter{}, 4},
		{"endpoint", deliver.LetterFilter{Endpoint: "acme-ledger"}, 2},
		{"unknown endpoint", deliver.LetterFilter{Endpoint: "nobody"}, 0},
		{"type", deliver.LetterFilter{Type: "payment.failed"}, 2},
		{"endpoint and type", deliver.LetterFilter{Endpoint: "acme-orders", Type: "payment.failed"}, 1},
		{"since", deliver.LetterFilter{Since: t0.Add(time.Hour)}, 2},
		{"until", deliver.LetterFilter{Until: t0.Add(time.Hour)}, 2},
		{"open", deliver.LetterFilter{State: deliver.LetterOpen}, 4},
		{"replayed", deliver.LetterFilter{State: deliver.LetterReplayed}, 0},
	} {
		if got := count(tc.f); got != tc.want {
			t.Errorf("%s: %d letters, want %d", tc.name, got, tc.want)
		}
	}

	var seen []uint64
	var after uint64
	for page := 0; ; page++ {
		got, next, err := dls.List(p.ctx, deliver.LetterFilter{}, after, 3)
		if err != nil || page > 3 {
			t.Fatalf("page %d: %v", page, err)
		}
		for _, l := range got {
			seen = append(seen, l.Seq)
		}
		if next == 0 {
			break
		}
		after = next
	}
	if len(seen) != 4 || seen[0] >= seen[1] || seen[2] >= seen[3] {
		t.Errorf("pages gave sequences %v; want 4, rising", seen)
	}
}

// TestReplayDeletedEndpoint: a letter whose endpoint is gone cannot be replayed.
func TestReplayDeletedEndpoint(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return http.StatusGone })
	p.addEndpoint("acme-orders", m, nil)
	p.kill410("evt_x", "acme-orders")
	p.waitDeadLetters(1)
	if err := p.endpoints.Delete(p.ctx, "acme-orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.letters().Replay(p.ctx, 1); !errors.Is(err, deliver.ErrNotReplayable) {
		t.Errorf("Replay = %v, want ErrNotReplayable", err)
	}
}
