package main

import (
	"testing"
	"time"
)

func ticks(p Plan) []Tick {
	var out []Tick
	s := newSchedule(p)
	for {
		t, ok := s.next()
		if !ok {
			return out
		}
		out = append(out, t)
	}
}

// TestScheduleHold: 1,000/s for 1s is 1,000 requests exactly 1ms apart, whatever
// happens to them: the open-loop arrival process.
func TestScheduleHold(t *testing.T) {
	got := ticks(holdPlan(1000, time.Second))
	if len(got) != 1000 {
		t.Fatalf("%d ticks, want 1000", len(got))
	}
	for i, tk := range got {
		if tk.Seq != int64(i) || tk.Step != 0 || tk.Offset != time.Duration(i)*time.Millisecond {
			t.Fatalf("tick %d = %+v, want seq %d at %v", i, tk, i, time.Duration(i)*time.Millisecond)
		}
	}
	if n := holdPlan(1000, time.Second).Total(); n != 1000 {
		t.Errorf("Total = %d", n)
	}
}

// TestScheduleFractional: arrivals are at k/rate for every k/rate < duration.
func TestScheduleFractional(t *testing.T) {
	got := ticks(holdPlan(2.5, time.Second)) // 0, 0.4s, 0.8s
	if len(got) != 3 || got[1].Offset != 400*time.Millisecond || got[2].Offset != 800*time.Millisecond {
		t.Errorf("2.5/s for 1s: %+v", got)
	}
	if got := ticks(holdPlan(3, time.Second)); len(got) != 3 {
		t.Errorf("3/s for 1s: %d ticks, want 3", len(got))
	}
}

// TestScheduleStairs: each step starts where the previous ended, at its own rate, and
// sequence numbers run on across steps.
func TestScheduleStairs(t *testing.T) {
	p := stairPlan(10, 10, 30, 2*time.Second)
	if len(p) != 3 || p[0].Rate != 10 || p[2].Rate != 30 {
		t.Fatalf("stairPlan = %+v", p)
	}
	got := ticks(p)
	if len(got) != 20+40+60 || p.Total() != 120 {
		t.Fatalf("%d ticks (Total %d), want 120", len(got), p.Total())
	}
	perStep := map[int]int{}
	for i, tk := range got {
		perStep[tk.Step]++
		if tk.Seq != int64(i) {
			t.Fatalf("tick %d has seq %d", i, tk.Seq)
		}
		if i > 0 && tk.Offset <= got[i-1].Offset {
			t.Fatalf("tick %d at %v, not after %v", i, tk.Offset, got[i-1].Offset)
		}
		start, end := p.stepBounds(tk.Step)
		if tk.Offset < start || tk.Offset >= end {
			t.Fatalf("tick %+v outside its step [%v, %v)", tk, start, end)
		}
	}
	if perStep[0] != 20 || perStep[1] != 40 || perStep[2] != 60 {
		t.Errorf("per step: %v", perStep)
	}
	if got[20].Offset != 2*time.Second || got[21].Offset != 2*time.Second+50*time.Millisecond {
		t.Errorf("step 2 starts %v, %v; want 2s, 2.05s", got[20].Offset, got[21].Offset)
	}
}

func TestPlanValidate(t *testing.T) {
	for _, p := range []Plan{nil, holdPlan(0, time.Second), holdPlan(10, 0), {{Rate: -1, Duration: time.Second}}} {
		if p.Validate() == nil {
			t.Errorf("%+v: valid", p)
		}
	}
	if err := stairPlan(2500, 2500, 40000, 10*time.Second).Validate(); err != nil {
		t.Error(err)
	}
}
