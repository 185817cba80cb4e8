package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
	sched "github.com/hookrelay/hookrelay/schedule"
)

// faultClasses are what --kill may name: hookrelay processes by role, and the two
// servers.
var faultClasses = []string{"ingest", "deliver", "schedule", "nats", "redis"}

// Kill is one SIGKILL and restart, as the report lists it.
type Kill struct {
	Class   string  `json:"class"`
	Process string  `json:"process"`
	At      float64 `json:"at_s"`    // the SIGKILL, seconds since the load started
	Down    float64 `json:"down_s"`  // until it was started again
	Ready   float64 `json:"ready_s"` // until it was ready again (from the SIGKILL)
	Err     string  `json:"error,omitempty"`
}

// faulter SIGKILLs a process every interval, the classes in turn (within a class, its
// processes in turn), leaves it down for down and starts it again, waiting until it
// is ready before the next kill: one fault at a time, as a rolling failure.
type faulter struct {
	c       *cluster
	classes []string
	every   time.Duration
	down    time.Duration
	epoch   time.Time
	loadAt  time.Time
	logf    func(string, ...any)
	onSwap  func(np *proc) // the sampler follows the new process
	mu      sync.Mutex
	kills   []Kill
	windows []faultWindow
	turn    map[string]int
}

// candidates are the processes of class now running (or last started).
func (f *faulter) candidates(class string) []*proc {
	var out []*proc
	for _, p := range f.c.all() {
		switch {
		case class == "nats" && p.kind == "nats", class == "redis" && p.kind == "redis":
			out = append(out, p)
		case p.kind == "hookrelay" && slices.Contains(p.roles, class):
			out = append(out, p)
		}
	}
	return out
}

// run kills and restarts until ctx is done; it returns once no process is down.
func (f *faulter) run(ctx context.Context) {
	f.turn = map[string]int{}
	t := time.NewTicker(f.every)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		class := f.classes[i%len(f.classes)]
		ps := f.candidates(class)
		if len(ps) == 0 {
			continue
		}
		p := ps[f.turn[class]%len(ps)]
		f.turn[class]++
		f.one(class, p)
	}
}

// one kills p and starts it again. The restart is not cancelled with the load: a
// process left down would be a fault of hookload's own.
func (f *faulter) one(class string, p *proc) {
	if p.done() && !p.intended() {
		// It died on its own: that is the run's finding (the monitor stops the load),
		// not a kill to restart.
		f.logf("fault: %s had already exited on its own; not restarting it", p.name)
		return
	}
	k := Kill{Class: class, Process: p.name}
	killAt := time.Now()
	k.At = killAt.Sub(f.loadAt).Seconds()
	_ = p.signal(syscall.SIGKILL)
	<-p.exited
	time.Sleep(f.down)
	k.Down = time.Since(killAt).Seconds()
	np, err := f.c.restart(context.Background(), p)
	if np != nil && f.onSwap != nil {
		f.onSwap(np)
	}
	readyAt := time.Now()
	k.Ready = readyAt.Sub(killAt).Seconds()
	if err != nil {
		k.Err = err.Error()
		f.logf("fault: %s (%s) did not come back: %v", p.name, class, err)
	} else {
		f.logf("fault: SIGKILL %s (%s), started again after %.2fs, ready after %.2fs", p.name, class, k.Down, k.Ready)
	}
	f.mu.Lock()
	f.kills = append(f.kills, k)
	f.windows = append(f.windows, faultWindow{From: killAt.Sub(f.epoch).Nanoseconds(), To: readyAt.Sub(f.epoch).Nanoseconds(), What: p.name})
	f.mu.Unlock()
}

// result is every kill so far and the fault windows.
func (f *faulter) result() ([]Kill, []faultWindow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.kills), slices.Clone(f.windows)
}

// killSummary counts kills per class, for the log and the report.
func killSummary(ks []Kill) string {
	n := map[string]int{}
	failed := 0
	for _, k := range ks {
		n[k.Class]++
		if k.Err != "" {
			failed++
		}
	}
	s := ""
	for _, c := range faultClasses {
		if n[c] > 0 {
			s += fmt.Sprintf("%s ×%d ", c, n[c])
		}
	}
	if failed > 0 {
		s += fmt.Sprintf("(%d did not come back)", failed)
	}
	return s
}

// FaultReport is the faults mode's part of the report.
type FaultReport struct {
	Classes []string `json:"classes"`
	Every   string   `json:"kill_every"`
	Down    string   `json:"down"`
	Summary string   `json:"summary"`
	Kills   []Kill   `json:"kills"`
}

// measureTiming measures, for every delivery the sink got more than one POST of, when
// each retry arrived against its due time: the anchor and the attempt numbers come
// from hookrelay's attempt log (the admin API), the arrivals from the sink. Kills
// (fl, nil outside the faults mode) are the fault windows. Nil when no delivery
// was retried.
func measureTiming(ctx context.Context, admin *adminClient, epoch time.Time, sink *Sink, ids map[string]int64, policy sched.Policy, tolerance time.Duration, fl *faulter, logf func(string, ...any)) *Timing {
	posts := map[string][]sinkPost{} // by delivery id
	events := map[string]bool{}
	sink.each(func(ep, id string, a arrival) {
		if _, ok := ids[id]; ok && len(a.log) > 1 {
			posts[deliver.DeliveryID(id, ep)] = slices.Clone(a.log)
			events[id] = true
		}
	})
	if len(posts) == 0 {
		return nil
	}
	logf("schedule: reading the attempt logs of %d retried events", len(events))
	logs, err := admin.deliveryLogs(ctx, epoch, slices.Collect(maps.Keys(events)), 8)
	var windows []faultWindow
	if fl != nil {
		_, windows = fl.result()
	}
	acc := newTimingAcc(policy.Offsets(), tolerance, windows)
	missing := 0
	for _, did := range slices.Sorted(maps.Keys(posts)) {
		l, ok := logs[did]
		if !ok {
			missing++
			continue
		}
		acc.add(did, l.First, l.Attempts, posts[did])
	}
	t := acc.result()
	if err != nil {
		logf("schedule: %v", err)
	}
	t.Unmeasured = missing // their attempt log could not be read: not measured, said apart
	return &t
}
