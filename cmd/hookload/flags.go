package main

import (
	"flag"
	"fmt"
	"io"
	"time"
)

// options are the command line.
type options struct {
	mode string
	// the system
	dir          string
	procs        []procSpec
	procsRaw     string
	endpoints    int
	maxInFlight  int
	retryScale   float64
	sinkFail     float64
	natsBin      string
	hookrelayBin string
	shutdown     time.Duration
	gomaxprocs   int
	// the load
	mayaShare      float64
	conns          int
	timeout        time.Duration
	maxOutstanding int
	drainTimeout   time.Duration
	jsonOut        bool
	cpuProfile     string
	plan           Plan
	// saturate
	p99Limit    time.Duration
	minAchieved float64
}

func parseFlags(mode string, args []string, stderr io.Writer) (*options, error) {
	o := &options{mode: mode}
	fs := flag.NewFlagSet("hookload "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.dir, "dir", "", "run dir: config, data, logs, reports (default: a new temporary directory); must be empty or not exist")
	fs.StringVar(&o.procsRaw, "procs", "all=1", "hookrelay processes by role: all=1, or e.g. ingest=2,deliver=1,schedule=1 (roles combine with +)")
	fs.IntVar(&o.endpoints, "endpoints", 1, "merchant endpoints (each gets every event)")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 256, "each endpoint's max_in_flight")
	fs.Float64Var(&o.retryScale, "retry-scale", 60, "divide SPEC §7's retry delays by this (60: 1s, 2s, 4s, …; 1: the real schedule)")
	fs.Float64Var(&o.sinkFail, "sink-fail", 0, "share (0..1) of events whose first attempt the sink answers 500 (retried on the scaled schedule)")
	fs.StringVar(&o.natsBin, "nats-server", "", "nats-server binary (default: PATH, /usr/sbin/nats-server, else built; 'build' forces the module's version)")
	fs.StringVar(&o.hookrelayBin, "hookrelay", "", "hookrelay binary (default: built from ./cmd/hookrelay into the run dir)")
	fs.IntVar(&o.gomaxprocs, "gomaxprocs", 0, "GOMAXPROCS for hookrelay and nats-server (0: their default, the number of cores)")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 15*time.Second, "hookrelay's shutdown_timeout")
	fs.Float64Var(&o.mayaShare, "paymaya-share", 0.5, "share (0..1) of PayMaya callbacks; the rest are Paytia")
	fs.IntVar(&o.conns, "conns", 256, "at most this many connections to each ingest process (idle ones are kept)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "provider request timeout")
	fs.IntVar(&o.maxOutstanding, "max-outstanding", 50000, "requests queued or unanswered at once; beyond it the generator records ticks as not sent (a backlog bound)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 3*time.Minute, "after the load, how long to wait for every 2xx event to reach the sink")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON (report.txt in the run dir has the table)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write hookload's own CPU profile during the load to this file (is the generator cheap?)")
	var rate, start, step, maxRate float64
	var dur, stepDur time.Duration
	switch mode {
	case "hold":
		fs.Float64Var(&rate, "rate", 1000, "requests per second")
		fs.DurationVar(&dur, "duration", 20*time.Second, "how long")
	case "saturate":
		fs.Float64Var(&start, "start", 500, "first step's rate (requests per second)")
		fs.Float64Var(&step, "step", 500, "rate added at each step (a 2-core machine tops out at a few thousand per second)")
		fs.DurationVar(&stepDur, "step-duration", 10*time.Second, "length of each step")
		fs.Float64Var(&maxRate, "max-rate", 40000, "last step's rate")
		fs.DurationVar(&o.p99Limit, "p99-limit", 100*time.Millisecond, "a step fails when its ingest p99 exceeds this")
		fs.Float64Var(&o.minAchieved, "min-achieved", 0.95, "a step fails when its 2xx answers per second fall below this share of the target")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Sprintf("unexpected arguments: %v", fs.Args())}
	}
	bad := func(format string, a ...any) (*options, error) { return nil, usageError{fmt.Sprintf(format, a...)} }
	var err error
	if o.procs, err = parseProcs(o.procsRaw); err != nil {
		return nil, usageError{err.Error()}
	}
	switch {
	case o.endpoints < 1 || o.endpoints > 100:
		return bad("--endpoints %d: want 1..100", o.endpoints)
	case o.maxInFlight < 1 || o.maxInFlight > 1000:
		return bad("--max-in-flight %d: want 1..1000", o.maxInFlight)
	case o.retryScale < 1:
		return bad("--retry-scale %g: want ≥ 1", o.retryScale)
	case o.sinkFail < 0 || o.sinkFail > 1:
		return bad("--sink-fail %g: want 0..1", o.sinkFail)
	case o.mayaShare < 0 || o.mayaShare > 1:
		return bad("--paymaya-share %g: want 0..1", o.mayaShare)
	case o.conns < 1:
		return bad("--conns %d: want ≥ 1", o.conns)
	case o.maxOutstanding < 1:
		return bad("--max-outstanding %d: want ≥ 1", o.maxOutstanding)
	case o.shutdown < time.Second:
		return bad("--shutdown-timeout %v: want ≥ 1s", o.shutdown)
	}
	if mode == "hold" {
		o.plan = holdPlan(rate, dur)
	} else {
		if step <= 0 || maxRate < start {
			return bad("--step %g, --max-rate %g: want step > 0 and max-rate ≥ start %g", step, maxRate, start)
		}
		if o.minAchieved <= 0 || o.minAchieved > 1 || o.p99Limit <= 0 {
			return bad("--min-achieved %g, --p99-limit %v: want 0 < min-achieved ≤ 1, p99-limit > 0", o.minAchieved, o.p99Limit)
		}
		o.plan = stairPlan(start, step, maxRate, stepDur)
	}
	if err := o.plan.Validate(); err != nil {
		return nil, usageError{err.Error()}
	}
	return o, nil
}
