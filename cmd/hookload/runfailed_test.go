package main

import "testing"

// TestRunFailed: which findings fail a run (exit 1) and which are only reported.
func TestRunFailed(t *testing.T) {
	clean := func() *Report { return &Report{} }
	for _, tc := range []struct {
		name                           string
		rep                            *Report
		accounting, died, ingestFailed bool
		stops                          []stopResult
		want                           bool
	}{
		{name: "clean", rep: clean(), stops: []stopResult{{Name: "relay-1"}}, want: false},
		{name: "events lost or unchecked", rep: clean(), accounting: true, want: true},
		{name: "a process died on its own", rep: clean(), died: true, want: true},
		{name: "providers mostly got no 2xx", rep: clean(), ingestFailed: true, want: true},
		{name: "a retry late outside faults", rep: &Report{Schedule: &Timing{Deliveries: 100, Violations: 1}}, want: true},
		{name: "late only within faults", rep: &Report{Schedule: &Timing{Deliveries: 100, Late: 5, LateInFault: 5}}, want: false},
		{name: "1 % unmeasured", rep: &Report{Schedule: &Timing{Deliveries: 100, Unmeasured: 1}}, want: false},
		{name: "over 1 % unmeasured", rep: &Report{Schedule: &Timing{Deliveries: 100, Unmeasured: 2}}, want: true},
		{name: "a kill that failed", rep: &Report{Faults: &FaultReport{Kills: []Kill{{Class: "nats"}, {Class: "redis", Err: "restart: no such file"}}}}, want: true},
		{name: "kills that worked", rep: &Report{Faults: &FaultReport{Kills: []Kill{{Class: "nats"}}}}, want: false},
		{name: "a process exited 1 at the end", rep: clean(), stops: []stopResult{{Name: "relay-1", ExitCode: 1}}, want: true},
		{name: "a process needed SIGKILL at the end", rep: clean(), stops: []stopResult{{Name: "relay-1", ExitCode: -1, Killed: true}}, want: true},
	} {
		if got := runFailed(tc.rep, tc.accounting, tc.died, tc.ingestFailed, tc.stops); got != tc.want {
			t.Errorf("%s: runFailed = %v, want %v", tc.name, got, tc.want)
		}
	}
}
