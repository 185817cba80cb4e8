package deliver_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/schedule"
)

// dying wraps the schedule store and "kills the process" once at a chosen point: the
// call hangs, as a SIGKILLed worker goes silent (no nak, no ack), until the test ends.
// JetStream then redelivers the job after AckWait, as it would to a restarted worker.
type dying struct {
	deliver.Recorder
	point   string // "before-record", "after-record", "reply-lost" (recorded; the call fails at once)
	op      string // which call: "succeed", "kill", "fail"
	fired   atomic.Bool
	release chan struct{}
}

// newCrashPipeline is a pipeline whose store dies once at point/op. The hung call is
// released when the test ends, before the pipeline shuts down (cleanups run last
// registered first), so the worker's shutdown can finish.
func newCrashPipeline(t *testing.T, point, op string) *pipeline {
	return newCrashPipelineOpts(t, point, op, pipelineOpts{ackWait: 300 * time.Millisecond})
}

func newCrashPipelineOpts(t *testing.T, point, op string, opts pipelineOpts) *pipeline {
	d := &dying{point: point, op: op, release: make(chan struct{})}
	opts.recorder = func(r deliver.Recorder) deliver.Recorder { d.Recorder = r; return d }
	p := newPipeline(t, opts)
	t.Cleanup(func() { close(d.release) })
	return p
}

func (d *dying) die() error {
	<-d.release
	return errors.New("injected: the process died here")
}

func (d *dying) at(op string) bool { return op == d.op && d.fired.CompareAndSwap(false, true) }

func (d *dying) Succeed(ctx context.Context, id string, attempt int, rec []byte) (bool, error) {
	if d.at("succeed") {
		if d.point == "after-record" {
			_, _ = d.Recorder.Succeed(ctx, id, attempt, rec)
		}
		return false, d.die()
	}
	return d.Recorder.Succeed(ctx, id, attempt, rec)
}

func (d *dying) Kill(ctx context.Context, id string, attempt int, now time.Time, rec []byte) (bool, error) {
	if d.at("kill") {
		if d.point == "reply-lost" {
			_, _ = d.Recorder.Kill(ctx, id, attempt, now, rec)
			return false, errors.New("injected: the reply was lost")
		}
		if d.point == "after-record" {
			_, _ = d.Recorder.Kill(ctx, id, attempt, now, rec)
		}
		return false, d.die()
	}
	return d.Recorder.Kill(ctx, id, attempt, now, rec)
}

func (d *dying) Fail(ctx context.Context, id string, attempt int, now time.Time, rec []byte) (schedule.FailResult, error) {
	if d.at("fail") && d.point == "reply-lost" {
		_, _ = d.Recorder.Fail(ctx, id, attempt, now, rec)
		return schedule.FailResult{}, errors.New("injected: the reply was lost")
	}
	return d.Recorder.Fail(ctx, id, attempt, now, rec)
}

// TestRecordReplyLost: the record that makes a delivery dead ran in Redis, but its
// reply was lost (a timeout), so the worker's retry of it finds the delivery already
// dead: "stale". The dead letter is still written, once: for a 410 (Kill) and for the
// last attempt of the schedule (Fail).
func TestRecordReplyLost(t *testing.T) {
	for _, tc := range []struct {
		name, op string
		status   int
	}{{"410 Gone", "kill", 410}, {"schedule exhausted", "fail", 500}} {
		t.Run(tc.name, func(t *testing.T) {
			d := &dying{point: "reply-lost", op: tc.op, release: make(chan struct{})}
			t.Cleanup(func() { close(d.release) })
			p := newPipeline(t, pipelineOpts{
				recorder: func(r deliver.Recorder) deliver.Recorder { d.Recorder = r; return d },
				policy:   schedule.Policy{Delays: []time.Duration{time.Minute}, GiveUpAfter: time.Second},
			})
			m := newMerchant(t, func(int, string) int { return tc.status })
			p.addEndpoint("acme-orders", m, nil)
			p.publish("evt_lost_reply", "payment.succeeded")
			id := deliver.DeliveryID("evt_lost_reply", "acme-orders")
			if st := p.settle(id); st.Name != schedule.StateDead || st.Attempt != 1 {
				t.Fatalf("state %s attempt %d, want dead at 1", st.Name, st.Attempt)
			}
			eventually(t, func() bool { return len(p.deadLetters()) == 1 })
			if !d.fired.Load() {
				t.Fatal("the injected fault never fired")
			}
			time.Sleep(300 * time.Millisecond)
			if n := len(p.deadLetters()); n != 1 {
				t.Errorf("%d dead letters, want 1", n)
			}
			if n := len(m.got()); n != 1 {
				t.Errorf("merchant got %d requests, want 1", n)
			}
		})
	}
}

// TestCrashAfterPOSTBeforeRecord: the merchant got the POST, the process died before
// recording it. The job comes again and the merchant gets a duplicate with the same
// webhook-id: at least once, nothing lost.
func TestCrashAfterPOSTBeforeRecord(t *testing.T) {
	p := newCrashPipeline(t, "before-record", "succeed")
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_crash1", "payment.succeeded")
	id := deliver.DeliveryID("evt_crash1", "acme-orders")
	p.state(id)
	p.tick()
	eventually(t, func() bool { return p.state(id).Name == schedule.StateDone })
	got := m.got()
	if len(got) != 2 || got[0].webhookID != "evt_crash1" || got[1].webhookID != "evt_crash1" {
		t.Fatalf("merchant got %+v, want the same webhook-id twice", got)
	}
}

// TestCrashAfterRecordBeforeAck: the outcome was recorded, the ack never sent. The job
// comes again; the fence sees it finished and it is not sent a second time.
func TestCrashAfterRecordBeforeAck(t *testing.T) {
	p := newCrashPipeline(t, "after-record", "succeed")
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_crash2", "payment.succeeded")
	id := deliver.DeliveryID("evt_crash2", "acme-orders")
	p.state(id)
	p.tick()
	eventually(t, func() bool { return p.state(id).Name == schedule.StateDone })
	time.Sleep(600 * time.Millisecond) // past two AckWaits: the redelivered job was handled
	if n := len(m.got()); n != 1 {
		t.Fatalf("merchant got %d requests, want 1", n)
	}
}

// TestCrashAfterKillBeforeLetter: a 410 was recorded dead, the process died before
// writing the dead letter. The redelivered job writes it; exactly one letter.
func TestCrashAfterKillBeforeLetter(t *testing.T) {
	p := newCrashPipeline(t, "after-record", "kill")
	m := newMerchant(t, func(int, string) int { return 410 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_crash3", "payment.succeeded")
	id := deliver.DeliveryID("evt_crash3", "acme-orders")
	p.state(id)
	p.tick()
	eventually(t, func() bool { return len(p.deadLetters()) == 1 })
	time.Sleep(600 * time.Millisecond)
	if n := len(p.deadLetters()); n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
	if n := len(m.got()); n != 1 {
		t.Errorf("merchant got %d requests, want 1", n)
	}
}

// TestCrashAfterClaimBeforePublish: a scheduler claimed a retry and died before
// publishing its job. Once the lease expires another tick reclaims and dispatches it.
func TestCrashAfterClaimBeforePublish(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(n int, _ string) int {
		if n == 1 {
			return 503
		}
		return 200
	})
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_crash4", "payment.succeeded")
	id := deliver.DeliveryID("evt_crash4", "acme-orders")
	st := p.settle(id)
	if st.Name != schedule.StatePending || st.Attempt != 2 {
		t.Fatalf("after attempt 1: %s attempt %d, want pending attempt 2", st.Name, st.Attempt)
	}
	p.clock.Set(st.Due)
	claimed, err := p.store.Claim(p.ctx, p.clock.Now(), 10, schedule.DefaultLease) // ... and the claimer dies
	if err != nil || len(claimed) != 1 {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	if n := p.tick(); n != 0 {
		t.Fatalf("Tick during the lease dispatched %d, want 0", n)
	}
	p.clock.Advance(schedule.DefaultLease + time.Second)
	if n := p.tick(); n != 1 {
		t.Fatalf("Tick after the lease dispatched %d, want 1", n)
	}
	if st := p.settle(id); st.Name != schedule.StateDone || st.Attempt != 2 {
		t.Fatalf("state %s attempt %d, want done at 2", st.Name, st.Attempt)
	}
	if n := len(m.got()); n != 2 {
		t.Errorf("merchant got %d requests, want 2", n)
	}
}

// TestEventRedelivered: the same event on the stream twice (fan-out died before its
// ack, or a copy slipped past dedupe) makes one delivery.
func TestEventRedelivered(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_twice", "payment.succeeded")
	p.publishCopy("evt_twice", "payment.succeeded")
	id := deliver.DeliveryID("evt_twice", "acme-orders")
	p.state(id)
	eventually(t, func() bool {
		info, _ := p.events.Info(p.ctx)
		return info != nil && info.State.Msgs == 2
	})
	time.Sleep(100 * time.Millisecond) // let fan-out see the copy
	for p.tick() > 0 {
	}
	eventually(t, func() bool { return p.state(id).Name == schedule.StateDone })
	if n := len(m.got()); n != 1 {
		t.Errorf("merchant got %d requests, want 1", n)
	}
}

// lostPublish wraps fan-out's JetStream: its first job publish fails, either before
// the job is stored ("before": the process died between the schedule write and the
// publish) or after ("after": the job is stored, the PubAck never arrives, the event
// is never acked). Either way the event comes again.
type lostPublish struct {
	jetstream.JetStream
	when  string
	fired atomic.Bool
}

func (l *lostPublish) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if !l.fired.CompareAndSwap(false, true) {
		return l.JetStream.PublishMsgAsync(m, opts...)
	}
	if l.when == "after" {
		ack, err := l.JetStream.PublishMsgAsync(m, opts...)
		if err != nil {
			return nil, err
		}
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			return nil, err
		}
	}
	return nil, errors.New("injected: the process died around the job publish")
}

// TestCrashAroundFanoutPublish: fan-out wrote the delivery (queued for attempt 1)
// and died before publishing its job, or after publishing it but before acking the
// event. The event comes again, the job is published (again, under the same
// Nats-Msg-Id, which JetStream drops), and the merchant gets exactly one request.
func TestCrashAroundFanoutPublish(t *testing.T) {
	for _, when := range []string{"before", "after"} {
		t.Run(when, func(t *testing.T) {
			lp := &lostPublish{when: when}
			p := newPipeline(t, pipelineOpts{fanoutJS: func(js jetstream.JetStream) jetstream.JetStream { lp.JetStream = js; return lp }})
			m := newMerchant(t, func(int, string) int { return 200 })
			p.addEndpoint("acme-orders", m, nil)
			p.publish("evt_fan_"+when, "payment.succeeded")
			id := deliver.DeliveryID("evt_fan_"+when, "acme-orders")
			if st := p.settle(id); st.Name != schedule.StateDone || st.Attempt != 1 {
				t.Fatalf("state %s attempt %d, want done at 1", st.Name, st.Attempt)
			}
			if !lp.fired.Load() {
				t.Fatal("the fault was not injected")
			}
			time.Sleep(300 * time.Millisecond) // a second job, if any, would be handled by now
			if got := m.got(); len(got) != 1 || got[0].webhookID != "evt_fan_"+when {
				t.Fatalf("merchant got %+v, want one request", got)
			}
		})
	}
}

// unmarked fails the first Queued call without acting, as a Redis blip between the
// job publish and the mark would.
type unmarked struct {
	deliver.Recorder
	fired atomic.Bool
}

func (u *unmarked) Queued(ctx context.Context, id string, attempt int) (bool, error) {
	if u.fired.CompareAndSwap(false, true) {
		return false, errors.New("injected: redis unreachable")
	}
	return u.Recorder.Queued(ctx, id, attempt)
}

// TestPublishedNotMarkedQueued: a retry's job is published but marking it queued
// fails. The delivery is not handed back (that would make a second job): the job is
// recorded, the lease later runs out on nothing, and the merchant gets each attempt
// once.
func TestPublishedNotMarkedQueued(t *testing.T) {
	u := &unmarked{}
	p := newPipeline(t, pipelineOpts{recorder: func(r deliver.Recorder) deliver.Recorder { u.Recorder = r; return u }})
	m := newMerchant(t, func(n int, _ string) int {
		if n == 1 {
			return 500
		}
		return 200
	})
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_unmarked", "payment.succeeded")
	id := deliver.DeliveryID("evt_unmarked", "acme-orders")
	st := p.settle(id)
	p.clock.Set(st.Due)
	if n := p.tick(); n != 1 {
		t.Fatalf("Tick dispatched %d, want 1", n)
	}
	if st := p.settle(id); st.Name != schedule.StateDone || st.Attempt != 2 {
		t.Fatalf("state %s attempt %d, want done at 2", st.Name, st.Attempt)
	}
	if !u.fired.Load() {
		t.Fatal("the fault was not injected")
	}
	p.clock.Advance(schedule.DefaultLease + time.Second)
	if n := p.tick(); n != 0 {
		t.Errorf("Tick after the lease dispatched %d, want 0", n)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(m.got()); n != 2 {
		t.Errorf("merchant got %d requests, want 2", n)
	}
}

// TestStaleJobGone: a stale copy of a finished delivery's job (another hand-off of the
// same attempt) reaches the worker, and the merchant now answers 410. The attempt's
// record is refused by the fence, and no dead letter is written for a delivery that
// was delivered.
func TestStaleJobGone(t *testing.T) {
	p := newPipeline(t, pipelineOpts{})
	m := newMerchant(t, func(n int, _ string) int {
		if n == 1 {
			return 200
		}
		return http.StatusGone
	})
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_stale", "payment.succeeded")
	id := deliver.DeliveryID("evt_stale", "acme-orders")
	st := p.settle(id)
	if st.Name != schedule.StateDone {
		t.Fatalf("state %s, want done", st.Name)
	}
	ev, err := p.events.GetLastMsgForSubject(p.ctx, p.nats.Topo.EventSubject("paymaya", "acme-maya", "payment.succeeded"))
	if err != nil {
		t.Fatal(err)
	}
	stale := deliver.JobMsg(p.nats.Topo.DeliverySubject("acme-orders"), id, 1, st.First, st.First.Add(time.Second), ev.Data)
	if _, err := p.nats.JS.PublishMsg(p.ctx, stale); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return len(m.got()) == 2 })
	time.Sleep(200 * time.Millisecond) // the stale attempt's bookkeeping is done by now
	if n := len(p.deadLetters()); n != 0 {
		t.Errorf("%d dead letters for a delivered delivery, want 0", n)
	}
	if st := p.state(id); st.Name != schedule.StateDone {
		t.Errorf("state %s, want still done", st.Name)
	}
}

// TestKeepAlive: with KeepAlive, a job whose POST takes longer than AckWait is not
// redelivered while its worker lives (no duplicate POST), so AckWait can be short and
// a dead worker's jobs go elsewhere within it; without KeepAlive the same slow POST
// is sent twice. A job stuck past the longest a job can take (sender timeout + 2 ×
// bookkeeping) is no longer kept alive: it is redelivered as a dead worker's would be.
func TestKeepAlive(t *testing.T) {
	slow := func(keepAlive time.Duration) int {
		p := newPipeline(t, pipelineOpts{ackWait: 300 * time.Millisecond, keepAlive: keepAlive, timeout: 3 * time.Second})
		m := newMerchant(t, func(int, string) int { time.Sleep(time.Second); return 200 })
		p.addEndpoint("acme-orders", m, nil)
		p.publish("evt_slow", "payment.succeeded")
		id := deliver.DeliveryID("evt_slow", "acme-orders")
		eventually(t, func() bool { return p.state(id).Name == schedule.StateDone })
		time.Sleep(1500 * time.Millisecond) // a redelivered job's POST would be under way and answered
		return len(m.got())
	}
	t.Run("slow POST kept alive", func(t *testing.T) {
		if n := slow(100 * time.Millisecond); n != 1 {
			t.Errorf("merchant got %d POSTs, want 1", n)
		}
	})
	t.Run("slow POST without keep-alive", func(t *testing.T) {
		if n := slow(0); n < 2 {
			t.Errorf("merchant got %d POSTs; without keep-alive AckWait should have redelivered the job", n)
		}
	})
	t.Run("stuck job redelivered", func(t *testing.T) {
		// The record hangs forever; keep-alive stops after 200ms + 2 × 100ms.
		p := newCrashPipelineOpts(t, "before-record", "succeed", pipelineOpts{
			ackWait: 300 * time.Millisecond, keepAlive: 100 * time.Millisecond,
			timeout: 200 * time.Millisecond, bookkeeping: 100 * time.Millisecond,
		})
		m := newMerchant(t, func(int, string) int { return 200 })
		p.addEndpoint("acme-orders", m, nil)
		p.publish("evt_stuck", "payment.succeeded")
		id := deliver.DeliveryID("evt_stuck", "acme-orders")
		eventually(t, func() bool { return p.state(id).Name == schedule.StateDone })
		if got := m.got(); len(got) != 2 || got[1].webhookID != "evt_stuck" {
			t.Errorf("merchant got %+v, want the same webhook-id twice", got)
		}
	})
}
