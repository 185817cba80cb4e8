package main

import (
	"strings"
	"testing"
	"time"
)

// timingOffsets is the schedule of the timing tests: attempts 1..5.
var timingOffsets = []time.Duration{0, 6 * time.Millisecond, 18 * time.Millisecond, 42 * time.Millisecond, 90 * time.Millisecond}

const timingFirst = int64(10 * time.Second) // the anchor of the timing tests

// tms is timingFirst plus f milliseconds, in ns.
func tms(f float64) int64 { return timingFirst + int64(f*float64(time.Millisecond)) }

func TestTiming(t *testing.T) {
	type delivery struct {
		first  int64
		logged []loggedAttempt
		posts  []sinkPost
	}
	type want struct {
		deliveries, attempts                 int
		late, lateInFault, violations, early int
		repeats, unseen, examples            int
		latN, quietN                         int
		latMax, quietMax                     float64 // ms
		example                              string  // a substring of Examples[0]
	}
	tests := []struct {
		name   string
		faults []faultWindow
		ds     []delivery
		want   want
	}{
		{
			name: "clean schedule",
			ds: []delivery{{
				first: timingFirst,
				logged: []loggedAttempt{
					{1, tms(0)}, {2, tms(8)}, {3, tms(20)}, {4, tms(44)}, {5, tms(92)},
				},
				posts: []sinkPost{ // any order
					{tms(92), tms(93), 200}, {tms(0), tms(1), 500}, {tms(8), tms(9), 500},
					{tms(44), tms(45), 500}, {tms(20), tms(21), 503},
				},
			}},
			want: want{deliveries: 1, attempts: 4, latN: 4, quietN: 4, latMax: 2, quietMax: 2},
		},
		{
			// Attempt 3's first try reached the sink but the worker was killed before
			// recording it; the retry of attempt 3 is logged.
			name: "repeat",
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}, {2, tms(6)}, {3, tms(25)}},
				posts: []sinkPost{
					{tms(0), tms(1), 500},
					{tms(6), tms(7), 500},
					{tms(18.5), tms(21), 0}, // unrecorded try of attempt 3
					{tms(25), tms(26), 200}, // measured from 21ms: 4ms late
				},
			}},
			want: want{deliveries: 1, attempts: 2, repeats: 1, latN: 2, quietN: 2, latMax: 4, quietMax: 4},
		},
		{
			name: "slow previous attempt",
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}, {2, tms(6)}, {3, tms(31)}},
				posts: []sinkPost{
					{tms(0), tms(1), 500},
					{tms(6), tms(30), 0},    // a hang, given up after 24ms, past attempt 3's due (18ms)
					{tms(31), tms(32), 200}, // 13ms after due, 1ms after the hang ended
				},
			}},
			want: want{deliveries: 1, attempts: 2, latN: 2, quietN: 2, latMax: 1, quietMax: 1},
		},
		{
			name: "late outside faults",
			faults: []faultWindow{
				{From: tms(-5000), To: tms(-1500), What: "hookrelay-deliver-1"}, // ends before due-1s
				{From: tms(27), To: tms(900), What: "hookrelay-deliver-2"},      // starts after arrival
			},
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}, {2, tms(26)}},
				posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(26), tms(27), 200}},
			}},
			want: want{
				deliveries: 1, attempts: 1, late: 1, violations: 1, examples: 1,
				latN: 1, quietN: 1, latMax: 20, quietMax: 20,
				example: "evt_0:sink-1 attempt 2: late, due 10006.000ms, arrived 10026.000ms, 20.000ms late",
			},
		},
		{
			name: "late in a fault",
			faults: []faultWindow{
				{From: tms(-5000), To: tms(-1500), What: "hookrelay-deliver-1"},
				{From: tms(-900), To: tms(-800), What: "hookrelay-deliver-2"}, // within due-1s
				{From: tms(27), To: tms(900), What: "hookrelay-deliver-3"},
			},
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}, {2, tms(26)}},
				posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(26), tms(27), 200}},
			}},
			want: want{deliveries: 1, attempts: 1, late: 1, lateInFault: 1, latN: 1, latMax: 20},
		},
		{
			name: "early",
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}, {2, tms(3)}},
				posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(3), tms(4), 200}},
			}},
			want: want{
				deliveries: 1, attempts: 1, early: 1, violations: 1, examples: 1,
				latN: 1, quietN: 1, latMax: -3, quietMax: -3,
				example: "evt_0:sink-1 attempt 2: early, due 10006.000ms, arrived 10003.000ms",
			},
		},
		{
			name: "unseen",
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}, {2, tms(6)}, {3, tms(18)}},
				posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(18), tms(19), 200}},
			}},
			want: want{deliveries: 1, attempts: 1, unseen: 1, latN: 1, quietN: 1},
		},
		{
			// first comes from a millisecond timestamp: 0.7ms before the true anchor.
			name: "anchor rounding",
			ds: []delivery{{
				first:  tms(-0.7),
				logged: []loggedAttempt{{1, tms(0)}, {2, tms(6)}, {3, tms(18)}},
				posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(6), tms(7), 500}, {tms(18), tms(19), 200}},
			}},
			want: want{deliveries: 1, attempts: 2, latN: 2, quietN: 2, latMax: 0.7, quietMax: 0.7},
		},
		{
			name: "only attempt 1",
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}},
				posts:  []sinkPost{{tms(0), tms(1), 200}},
			}},
			want: want{},
		},
		{
			name: "attempt beyond the schedule",
			ds: []delivery{{
				first:  timingFirst,
				logged: []loggedAttempt{{1, tms(0)}, {6, tms(200)}},
				posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(200), tms(201), 200}},
			}},
			want: want{
				violations: 1, examples: 1,
				example: "evt_0:sink-1 attempt 6: beyond the schedule's 5 attempts",
			},
		},
		{
			name: "two deliveries accumulate",
			ds: []delivery{
				{
					first:  timingFirst,
					logged: []loggedAttempt{{1, tms(0)}, {2, tms(7)}},
					posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(7), tms(8), 200}},
				},
				{
					first:  timingFirst,
					logged: []loggedAttempt{{1, tms(0)}, {2, tms(9)}, {3, tms(20)}},
					posts:  []sinkPost{{tms(0), tms(1), 500}, {tms(9), tms(10), 500}, {tms(20), tms(21), 200}},
				},
			},
			want: want{deliveries: 2, attempts: 3, latN: 3, quietN: 3, latMax: 3, quietMax: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acc := newTimingAcc(timingOffsets, 5*time.Millisecond, tt.faults)
			for i, d := range tt.ds {
				acc.add("evt_"+string(rune('0'+i))+":sink-1", d.first, d.logged, d.posts)
			}
			got := acc.result()
			w := tt.want
			check := func(what string, got, want any) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("Deliveries", got.Deliveries, w.deliveries)
			check("Attempts", got.Attempts, w.attempts)
			check("Tolerance", got.Tolerance, "5ms")
			check("Late", got.Late, w.late)
			check("LateInFault", got.LateInFault, w.lateInFault)
			check("Violations", got.Violations, w.violations)
			check("Early", got.Early, w.early)
			check("Repeats", got.Repeats, w.repeats)
			check("Unseen", got.Unseen, w.unseen)
			check("len(Examples)", len(got.Examples), w.examples)
			check("Lateness.N", got.Lateness.N, w.latN)
			check("Lateness.Max", got.Lateness.Max, w.latMax)
			check("Quiet.N", got.Quiet.N, w.quietN)
			check("Quiet.Max", got.Quiet.Max, w.quietMax)
			if w.example != "" && (len(got.Examples) == 0 || !strings.HasPrefix(got.Examples[0], w.example)) {
				t.Errorf("Examples = %q, want the first to begin %q", got.Examples, w.example)
			}
			if again := acc.result(); again.Lateness != got.Lateness || again.Quiet != got.Quiet {
				t.Errorf("result() not repeatable: %+v then %+v", got, again)
			}
		})
	}
}

func TestTimingExamplesCapped(t *testing.T) {
	acc := newTimingAcc(timingOffsets, 5*time.Millisecond, nil)
	for range 25 {
		acc.add("evt", timingFirst,
			[]loggedAttempt{{1, tms(0)}, {2, tms(50)}},
			[]sinkPost{{tms(0), tms(1), 500}, {tms(50), tms(51), 200}})
	}
	got := acc.result()
	if got.Violations != 25 || got.Late != 25 || len(got.Examples) != timingMaxExamples {
		t.Errorf("Violations %d, Late %d, %d examples; want 25, 25, %d",
			got.Violations, got.Late, len(got.Examples), timingMaxExamples)
	}
}

func TestTimingInFault(t *testing.T) {
	acc := newTimingAcc(timingOffsets, 5*time.Millisecond, []faultWindow{ // unsorted, nested
		{From: 500, To: 600},
		{From: 100, To: 1000}, // contains the next
		{From: 200, To: 300},
		{From: 2000, To: 2100},
	})
	tests := []struct {
		lo, hi int64
		want   bool
	}{
		{0, 50, false},
		{0, 100, true}, // touches From
		{1000, 1500, true},
		{1001, 1999, false},
		{1500, 2000, true},
		{2050, 2060, true}, // inside
		{1900, 2200, true}, // around
		{2101, 3000, false},
		{700, 800, true}, // only in the long window, behind a shorter later one
	}
	for _, tt := range tests {
		if got := acc.inFault(tt.lo, tt.hi); got != tt.want {
			t.Errorf("inFault(%d, %d) = %v, want %v", tt.lo, tt.hi, got, tt.want)
		}
	}
}
