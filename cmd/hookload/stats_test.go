package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1) // 1..100
	}
	thousand := make([]int64, 1000)
	for i := range thousand {
		thousand[i] = int64(i + 1)
	}
	for _, c := range []struct {
		vals []int64
		p    float64
		want int64
	}{
		{nil, 50, 0},
		{[]int64{7}, 50, 7},
		{[]int64{7}, 99, 7},
		{hundred, 50, 50},
		{hundred, 90, 90},
		{hundred, 99, 99},
		{hundred, 99.9, 100},
		{hundred, 100, 100},
		{hundred, 0, 1},
		{hundred, 1, 1},
		{thousand, 99, 990},
		{thousand, 99.9, 999},
		{[]int64{1, 2, 3, 4}, 50, 2},
		{[]int64{1, 2, 3, 4}, 51, 3},
		{[]int64{1, 2, 3, math.MaxInt64}, 99, math.MaxInt64},
	} {
		if got := percentile(c.vals, c.p); got != c.want {
			t.Errorf("percentile(%d values, %v) = %d, want %d", len(c.vals), c.p, got, c.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	ns := []int64{int64(3 * time.Millisecond), int64(time.Millisecond), int64(2 * time.Millisecond)}
	s := summarize(ns)
	if !slices.IsSorted(ns) {
		t.Errorf("summarize did not sort its input")
	}
	want := Summary{N: 3, P50: 2, P90: 3, P99: 3, P999: 3, Max: 3, Mean: 2}
	if s != want {
		t.Errorf("summarize = %+v, want %+v", s, want)
	}
	if s := summarize(nil); s != (Summary{}) {
		t.Errorf("summarize(nil) = %+v", s)
	}
}

// TestEvalStep: a saturate step fails on errors, on a slow p99 (unanswered requests
// count as infinitely slow) and on too few 2xx answers per second.
func TestEvalStep(t *testing.T) {
	step := Step{Rate: 100, Duration: time.Second}
	ok := func(n int, lat time.Duration) []result {
		var out []result
		for range n {
			out = append(out, result{status: 200, lat: int64(lat), id: "evt"})
		}
		return out
	}
	limit := 50 * time.Millisecond
	if st := evalStep(0, step, 100, ok(100, 5*time.Millisecond), limit, 0.95); !st.Pass || st.Achieved != 100 || st.Ingest.P99 != 5 {
		t.Errorf("healthy step: %+v", st)
	}
	slow := append(ok(98, 5*time.Millisecond), ok(2, 80*time.Millisecond)...)
	if st := evalStep(0, step, 100, slow, limit, 0.95); st.Pass {
		t.Errorf("2%% of answers above the limit passed: %+v", st)
	}
	if st := evalStep(0, step, 100, ok(98, time.Millisecond), limit, 0.5); st.Pass || st.Incomplete != 2 {
		t.Errorf("2 unanswered of 100 passed: %+v", st)
	}
	withErr := append(ok(99, time.Millisecond), result{status: 503, lat: int64(time.Millisecond)})
	if st := evalStep(0, step, 100, withErr, limit, 0.95); st.Pass || st.Errors != 1 {
		t.Errorf("a 503 passed: %+v", st)
	}
	if st := evalStep(0, step, 100, ok(100, time.Millisecond), limit, 1.01); st.Pass {
		t.Errorf("achieved below min-achieved passed: %+v", st)
	}
	// Requests never sent (the generator's backlog was full) carry no latency: they
	// count as infinitely slow, like unanswered ones, not as answered at once.
	notSent := append(ok(97, time.Millisecond), result{status: statusSkipped}, result{status: statusSkipped})
	st := evalStep(0, step, 100, notSent, limit, 0.5)
	if st.Pass || st.NotSent != 2 || st.Incomplete != 1 || st.Errors != 2 {
		t.Errorf("2 not sent and 1 unanswered of 100 passed or miscounted: %+v", st)
	}
	if !strings.Contains(st.Why, "p99 > 50ms: 3 unanswered or not sent") {
		t.Errorf("why = %q, want the 3 requests unanswered or not sent named as the p99", st.Why)
	}
}
