package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// testSink is a sink with endpoints eps and nothing received, without a listener.
func testSink(eps ...string) *Sink {
	s := &Sink{endpoints: map[string]*sinkEndpoint{}}
	for _, ep := range eps {
		s.endpoints[ep] = &sinkEndpoint{id: ep, got: map[string]*arrival{}}
	}
	return s
}

// recordOK records that ep answered id 200 at (ns since the epoch).
func recordOK(s *Sink, ep, id string, at int64) {
	s.endpoints[ep].got[id] = &arrival{firstOK: at, posts: 1}
	s.okDistinct.Add(1)
}

// TestFillDeliveryUnchecked: every request is a distinct event, so a 2xx answer
// without an id, or with an id another 2xx answer named, is an accepted event whose
// loss the missing count can't see: it is counted as unchecked, a problem that fails
// the run.
func TestFillDeliveryUnchecked(t *testing.T) {
	plan := Plan{{Rate: 10, Duration: time.Second}, {Rate: 10, Duration: time.Second}}
	rec := newRecorder(len(plan))
	ok := func(id string, due int64, dup bool) result { return result{status: 200, id: id, due: due, dup: dup} }
	rec.add(0, ok("a", 100, false), "")
	rec.add(0, ok("a", 150, true), "") // the same event again: "duplicate": true
	rec.add(0, ok("", 200, false), "") // no id
	rec.add(0, ok("b", 300, false), "")
	rec.add(0, ok("d", 400, false), "") // never delivered
	rec.add(0, result{status: 503, due: 500}, "503")
	rec.add(0, result{status: statusSkipped, due: 600}, "not sent")
	// Step 2's first request, queued a little before the step began.
	rec.add(1, ok("c", int64(time.Second)-100, false), "")

	sink := testSink("sink-1")
	recordOK(sink, "sink-1", "a", 1100)
	recordOK(sink, "sink-1", "b", 1300)
	recordOK(sink, "sink-1", "c", int64(time.Second)+1000)
	recordOK(sink, "sink-1", "warm", 50)
	recordOK(sink, "sink-1", "stray", 60)

	rep := &Report{Steps: make([]StepStat, 2)}
	fillIngest(rep, rec, plan, 0, 2*time.Second)
	if rep.Ingest.OK != 6 || rep.Ingest.DupAnswers != 1 {
		t.Fatalf("ingest: %d 2xx, %d duplicate answers; want 6, 1", rep.Ingest.OK, rep.Ingest.DupAnswers)
	}
	fillDelivery(rep, rec, sink, []string{"sink-1"}, map[string]bool{"warm": true}, nil, 14)
	d := rep.Delivery
	if d.Expected != 4 || d.Delivered != 3 || d.Missing != 1 || d.Unchecked != 2 || d.Strays != 1 {
		t.Errorf("expected %d delivered %d missing %d unchecked %d strays %d; want 4 3 1 2 1",
			d.Expected, d.Delivered, d.Missing, d.Unchecked, d.Strays)
	}
	// Each event's end-to-end latency goes to the step its request was recorded in.
	if s0, s1 := rep.Steps[0].E2E, rep.Steps[1].E2E; s0.N != 2 || s1.N != 1 || s1.Max != ms(1100) {
		t.Errorf("per-step e2e: step 1 %+v, step 2 %+v; want n=2 and n=1 (1100ns)", s0, s1)
	}
	if !d.failed() {
		t.Errorf("missing and unchecked deliveries do not fail the run")
	}
	if !slices.ContainsFunc(d.problems(), func(p string) bool {
		return strings.HasPrefix(p, "2 2xx answers named no new event: their events can't be checked for loss")
	}) {
		t.Errorf("problems %q do not name the unchecked answers", d.problems())
	}

	// Unchecked answers alone fail the run, even with nothing missing.
	clean := Delivery{Expected: 10, Delivered: 10}
	if clean.failed() || len(clean.problems()) != 0 {
		t.Errorf("a clean delivery failed: %q", clean.problems())
	}
	clean.Unchecked = 1
	if !clean.failed() || len(clean.problems()) != 1 {
		t.Errorf("1 unchecked 2xx: failed %v, problems %q", clean.failed(), clean.problems())
	}
}

// TestLossVerdict: missing deliveries are LOST after a drain that ran its course, but
// only undelivered when the drain was interrupted; unchecked answers are always said.
func TestLossVerdict(t *testing.T) {
	for _, c := range []struct {
		d    Delivery
		want string
	}{
		{Delivery{Expected: 10, Delivered: 10}, "0 lost (10 of 10 delivered)"},
		{Delivery{Expected: 10, Delivered: 7, Missing: 3, DrainTimedOut: true}, "LOST 3 of 10"},
		{Delivery{Expected: 10, Delivered: 7, Missing: 3, DrainInterrupted: "hookload was interrupted"}, "interrupted: 3 of 10 undelivered"},
		{Delivery{Expected: 10, Delivered: 10, DrainInterrupted: "hookload was interrupted"}, "0 lost (10 of 10 delivered)"},
		{Delivery{Expected: 10, Delivered: 10, Unchecked: 2}, "0 lost (10 of 10 delivered), 2 2xx UNCHECKED (named no new event)"},
	} {
		if got := c.d.lossVerdict(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.d, got, c.want)
		}
	}
	interrupted := Delivery{Expected: 10, Delivered: 7, Missing: 3, DrainInterrupted: "hookrelay-all-1 exited"}
	if p := interrupted.problems(); len(p) != 1 || !strings.HasPrefix(p[0], "interrupted: 3 of 10") || !interrupted.failed() {
		t.Errorf("interrupted drain: problems %q, failed %v", p, interrupted.failed())
	}
}

// TestPending: the drain's pending set shrinks as deliveries arrive, per endpoint.
func TestPending(t *testing.T) {
	sink := testSink("sink-1", "sink-2")
	p := newPending(map[string]int64{"a": 1, "b": 2, "c": 3}, []string{"sink-1", "sink-2"})
	if n := p.prune(sink, nil); n != 6 {
		t.Fatalf("nothing delivered: %d pending, want 6", n)
	}
	recordOK(sink, "sink-1", "a", 10)
	recordOK(sink, "sink-2", "a", 10)
	recordOK(sink, "sink-2", "c", 10)
	sink.endpoints["sink-1"].got["b"] = &arrival{posts: 1, failed: 1} // answered 500: still to come
	if n := p.prune(sink, nil); n != 3 || len(p["sink-1"]) != 2 || len(p["sink-2"]) != 1 {
		t.Fatalf("%d pending (%v), want 3", n, p)
	}
	for _, ep := range []string{"sink-1", "sink-2"} {
		for _, id := range []string{"a", "b", "c"} {
			recordOK(sink, ep, id, 20)
		}
	}
	if n := p.prune(sink, nil); n != 0 {
		t.Errorf("all delivered: %d pending", n)
	}
}

// TestRecorderStep: step's view of a step keeps its length while the recorder goes
// on appending, and an append to the view does not reach the recorder.
func TestRecorderStep(t *testing.T) {
	rec := newRecorder(1)
	for i := range 3 {
		rec.add(0, result{status: 200, id: string(rune('a' + i))}, "")
	}
	v := rec.step(0)
	for range 100 {
		rec.add(0, result{status: 200, id: "later"}, "")
	}
	if len(v) != 3 || v[0].id != "a" || v[2].id != "c" {
		t.Fatalf("view changed: %+v", v)
	}
	_ = append(v, result{id: "mine"})
	if all := rec.step(0); len(all) != 103 || all[3].id != "later" {
		t.Errorf("recorder: %d results, [3] = %q", len(all), all[3].id)
	}
}

// TestAccountingWithDeadLetters: every 2xx event is delivered, a dead letter, or lost;
// a delivery both answered 200 and dead is a bug that fails the run; a dead letter the
// sink gave no cause for is said; duplicates are counted per delivery and as a rate.
func TestAccountingWithDeadLetters(t *testing.T) {
	plan := Plan{{Rate: 10, Duration: time.Second}}
	rec := newRecorder(1)
	for i, id := range []string{"ok", "gone", "lost", "both", "nocause", "dup"} {
		rec.add(0, result{status: 200, id: id, due: int64(i)}, "")
	}
	sink := testSink("sink-1")
	recordOK(sink, "sink-1", "ok", 10)
	recordOK(sink, "sink-1", "both", 10)
	recordOK(sink, "sink-1", "dup", 10)
	sink.endpoints["sink-1"].got["dup"].afterOK = 2
	sink.endpoints["sink-1"].got["gone"] = &arrival{posts: 2, failed: 2, gone: true}
	sink.endpoints["sink-1"].got["nocause"] = &arrival{posts: 1, failed: 1}
	dead := map[string]letter{"gone:sink-1": {}, "both:sink-1": {}, "nocause:sink-1": {}}

	p := newPending(okIDs(rec.all()), []string{"sink-1"})
	if n := p.prune(sink, dead); n != 1 || len(p["sink-1"]) != 1 {
		t.Errorf("pending after prune: %d %v, want only lost", n, p)
	}
	rep := &Report{}
	fillIngest(rep, rec, plan, 0, time.Second)
	rep.Delivery.Faulty = true
	fillDelivery(rep, rec, sink, []string{"sink-1"}, nil, dead, 14)
	d := rep.Delivery
	if d.Expected != 6 || d.Delivered != 3 || d.DeadLettered != 2 || d.Missing != 1 || d.DeliveredAndDead != 1 || d.DeadUncaused != 1 || d.DupPairs != 1 || d.Duplicates != 2 {
		t.Errorf("delivery %+v", d)
	}
	if d.MissingExamples[0] != "sink-1/lost" || !d.failed() {
		t.Errorf("missing %v, failed %v", d.MissingExamples, d.failed())
	}
	if got := d.DupRate; got < 0.66 || got > 0.67 {
		t.Errorf("duplicate rate %v, want 2/3", got)
	}
	for _, want := range []string{"LOST: 1 of 6", "duplicates: 2 POSTs after a 200 for 3 delivered", "1 deliveries were answered 200 by the sink and are dead letters too", "1 dead letters the sink gave no cause for"} {
		if !slices.ContainsFunc(d.problems(), func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("problems %q lack %q", d.problems(), want)
		}
	}
	// An event the sink fails every time is a caused dead letter only after the
	// schedule's last attempt.
	always := testSink("sink-1")
	always.policy.Dead = 1_000_000
	always.endpoints["sink-1"].got["x"] = &arrival{posts: 14, failed: 14}
	always.endpoints["sink-1"].got["y"] = &arrival{posts: 3, failed: 3}
	rec2 := newRecorder(1)
	rec2.add(0, result{status: 200, id: "x"}, "")
	rec2.add(0, result{status: 200, id: "y"}, "")
	rep2 := &Report{}
	fillIngest(rep2, rec2, plan, 0, time.Second)
	fillDelivery(rep2, rec2, always, []string{"sink-1"}, nil, map[string]letter{
		"x:sink-1": {FinalAttempt: 14, Attempts: 14}, "y:sink-1": {FinalAttempt: 3, Attempts: 3},
	}, 14)
	if d2 := rep2.Delivery; d2.DeadLettered != 2 || d2.DeadUncaused != 1 || !d2.failed() {
		t.Errorf("always failing: dead %d, uncaused %d, failed %v; want 2, 1 (y died early), true", d2.DeadLettered, d2.DeadUncaused, d2.failed())
	}

	// Without the bug and the loss, it passes.
	clean := Delivery{Expected: 5, Delivered: 3, DeadLettered: 2, Faulty: true}
	if clean.failed() || len(clean.problems()) != 0 || clean.lossVerdict() != "0 lost (3 of 5 delivered, 2 dead letters)" {
		t.Errorf("clean: failed %v, problems %q, verdict %q", clean.failed(), clean.problems(), clean.lossVerdict())
	}
}
