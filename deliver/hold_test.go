package deliver_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/schedule"
)

// TestDisabledEndpointHolds: a disabled endpoint's delivery waits (no attempt counted,
// nothing sent, nothing dropped, no churn in the schedule) and goes out as soon as the
// endpoint is enabled again.
func TestDisabledEndpointHolds(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, func(e *deliver.Endpoint) { e.Enabled = false })
	p.publish("evt_held", "payment.succeeded")
	id := deliver.DeliveryID("evt_held", "acme-orders")
	if st := p.settle(id); st.Name != schedule.StateHeld || st.Attempt != 1 {
		t.Fatalf("held delivery = %s attempt %d, want held attempt 1", st.Name, st.Attempt)
	}
	for range 3 { // days pass while it is disabled
		p.clock.Advance(24 * time.Hour)
		if n := p.tick(); n != 0 {
			t.Fatalf("Tick dispatched %d while the endpoint is disabled", n)
		}
	}
	if n := len(m.got()); n != 0 {
		t.Fatalf("disabled endpoint got %d requests", n)
	}
	if _, err := p.endpoints.Update(p.ctx, "acme-orders", func(e *deliver.Endpoint) error { e.Enabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return p.state(id).Name == schedule.StatePending })
	if n := p.tick(); n != 1 {
		t.Fatalf("Tick after enable dispatched %d, want 1", n)
	}
	if st := p.settle(id); st.Name != schedule.StateDone || st.Attempt != 1 {
		t.Fatalf("after enable: %s attempt %d, want done at attempt 1", st.Name, st.Attempt)
	}
	if n := len(m.got()); n != 1 {
		t.Errorf("merchant got %d requests, want 1", n)
	}
}

// TestHeldThenDeleted: deliveries held for a disabled endpoint that is then deleted
// become dead letters instead of waiting forever.
func TestHeldThenDeleted(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, func(e *deliver.Endpoint) { e.Enabled = false })
	p.publish("evt_held_gone", "payment.succeeded")
	id := deliver.DeliveryID("evt_held_gone", "acme-orders")
	if st := p.settle(id); st.Name != schedule.StateHeld {
		t.Fatalf("state %s, want held", st.Name)
	}
	if err := p.endpoints.Delete(p.ctx, "acme-orders"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return p.state(id).Name == schedule.StatePending })
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDead {
		t.Fatalf("state %s, want dead", st.Name)
	}
	if letters := p.waitDeadLetters(1); letters[0].Reason != "endpoint deleted" {
		t.Errorf("dead letter = %+v", letters[0])
	}
	if n := len(m.got()); n != 0 {
		t.Errorf("merchant got %d requests", n)
	}
}

// TestDeletedEndpoint: a delivery whose endpoint was deleted becomes a dead letter
// (with its event) instead of waiting forever.
func TestDeletedEndpoint(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return 500 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_orphan", "payment.succeeded")
	id := deliver.DeliveryID("evt_orphan", "acme-orders")
	p.state(id) // fan-out has scheduled it
	p.tick()
	st := p.settle(id)
	if st.Name != schedule.StatePending || st.Attempt != 2 {
		t.Fatalf("after a failed attempt: %s attempt %d", st.Name, st.Attempt)
	}
	if err := p.endpoints.Delete(p.ctx, "acme-orders"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { _, ok := p.set.Get("acme-orders"); return !ok })
	p.clock.Set(st.Due)
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDead {
		t.Fatalf("state %s, want dead", st.Name)
	}
	letters := p.waitDeadLetters(1) // the letter follows the dead record
	if len(letters) != 1 || letters[0].Reason != "endpoint deleted" || len(letters[0].Event) == 0 || len(letters[0].Attempts) != 2 {
		t.Fatalf("dead letters = %+v", letters)
	}
	if n := len(m.got()); n != 1 {
		t.Errorf("merchant got %d requests, want only the first", n)
	}
}

// flakySchedule fails fan-out's first calls, as a Redis outage would.
type flakySchedule struct {
	deliver.Scheduler
	failures atomic.Int32
}

func (f *flakySchedule) ScheduleMany(ctx context.Context, ds []schedule.Delivery) ([]schedule.Scheduled, []error) {
	if f.failures.Add(-1) >= 0 {
		errs := make([]error, len(ds))
		for i := range errs {
			errs[i] = errors.New("injected: redis unreachable")
		}
		return make([]schedule.Scheduled, len(ds)), errs
	}
	return f.Scheduler.ScheduleMany(ctx, ds)
}

// TestFanoutRetriesWhenScheduleFails: an event whose deliveries cannot be scheduled is
// not acked; JetStream brings it back and it is delivered once the schedule answers.
func TestFanoutRetriesWhenScheduleFails(t *testing.T) {
	flaky := &flakySchedule{}
	flaky.failures.Store(2)
	p := newPipeline(t, pipelineOpts{schedule: func(s deliver.Scheduler) deliver.Scheduler { flaky.Scheduler = s; return flaky }})
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_outage", "payment.succeeded")
	id := deliver.DeliveryID("evt_outage", "acme-orders")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := p.store.Get(p.ctx, id); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("event never fanned out after the outage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if flaky.failures.Load() > 0 {
		t.Fatalf("scheduled without the injected failures being hit")
	}
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDone {
		t.Fatalf("state %s, want done", st.Name)
	}
	if n := len(m.got()); n != 1 {
		t.Errorf("merchant got %d requests, want 1", n)
	}
}

// flakyIndex fails the event index's first n writes.
type flakyIndex struct {
	deliver.Indexer
	failures atomic.Int32
}

func (f *flakyIndex) IndexMany(ctx context.Context, es []deliver.IndexEntry) []error {
	if f.failures.Add(-1) >= 0 {
		errs := make([]error, len(es))
		for i := range errs {
			errs[i] = errors.New("injected: index unavailable")
		}
		return errs
	}
	return f.Indexer.IndexMany(ctx, es)
}

// TestFanoutRetriesWhenIndexFails: an event that could not be indexed is not acked; it
// comes back, is indexed, and its delivery is made once.
func TestFanoutRetriesWhenIndexFails(t *testing.T) {
	flaky := &flakyIndex{}
	flaky.failures.Store(2)
	p := newPipeline(t, pipelineOpts{index: func(x deliver.Indexer) deliver.Indexer { flaky.Indexer = x; return flaky }})
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_noindex", "payment.succeeded")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if seq, err := p.index.Seq(p.ctx, "evt_noindex"); err == nil && seq == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("event never indexed after the index outage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if flaky.failures.Load() > 0 {
		t.Fatal("indexed without the injected failures being hit")
	}
	id := deliver.DeliveryID("evt_noindex", "acme-orders")
	if st := p.settle(id); st.Name != schedule.StateDone {
		t.Fatalf("state %s, want done", st.Name)
	}
	time.Sleep(100 * time.Millisecond) // a second job would arrive now
	if n := len(m.got()); n != 1 {
		t.Errorf("merchant got %d requests, want 1 (the redelivered event made no second job)", n)
	}
}

// TestDeletedWithQueuedJobs: an endpoint is deleted while jobs wait on its consumer
// (max_in_flight 1, a request in flight). None is stranded: the one in flight is
// recorded, the waiting ones become dead letters.
func TestDeletedWithQueuedJobs(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return 200 })
	m.hang = make(chan struct{})
	p.addEndpoint("acme-orders", m, func(e *deliver.Endpoint) { e.MaxInFlight = 1 })
	ids := []string{"evt_q1", "evt_q2", "evt_q3"}
	for _, id := range ids {
		p.publish(id, "payment.succeeded")
	}
	for _, id := range ids {
		if st := p.state(deliver.DeliveryID(id, "acme-orders")); st.Name != schedule.StateQueued {
			t.Fatalf("%s: state %s, want queued", id, st.Name)
		}
	}
	if err := p.endpoints.Delete(p.ctx, "acme-orders"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { _, ok := p.set.Get("acme-orders"); return !ok })
	close(m.hang)
	done, dead := 0, 0
	for _, id := range ids {
		switch st := p.settle(deliver.DeliveryID(id, "acme-orders")); st.Name {
		case schedule.StateDone:
			done++
		case schedule.StateDead:
			dead++
		default:
			t.Errorf("%s: state %s, want done or dead", id, st.Name)
		}
	}
	if done != len(m.got()) || done+dead != len(ids) || done > 1 {
		t.Errorf("%d done, %d dead, merchant got %d; want the one in flight done and the rest dead", done, dead, len(m.got()))
	}
	letters := p.waitDeadLetters(dead)
	for _, l := range letters {
		if l.Reason != "endpoint deleted" {
			t.Errorf("dead letter reason %q", l.Reason)
		}
	}
}

// TestEventGoneBeforeRetry: a delivery whose event has left HOOKRELAY_EVENTS (its max
// age, or deleted) before a retry becomes a dead letter saying so; nothing is sent.
func TestEventGoneBeforeRetry(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return 500 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_aged", "payment.succeeded")
	id := deliver.DeliveryID("evt_aged", "acme-orders")
	if st := p.settle(id); st.Name != schedule.StatePending || st.Attempt != 2 {
		t.Fatalf("after the first failure: %s attempt %d, want pending attempt 2", st.Name, st.Attempt)
	}
	if err := p.events.DeleteMsg(p.ctx, 1); err != nil {
		t.Fatal(err)
	}
	p.clock.Advance(time.Minute)
	p.tick()
	if st := p.settle(id); st.Name != schedule.StateDead {
		t.Fatalf("state %s, want dead", st.Name)
	}
	letters := p.waitDeadLetters(1)
	if l := letters[0]; l.ID != id || !strings.Contains(l.Reason, "no longer in HOOKRELAY_EVENTS") || len(l.Event) != 0 || len(l.Attempts) != 2 {
		t.Errorf("letter = %+v; want the reason, no event, both attempts", l)
	}
	if n := len(m.got()); n != 1 {
		t.Errorf("merchant got %d requests, want only the first attempt", n)
	}
}
