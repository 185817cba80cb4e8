package main

import (
	"fmt"
	"math"
	"time"
)

// Step is a stretch of load at one arrival rate.
type Step struct {
	Rate     float64       // requests per second
	Duration time.Duration // how long
}

// Plan is the whole load: its steps, back to back (hold is one step; saturate is a
// staircase).
type Plan []Step

// holdPlan is one step.
func holdPlan(rate float64, d time.Duration) Plan { return Plan{{Rate: rate, Duration: d}} }

// stairPlan goes from start to at most maxRate in increments of inc, each for d.
func stairPlan(start, inc, maxRate float64, d time.Duration) Plan {
	var p Plan
	for r := start; r <= maxRate+1e-9; r += inc {
		p = append(p, Step{Rate: r, Duration: d})
		if inc <= 0 {
			break
		}
	}
	return p
}

// Validate reports a plan that cannot be run.
func (p Plan) Validate() error {
	if len(p) == 0 {
		return fmt.Errorf("empty load plan")
	}
	for i, s := range p {
		if !(s.Rate > 0) || math.IsInf(s.Rate, 0) {
			return fmt.Errorf("step %d: rate %v, want > 0", i+1, s.Rate)
		}
		if s.Duration <= 0 {
			return fmt.Errorf("step %d: duration %v, want > 0", i+1, s.Duration)
		}
	}
	return nil
}

// Total is how many requests the plan schedules.
func (p Plan) Total() int64 {
	var n int64
	for _, s := range p {
		n += s.count()
	}
	return n
}

// count is the number of arrivals in a step: those at offsets k/rate < Duration.
func (s Step) count() int64 {
	return int64(math.Ceil(s.Rate*s.Duration.Seconds() - 1e-9))
}

// Tick is one scheduled request.
type Tick struct {
	Seq    int64         // 0, 1, 2, … over the whole plan
	Step   int           // index into the plan
	Offset time.Duration // from the start of the load: when the request is due
}

// schedule hands out a plan's ticks in order: in step s, request k of that step is
// due at the step's start + k/rate. It is the open-loop arrival process: a tick's
// time depends only on the plan, never on how long earlier requests took.
type schedule struct {
	plan      Plan
	step      int
	stepStart time.Duration // offset of the current step's start
	k         int64         // next request within the step
	seq       int64
}

func newSchedule(p Plan) *schedule { return &schedule{plan: p} }

// next returns the next tick; false once the plan is over.
func (s *schedule) next() (Tick, bool) {
	for s.step < len(s.plan) {
		st := s.plan[s.step]
		if s.k < st.count() {
			off := s.stepStart + time.Duration(float64(s.k)*1e9/st.Rate)
			t := Tick{Seq: s.seq, Step: s.step, Offset: off}
			s.k++
			s.seq++
			return t, true
		}
		s.stepStart += st.Duration
		s.step++
		s.k = 0
	}
	return Tick{}, false
}

// stepBounds returns the offsets at which step i starts and ends.
func (p Plan) stepBounds(i int) (start, end time.Duration) {
	for j := 0; j < i; j++ {
		start += p[j].Duration
	}
	return start, start + p[i].Duration
}
