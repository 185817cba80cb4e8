package main

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// options are the command line.
type options struct {
	mode string
	// the system
	dir         string
	procs       []procSpec
	procsRaw    string
	endpoints   int
	maxInFlight int
	retryScale  float64
	sinkFail    float64
	sinkGone    float64
	sinkHang    float64
	sinkTooMany float64
	sinkFail500 float64
	sinkDead    float64
	deliveryTO  time.Duration
	tolerance   time.Duration
	// faults
	kill         []string
	killEvery    time.Duration
	down         time.Duration
	provRetries  int
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
	faults := mode == "faults"
	fs.StringVar(&o.procsRaw, "procs", pick(faults, "ingest=2,deliver=2,schedule=2", "all=1"), "hookrelay processes by role: all=1, or e.g. ingest=2,deliver=1,schedule=1 (roles combine with +)")
	fs.IntVar(&o.endpoints, "endpoints", 1, "merchant endpoints (each gets every event)")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 256, "each endpoint's max_in_flight")
	fs.Float64Var(&o.retryScale, "retry-scale", pick(faults, 10000.0, 60), "divide SPEC §7's retry delays by this (60: 1s, 2s, 4s, …; 1: the real schedule)")
	fs.Float64Var(&o.sinkFail, "sink-fail", 0, "share (0..1) of events whose first attempt the sink answers 500 (retried on the scaled schedule)")
	fs.Float64Var(&o.sinkFail500, "sink-500", pick(faults, 0.05, 0), "share (0..1) of POSTs the sink answers 500")
	fs.Float64Var(&o.sinkTooMany, "sink-429", pick(faults, 0.02, 0), "share (0..1) of POSTs the sink answers 429")
	fs.Float64Var(&o.sinkHang, "sink-hang", pick(faults, 0.01, 0), "share (0..1) of POSTs the sink leaves unanswered until hookrelay's delivery timeout")
	fs.Float64Var(&o.sinkGone, "sink-410", pick(faults, 0.005, 0), "share (0..1) of POSTs the sink answers 410 (a dead letter at once; later POSTs of the event get 410 too)")
	fs.Float64Var(&o.sinkDead, "sink-dead", pick(faults, 0.002, 0), "share (0..1) of events the sink answers 500 on every attempt (they exhaust the schedule: dead letters)")
	fs.DurationVar(&o.deliveryTO, "delivery-timeout", pick(faults, time.Second, 10*time.Second), "hookrelay's delivery.timeout (a hung POST fails after it)")
	fs.DurationVar(&o.tolerance, "tolerance", time.Second, "each retry must start within this of its due time (SPEC §7: 1s), measured by the sink")
	fs.StringVar(&o.natsBin, "nats-server", "", "nats-server binary (default: PATH, /usr/sbin/nats-server, else built; 'build' forces the module's version)")
	fs.StringVar(&o.hookrelayBin, "hookrelay", "", "hookrelay binary (default: built from ./cmd/hookrelay into the run dir)")
	fs.IntVar(&o.gomaxprocs, "gomaxprocs", 0, "GOMAXPROCS for hookrelay and nats-server (0: their default, the number of cores)")
	fs.DurationVar(&o.shutdown, "shutdown-timeout", 15*time.Second, "hookrelay's shutdown_timeout")
	fs.Float64Var(&o.mayaShare, "paymaya-share", 0.5, "share (0..1) of PayMaya callbacks; the rest are Paytia")
	fs.IntVar(&o.conns, "conns", 256, "at most this many connections to each ingest process (idle ones are kept)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "provider request timeout")
	fs.IntVar(&o.maxOutstanding, "max-outstanding", 50000, "requests queued or unanswered at once; beyond it the generator records ticks as not sent (a backlog bound)")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 3*time.Minute, "after the load, how long to wait for every 2xx event to reach the sink (or, with sink failures, to become a dead letter); the retry schedule's give-up time is added")
	fs.IntVar(&o.provRetries, "provider-retries", pick(faults, 5, 0), "a provider request that fails (no answer, 5xx, 429) is sent again, the same body, to the next ingest process, this many times (as providers do)")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON (report.txt in the run dir has the table)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write hookload's own CPU profile during the load to this file (is the generator cheap?)")
	var rate, start, step, maxRate float64
	var dur, stepDur time.Duration
	var kill string
	switch mode {
	case "hold":
		fs.Float64Var(&rate, "rate", 1000, "requests per second")
		fs.DurationVar(&dur, "duration", 20*time.Second, "how long")
	case "faults":
		fs.Float64Var(&rate, "rate", 300, "requests per second")
		fs.DurationVar(&dur, "duration", 100*time.Second, "how long")
		fs.StringVar(&kill, "kill", "ingest,deliver,schedule,nats,redis", "process classes to SIGKILL and restart in turn: ingest, deliver, schedule (hookrelay processes with that role), nats, redis")
		fs.DurationVar(&o.killEvery, "kill-every", 3*time.Second, "a SIGKILL this often, the classes in turn")
		fs.DurationVar(&o.down, "down", 500*time.Millisecond, "how long a killed process stays down before it is started again")
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
	case o.conns < 1:
		return bad("--conns %d: want ≥ 1", o.conns)
	case o.maxOutstanding < 1:
		return bad("--max-outstanding %d: want ≥ 1", o.maxOutstanding)
	case o.shutdown < time.Second:
		return bad("--shutdown-timeout %v: want ≥ 1s", o.shutdown)
	}
	for c := range strings.SplitSeq(kill, ",") {
		if c = strings.TrimSpace(c); c != "" {
			o.kill = append(o.kill, c)
		}
	}
	for _, c := range o.kill {
		if !slices.Contains(faultClasses, c) {
			return bad("--kill %q: want some of %s", c, strings.Join(faultClasses, ", "))
		}
	}
	for _, v := range []struct {
		name  string
		share float64
	}{{"--sink-fail", o.sinkFail}, {"--paymaya-share", o.mayaShare}, {"--sink-500", o.sinkFail500}, {"--sink-429", o.sinkTooMany}, {"--sink-hang", o.sinkHang}, {"--sink-410", o.sinkGone}, {"--sink-dead", o.sinkDead}} {
		if v.share < 0 || v.share > 1 {
			return bad("%s %g: want 0..1", v.name, v.share)
		}
	}
	switch {
	case o.sinkFail500+o.sinkTooMany+o.sinkHang+o.sinkGone > 0.5:
		return bad("--sink-500 + --sink-429 + --sink-hang + --sink-410 = %g: want at most 0.5 (or little gets through)", o.sinkFail500+o.sinkTooMany+o.sinkHang+o.sinkGone)
	case o.deliveryTO < 100*time.Millisecond:
		return bad("--delivery-timeout %v: want ≥ 100ms", o.deliveryTO)
	case o.tolerance <= 0:
		return bad("--tolerance %v: want > 0", o.tolerance)
	case o.provRetries < 0 || o.provRetries > 100:
		return bad("--provider-retries %d: want 0..100", o.provRetries)
	case mode == "faults" && (o.killEvery < 100*time.Millisecond || o.down < 0):
		return bad("--kill-every %v, --down %v: want kill-every ≥ 100ms, down ≥ 0", o.killEvery, o.down)
	}
	if mode == "hold" || mode == "faults" {
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

// pick is a if cond, else b: the faults mode has defaults of its own.
func pick[T any](cond bool, a, b T) T {
	if cond {
		return a
	}
	return b
}

// sinkPolicy is the merchant's behaviour the flags ask for.
func (o *options) sinkPolicy() SinkPolicy {
	return SinkPolicy{
		FailFirst: perMillion(o.sinkFail), Dead: perMillion(o.sinkDead), Gone: perMillion(o.sinkGone),
		Hang: perMillion(o.sinkHang), TooMany: perMillion(o.sinkTooMany), Fail: perMillion(o.sinkFail500),
		HangMax:   2*o.deliveryTO + time.Second,
		CheckBody: o.mode == "faults",
	}
}

// faulty reports whether duplicates are to be expected: faults are injected or the
// sink fails on purpose.
func (o *options) faulty() bool {
	p := o.sinkPolicy()
	return o.mode == "faults" || p.FailFirst+p.Dead+p.Gone+p.Hang+p.TooMany+p.Fail > 0
}

func (p SinkPolicy) String() string {
	pct := func(v uint64) string { return fmt.Sprintf("%g%%", float64(v)/1e4) }
	return fmt.Sprintf("500 on first attempts %s, 500 %s, 429 %s, hang %s, 410 %s, always 500 %s of events",
		pct(p.FailFirst), pct(p.Fail), pct(p.TooMany), pct(p.Hang), pct(p.Gone), pct(p.Dead))
}
