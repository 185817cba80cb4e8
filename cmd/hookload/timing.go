package main

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"
)

// Punctuality of the retry schedule, as the merchant sink saw it.
//
// Attempt n of a delivery is due at first + offsets[n-1]. The sink records every
// POST it received per (endpoint, event); hookrelay's attempt log gives the
// anchor and every recorded attempt. Posts are matched to logged attempts by
// time; a post matching none is an unrecorded try (a worker killed between the
// POST and the record), a logged attempt matching no post was never seen.

const (
	// timingSlack is the clock slack between hookrelay and the sink (same machine).
	timingSlack = int64(time.Millisecond)
	// timingFaultLead is how long before its due time an attempt counts as
	// exposed to a fault: a kill shortly before the due time delays it too.
	timingFaultLead = int64(time.Second)
	// timingMaxExamples bounds Timing.Examples.
	timingMaxExamples = 10
)

// sinkPost is one POST the sink received for one (endpoint, event), ns since the run's epoch.
type sinkPost struct {
	At, End int64 // arrival; when the sink finished answering (or the client gave up)
	Status  int16 // what the sink answered; 0 when the client gave up first (a hang)
}

// loggedAttempt is one attempt from hookrelay's attempt log: its number and start, ns since epoch.
type loggedAttempt struct {
	N     int
	Start int64
}

// faultWindow is a process killed at From and ready again at To (ns since epoch).
type faultWindow struct {
	From, To int64
	What     string // e.g. "hookrelay-deliver-1"
}

// Timing is the schedule's punctuality as the sink measured it, over the whole run (JSON in the report).
type Timing struct {
	Deliveries  int      `json:"deliveries"` // deliveries measured (had at least a second attempt)
	Attempts    int      `json:"attempts"`   // attempts 2.. measured
	Tolerance   string   `json:"tolerance"`
	Lateness    Summary  `json:"lateness"`       // all measured attempts
	Quiet       Summary  `json:"lateness_quiet"` // those outside every fault window
	Late        int      `json:"late"`           // beyond tolerance, in total
	LateInFault int      `json:"late_in_fault"`  // of which during a fault window (expected)
	Violations  int      `json:"violations"`     // beyond tolerance outside faults, plus early ones (and attempt numbers beyond the schedule)
	Early       int      `json:"early"`
	Repeats     int      `json:"repeats"`            // posts matching no logged attempt (unrecorded tries)
	Unseen      int      `json:"unseen"`             // logged attempts the sink never saw
	Unmeasured  int      `json:"unmeasured"`         // retried deliveries whose attempt log could not be read
	Examples    []string `json:"examples,omitempty"` // up to 10 violations, human readable
}

// timingAcc accumulates deliveries; not safe for concurrent use.
type timingAcc struct {
	offsets   []int64 // ns, cumulative; offsets[n-1] for attempt n
	tolerance time.Duration

	// Fault windows sorted by From; toMax[i] is the latest To among faults[:i+1],
	// so "some window with From ≤ t has To ≥ lo" is one binary search.
	faults []faultWindow
	toMax  []int64

	all, quiet []int64 // lateness, ns
	res        Timing
}

func newTimingAcc(offsets []time.Duration, tolerance time.Duration, faults []faultWindow) *timingAcc {
	t := &timingAcc{
		offsets:   make([]int64, len(offsets)),
		tolerance: tolerance,
		faults:    slices.Clone(faults),
	}
	for i, o := range offsets {
		t.offsets[i] = int64(o)
	}
	slices.SortFunc(t.faults, func(a, b faultWindow) int { return cmp.Compare(a.From, b.From) })
	t.toMax = make([]int64, len(t.faults))
	for i, f := range t.faults {
		t.toMax[i] = f.To
		if i > 0 {
			t.toMax[i] = max(f.To, t.toMax[i-1])
		}
	}
	return t
}

// inFault reports whether [lo, hi] overlaps a fault window.
func (t *timingAcc) inFault(lo, hi int64) bool {
	// Windows with From ≤ hi are t.faults[:k]; one of them reaches lo iff the
	// latest To among them does.
	k := sort.Search(len(t.faults), func(i int) bool { return t.faults[i].From > hi })
	return k > 0 && t.toMax[k-1] >= lo
}

func (t *timingAcc) example(format string, args ...any) {
	if len(t.res.Examples) < timingMaxExamples {
		t.res.Examples = append(t.res.Examples, fmt.Sprintf(format, args...))
	}
}

// add measures one delivery: its label (for examples, e.g. "evt_x:sink-1"), anchor,
// logged attempts and sink posts (any order).
func (t *timingAcc) add(label string, first int64, logged []loggedAttempt, posts []sinkPost) {
	logged = slices.Clone(logged)
	slices.SortStableFunc(logged, func(a, b loggedAttempt) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.N, b.N))
	})
	posts = slices.Clone(posts)
	slices.SortStableFunc(posts, func(a, b sinkPost) int {
		return cmp.Or(cmp.Compare(a.At, b.At), cmp.Compare(a.End, b.End))
	})

	// Logged attempt i takes the first post in [S_i − slack, S_{i+1} − slack).
	// Posts are sorted and the windows disjoint and increasing, so one pass does.
	match := make([]int, len(logged)) // index into posts, or -1
	j, matched := 0, 0
	for i, a := range logged {
		match[i] = -1
		lo := a.Start - timingSlack
		for j < len(posts) && posts[j].At < lo {
			j++ // before this attempt's window and not taken: a repeat
		}
		if j == len(posts) {
			continue
		}
		if i+1 < len(logged) && posts[j].At >= logged[i+1].Start-timingSlack {
			continue // the next post belongs to a later attempt
		}
		match[i] = j
		matched++
		j++
	}
	t.res.Repeats += len(posts) - matched

	measured := 0
	for i, a := range logged {
		if a.N < 1 || a.N > len(t.offsets) {
			t.res.Violations++
			t.example("%s attempt %d: beyond the schedule's %d attempts (started %.3fms)",
				label, a.N, len(t.offsets), ms(a.Start))
			if match[i] < 0 {
				t.res.Unseen++
			}
			continue
		}
		k := match[i]
		if k < 0 {
			t.res.Unseen++
			continue
		}
		if a.N == 1 {
			continue // the anchor: immediate, not measured
		}
		p := posts[k]
		due := first + t.offsets[a.N-1]
		// The attempt cannot start before the previous try ended. Only tries that
		// ended by this arrival count: one still open did not hold this one back.
		base := due
		for _, q := range posts[:k] {
			if q.End <= p.At {
				base = max(base, q.End)
			}
		}
		late := p.At - base
		measured++
		t.res.Attempts++
		t.all = append(t.all, late)
		fault := t.inFault(due-timingFaultLead, p.At)
		if !fault {
			t.quiet = append(t.quiet, late)
		}
		switch {
		case p.At < due-timingSlack:
			t.res.Early++
			t.res.Violations++
			t.example("%s attempt %d: early, due %.3fms, arrived %.3fms (%.3fms before due)",
				label, a.N, ms(due), ms(p.At), ms(due-p.At))
		case late > int64(t.tolerance):
			t.res.Late++
			if fault {
				t.res.LateInFault++
				break
			}
			t.res.Violations++
			from := ""
			if base > due {
				from = fmt.Sprintf(" after the previous try ended at %.3fms", ms(base))
			}
			t.example("%s attempt %d: late, due %.3fms, arrived %.3fms, %.3fms late%s",
				label, a.N, ms(due), ms(p.At), ms(late), from)
		}
	}
	if measured > 0 {
		t.res.Deliveries++
	}
}

// result summarizes.
func (t *timingAcc) result() Timing {
	r := t.res
	r.Tolerance = t.tolerance.String()
	r.Lateness = summarize(slices.Clone(t.all))
	r.Quiet = summarize(slices.Clone(t.quiet))
	r.Examples = slices.Clone(t.res.Examples)
	return r
}
