package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// selfName is hookload's own line in the process table.
const selfName = "hookload (generator+sink)"

// errSaturated stops the pacing once a saturate step failed.
var errSaturated = errors.New("a step failed")

// runSession starts the system, runs the load, drains, stops everything and reports.
func runSession(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	// No monotonic reading: every "since the epoch" is then wall-clock time, the clock
	// of the attempt log's timestamps too, which the schedule timing compares with the
	// sink's arrivals.
	epoch := time.Now().Round(0)
	var logFile io.Writer = io.Discard // hookload.log in the run dir, once there is one
	logf := func(format string, args ...any) {
		line := fmt.Sprintf("hookload %6.1fs  %s\n", time.Since(epoch).Seconds(), fmt.Sprintf(format, args...))
		io.WriteString(stderr, line)
		io.WriteString(logFile, line)
	}
	// A second Ctrl-C kills hookload at once (the children die with it: Pdeathsig).
	context.AfterFunc(ctx, func() { signal.Reset(os.Interrupt, syscall.SIGTERM) })

	dir, err := prepareDir(o.dir)
	if err != nil {
		return err
	}
	if f, err := os.Create(filepath.Join(dir, "hookload.log")); err == nil {
		defer f.Close()
		logFile = f
	}
	logf("run dir %s", dir)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	c := &cluster{dir: dir, root: root, shutdown: o.shutdown, logf: logf, baseEnv: cleanEnv()}
	if o.gomaxprocs > 0 {
		c.baseEnv = append(c.baseEnv, fmt.Sprintf("GOMAXPROCS=%d", o.gomaxprocs))
	}
	defer func() {
		if err != nil {
			c.killAll()
			err = fmt.Errorf("%w (run dir %s)", err, dir)
		}
	}()

	// Binaries, samples, sink, config.
	if c.bins.relay = o.hookrelayBin; c.bins.relay == "" {
		c.bins.relay = filepath.Join(dir, "bin", "hookrelay")
		logf("building hookrelay")
		if err := c.goBuild(ctx, c.bins.relay, "./cmd/hookrelay"); err != nil {
			return err
		}
	}
	if c.bins.nats, err = c.findNATS(ctx, o.natsBin); err != nil {
		return err
	}
	if c.bins.redis, err = findRedis(); err != nil {
		return err
	}
	maya, paytia, err := loadTemplates(filepath.Join(root, "parse", "testdata"))
	if err != nil {
		return err
	}
	gen := NewGenerator(randHex(4), maya, paytia, o.mayaShare)
	sec := newSecrets(o.endpoints)
	var epIDs []string
	for i := range o.endpoints {
		epIDs = append(epIDs, endpointID(i))
	}
	sinkAddr, err := c.ports.addr()
	if err != nil {
		return err
	}
	sink, err := NewSink(epoch, epIDs, sec.endpoints, o.sinkPolicy(), sinkAddr)
	if err != nil {
		return err
	}
	defer sink.Close()
	c.cfgPath = filepath.Join(dir, "hookrelay.yaml")
	if err := writeFile(c.cfgPath, relayConfig(sec, sink.URL(), o.maxInFlight, o.retryScale, o.shutdown, o.deliveryTO)); err != nil {
		return err
	}

	rep := &Report{
		Mode: o.mode, Dir: dir, Started: epoch, Procs: o.procsRaw, Endpoints: o.endpoints, Problems: []string{},
		Settings: Settings{
			RetryScale: o.retryScale, SinkFail: o.sinkFail, MaxInFlight: o.maxInFlight, MayaShare: o.mayaShare,
			Sink: o.sinkPolicy().String(), DeliveryTO: o.deliveryTO.String(), ProvRetries: o.provRetries,
			Conns: o.conns, MaxOutstanding: o.maxOutstanding, NATSServer: c.bins.nats, GOMAXPROCS: o.gomaxprocs,
			NATSVersion: version(c.bins.nats, `v\d+\.\d+\.\d+\S*`), RedisVersion: version(c.bins.redis, `v=(\S+)`),
		},
	}
	if o.mode == "saturate" {
		rep.Settings.P99Limit = o.p99Limit.String()
	}

	// The processes.
	logf("starting nats-server %s (JetStream, store in %s)", rep.Settings.NATSVersion, filepath.Join(dir, "data", "nats"))
	if err := c.startNATS(ctx); err != nil {
		return err
	}
	logf("starting redis-server %s (AOF, appendfsync everysec)", rep.Settings.RedisVersion)
	if err := c.startRedis(ctx); err != nil {
		return err
	}
	logf("starting hookrelay: %s", o.procsRaw)
	if err := c.startRelays(ctx, o.procs); err != nil {
		return err
	}
	for _, p := range c.all() {
		extra := ""
		if p.ingest != "" {
			extra = " ingest " + p.ingest
		}
		if p.admin != "" {
			extra += " admin " + p.admin
		}
		logf("  %s pid %d%s, log %s", p.name, p.pid(), extra, p.logPath)
	}
	smp := newSampler(epoch)
	smp.watch(selfName, "self")
	for _, p := range c.all() {
		smp.watch(p.name, fmt.Sprint(p.pid()))
	}
	stopSampling := make(chan struct{})
	go smp.run(time.Second, stopSampling)
	defer close(stopSampling)

	runner := NewRunner(ctx, epoch, gen, c.ingestAddrs(), sec.maya, sec.paytia, o.conns, o.timeout, o.maxOutstanding)
	runner.retries, runner.retryWait = o.provRetries, 250*time.Millisecond
	admin := newAdminClient(c, sec.admin)
	policy := scaledPolicy(o.retryScale)
	warm, err := warmUp(ctx, runner, sink, epIDs, logf)
	if err != nil {
		return err
	}

	// A process that exits on its own stops the load.
	loadCtx, stopLoad := context.WithCancelCause(ctx)
	defer stopLoad(nil)
	var died atomic.Pointer[proc]
	monitorDone := make(chan struct{})
	defer close(monitorDone)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-monitorDone:
				return
			case <-t.C:
				if p := c.unexpectedExit(); p != nil && died.CompareAndSwap(nil, p) {
					logf("%s exited on its own (%v); stopping the load. Log tail:\n%s", p.name, p.waitErr, p.logTail(15))
					stopLoad(fmt.Errorf("%s exited", p.name))
				}
			}
		}
	}()

	// Other work on the machine skews every figure: say so.
	idle0, _ := readCPUTimes()
	time.Sleep(time.Second)
	idle1, _ := readCPUTimes()
	rep.Machine.IdleBusy = float64(idle1.busy-idle0.busy) / clkTck
	if rep.Machine.IdleBusy > 0.25 {
		logf("WARNING: the machine is busy with other work (%.2f cores with the system idle): the figures will be off", rep.Machine.IdleBusy)
	}

	// The load.
	plan := o.plan
	rec := newRecorder(len(plan))
	logf("load: %s", describePlan(plan))
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	startSnap := smp.sample()
	cpuStart, _ := readCPUTimes()
	loadStart := time.Now()
	loadStartNs := loadStart.Sub(epoch).Nanoseconds()
	paced := make(chan struct{})
	go func() {
		defer close(paced)
		runner.Run(loadCtx, plan, loadStart, rec)
	}()
	var fl *faulter
	faultsDone := make(chan struct{})
	faultCtx, stopFaults := context.WithCancel(loadCtx)
	if o.mode == "faults" {
		fl = &faulter{c: c, classes: o.kill, every: o.killEvery, down: o.down, epoch: epoch, loadAt: loadStart, logf: logf,
			onSwap: func(np *proc) { smp.watch(np.name, fmt.Sprint(np.pid())) }}
		logf("faults: SIGKILL every %v, in turn: %s; down %v each; sink: %s", o.killEvery, strings.Join(o.kill, ", "), o.down, o.sinkPolicy())
		go func() { defer close(faultsDone); fl.run(faultCtx) }()
	} else {
		close(faultsDone)
	}
	progressDone := make(chan struct{})
	go progress(logf, rec, sink, runner, int64(len(warm)*len(epIDs)), progressDone)
	if o.mode == "saturate" {
		rep.Steps, rep.HighestSustained, rep.StopReason = climb(loadCtx, stopLoad, o, plan, loadStart, rec, paced, logf)
	}
	<-paced
	if context.Cause(loadCtx) == nil { // the load lasts the plan's length, not until its last tick
		_, end := plan.stepBounds(len(plan) - 1)
		time.Sleep(time.Until(loadStart.Add(end)))
	}
	stopFaults()
	<-faultsDone // a process being restarted is up again
	loadEnd := time.Now()
	endSnap := smp.sample()
	cpuEnd, _ := readCPUTimes()
	if o.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	loadDur := loadEnd.Sub(loadStart)
	if cause := context.Cause(loadCtx); cause != nil && !errors.Is(cause, errSaturated) && o.mode == "hold" {
		rep.Problems = append(rep.Problems, fmt.Sprintf("load stopped after %.1fs: %v", loadDur.Seconds(), cause))
	}
	rep.Delivery.DeliveredAtEnd = max(0, sink.okDistinct.Load()-int64(len(warm)*len(epIDs)))
	logf("load over after %.1fs; waiting for %d outstanding answers", loadDur.Seconds(), runner.outstanding.Load())
	runner.Wait()
	close(progressDone)

	// Drain: every 2xx event must reach every endpoint. A Ctrl-C or a process that
	// exited on its own ends it at once: waiting out the timeout would prove nothing.
	ids := okIDs(rec.all())
	drainFor := o.drainTimeout + policy.GiveUpAfter // time for the last events to exhaust the schedule
	logf("draining: %d events answered 2xx, waiting up to %v for their deliveries (or dead letters)", len(ids), drainFor)
	deadline := time.Now().Add(drainFor)
	lastLog := time.Now()
	pend := newPending(ids, epIDs)
	dead := map[string]letter{}
	var lastDead time.Time
	for {
		missing := pend.prune(sink, dead)
		if missing > 0 && time.Since(lastDead) > 2*time.Second {
			if d, err := admin.deadLetters(ctx); err == nil {
				dead = d
				missing = pend.prune(sink, dead)
			} else {
				logf("reading the dead letters: %v", err)
			}
			lastDead = time.Now()
		}
		if missing == 0 {
			rep.Delivery.DrainSeconds = time.Since(loadEnd).Seconds()
			logf("drained: every delivery arrived %.1fs after the load ended", rep.Delivery.DrainSeconds)
			break
		}
		interrupted := ""
		if ctx.Err() != nil {
			interrupted = "hookload was interrupted"
		} else if p := died.Load(); p != nil {
			interrupted = p.name + " exited"
		}
		if interrupted != "" {
			rep.Delivery.DrainSeconds, rep.Delivery.DrainInterrupted = time.Since(loadEnd).Seconds(), interrupted
			logf("drain stopped after %.1fs (%s): %d deliveries undelivered", rep.Delivery.DrainSeconds, interrupted, missing)
			break
		}
		if time.Now().After(deadline) {
			rep.Delivery.DrainSeconds, rep.Delivery.DrainTimedOut = time.Since(loadEnd).Seconds(), true
			logf("drain gave up after %.1fs: %d deliveries missing", rep.Delivery.DrainSeconds, missing)
			break
		}
		if time.Since(lastLog) > 5*time.Second {
			logf("draining: %d deliveries still to come (%d dead letters so far)", missing, len(dead))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}

	// Dead letters once more (some may have come with the last deliveries), and the
	// schedule's punctuality as the sink saw it.
	if d, err := admin.deadLetters(ctx); err == nil {
		dead = d
	} else {
		rep.Problems = append(rep.Problems, fmt.Sprintf("could not read the dead letters: %v", err))
	}
	rep.Schedule = measureTiming(ctx, admin, epoch, sink, ids, policy, o.tolerance, fl, logf)
	if fl != nil {
		kills, _ := fl.result()
		rep.Faults = &FaultReport{Classes: o.kill, Every: o.killEvery.String(), Down: o.down.String(), Kills: kills, Summary: killSummary(kills)}
		for _, k := range kills {
			if k.Err != "" {
				rep.Problems = append(rep.Problems, fmt.Sprintf("%s did not come back after its SIGKILL at %.1fs: %s", k.Process, k.At, k.Err))
			}
		}
	}

	// Stop.
	smp.sample()
	rep.Server = serverSide(c.saveMetrics())
	logf("stopping: SIGTERM to hookrelay, then SIGTERM to redis, then SIGINT to nats")
	stops := c.stopAll(func(p *proc) {
		smp.unwatch(p.name)
	})
	stopLoad(nil)
	byName := map[string]stopResult{}
	for _, s := range stops {
		byName[s.Name] = s
		killed := ""
		if s.Killed {
			killed = " (KILLED: no exit within the bound)"
		}
		if s.Err != "" {
			logf("  %s: sending %s failed: %s", s.Name, s.Signal, s.Err)
		}
		logf("  %s exited %d %.2fs after %s%s", s.Name, s.ExitCode, s.Took.Seconds(), s.Signal, killed)
	}

	// The report.
	fillIngest(rep, rec, plan, loadStartNs, loadDur)
	rep.Ingest.Retried = runner.retried.Load()
	rep.Delivery.Faulty = o.faulty()
	fillDelivery(rep, rec, sink, epIDs, warm, dead, policy.MaxAttempts())
	fillTimeline(rep, rec, sink, loadStartNs, warm)
	selfEnd, _ := readUsage("self", time.Since(epoch))
	rep.Processes = append(rep.Processes, ProcStat{
		Name: selfName, PID: os.Getpid(),
		CPULoad: endSnap[selfName].CPU - startSnap[selfName].CPU, CPUTotal: selfEnd.CPU,
		MaxRSSMB: float64(max(selfEnd.PeakKB, smp.peak(selfName))) / 1024,
	})
	for _, p := range c.all() {
		s := byName[p.name]
		ps := ProcStat{
			Name: p.name, PID: p.pid(), CPULoad: endSnap[p.name].CPU - startSnap[p.name].CPU,
			CPUTotal: s.CPU, MaxRSSMB: float64(max(s.MaxRSSKB, smp.peak(p.name))) / 1024,
			ExitCode: &s.ExitCode, StopSecs: s.Took.Seconds(), Killed: s.Killed, LogPath: p.logPath,
		}
		ps.Log, _ = scanLogFile(p.logPath)
		if s.ExitCode != 0 || s.Killed {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s exited %d (killed: %v) after %s; log %s", p.name, s.ExitCode, s.Killed, s.Signal, p.logPath))
		}
		rep.Processes = append(rep.Processes, ps)
	}
	secs := max(loadDur.Seconds(), 1e-9)
	rep.Machine = Machine{
		IdleBusy: rep.Machine.IdleBusy,
		Cores:    runtime.NumCPU(),
		Busy:     float64(cpuEnd.busy-cpuStart.busy) / clkTck / secs,
		SoftIRQ:  float64(cpuEnd.softirq-cpuStart.softirq) / clkTck / secs,
		Steal:    float64(cpuEnd.steal-cpuStart.steal) / clkTck / secs,
	}
	for i := range rep.Processes {
		rep.Processes[i].CPUPct = 100 * rep.Processes[i].CPULoad / secs
		rep.Machine.Ours += rep.Processes[i].CPULoad / secs
	}
	rep.Machine.Rest = max(0, rep.Machine.Busy-rep.Machine.Ours) // the two are read a moment apart
	// A faults run restarts processes: the killed ones' CPU shows up as "the rest".
	if rep.Machine.Rest > 0.25 && o.mode != "faults" {
		rep.Problems = append(rep.Problems, fmt.Sprintf("noisy machine: other work used %.2f of %d cores during the load; these figures are not comparable with a quiet run", rep.Machine.Rest, rep.Machine.Cores))
	}
	if p := died.Load(); p != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s exited on its own during the run (%v); log %s", p.name, p.waitErr, p.logPath))
	}
	d := rep.Delivery
	rep.Problems = append(rep.Problems, d.problems()...)
	if rep.Ingest.DupAnswers > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d distinct callbacks were answered as duplicates", rep.Ingest.DupAnswers))
	}
	if rep.Schedule != nil && rep.Schedule.Violations > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("schedule: %d attempts started more than %s after their due time (outside any fault) or before it", rep.Schedule.Violations, rep.Schedule.Tolerance))
	}
	// Only events answered 2xx are accounted: a faults run whose providers mostly got
	// no 2xx (after their retries) would prove little, so more than 1 % fails it.
	ingestFailed := o.mode == "faults" && 100*int64(rep.Ingest.Errors+rep.Ingest.NotSent) > rep.Ingest.Scheduled
	if ingestFailed {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d of %d provider requests got no 2xx even after %d retries: more than 1 %%", rep.Ingest.Errors+rep.Ingest.NotSent, rep.Ingest.Scheduled, o.provRetries))
	}
	if t := rep.Schedule; t != nil && t.Unmeasured > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("schedule: %d retried deliveries' attempt logs could not be read (not measured)", t.Unmeasured))
	}
	if o.mode == "hold" && rep.Ingest.Errors > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d provider requests were answered with an error or failed", rep.Ingest.Errors))
	}
	if o.mode == "hold" && rep.Ingest.NotSent > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("overload: %d requests were not sent, the generator's backlog was full (%d outstanding): the system answered slower than the %.0f/s offered", rep.Ingest.NotSent, o.maxOutstanding, rep.Ingest.OfferedRate))
	}
	if o.mode == "hold" && rep.Ingest.OKRate < 0.95*rep.Ingest.OfferedRate {
		rep.Problems = append(rep.Problems, fmt.Sprintf("overload: %.0f 2xx/s during the load for %.0f/s offered", rep.Ingest.OKRate, rep.Ingest.OfferedRate))
	}
	if err := writeReports(rep, smp); err != nil {
		logf("writing reports: %v", err)
	}
	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.printText(stdout)
	}
	if runFailed(rep, d.failed(), died.Load() != nil, ingestFailed, stops) {
		return failedRun{len(rep.Problems)}
	}
	return nil
}

// failedRun is a run that completed but lost events or saw a process fail.
type failedRun struct{ problems int }

func (f failedRun) Error() string { return fmt.Sprintf("%d problem(s); see the report", f.problems) }

// climb evaluates saturate's steps as the load runs: step i once its end plus a grace
// period has passed. At the first failing step it stops the load; it returns the
// evaluated steps, the highest rate that passed and why it stopped.
func climb(ctx context.Context, stop context.CancelCauseFunc, o *options, plan Plan, start time.Time, rec *recorder, paced <-chan struct{}, logf func(string, ...any)) ([]StepStat, float64, string) {
	grace := max(2*o.p99Limit, time.Second)
	var steps []StepStat
	var highest float64
	for i, s := range plan {
		_, end := plan.stepBounds(i)
		t := time.NewTimer(time.Until(start.Add(end + grace)))
		select {
		case <-ctx.Done():
			t.Stop()
			return steps, highest, fmt.Sprintf("stopped during step %d: %v", i+1, context.Cause(ctx))
		case <-t.C:
		}
		if ctx.Err() != nil { // stopped as the timer fired: the step is cut short
			return steps, highest, fmt.Sprintf("stopped during step %d: %v", i+1, context.Cause(ctx))
		}
		// Every request of the step was due by now: those the pacer has not even
		// queued yet (it is that far behind) count as unanswered too.
		st := evalStep(i, s, s.count(), rec.step(i), o.p99Limit, o.minAchieved)
		steps = append(steps, st)
		verdict := "pass"
		if !st.Pass {
			verdict = "FAIL: " + st.Why
		}
		logf("step %d: target %.0f/s, achieved %.0f/s, ingest p50 %.1fms p99 %.1fms, errors %d: %s", st.Step, st.Rate, st.Achieved, st.Ingest.P50, st.Ingest.P99, st.Errors, verdict)
		if !st.Pass {
			stop(errSaturated)
			return steps, highest, fmt.Sprintf("step %d at %.0f/s failed: %s", st.Step, st.Rate, st.Why)
		}
		highest = s.Rate
	}
	<-paced
	return steps, highest, fmt.Sprintf("every step passed, up to --max-rate %.0f/s", plan[len(plan)-1].Rate)
}

// warmUp posts one PayMaya and one Paytia callback to each ingest process and waits
// until they reach every endpoint: it proves the wiring (tokens, SSRF allow-list,
// signatures) before the load, and opens connections. Their ids are left out of the
// figures.
func warmUp(ctx context.Context, r *Runner, sink *Sink, endpoints []string, logf func(string, ...any)) (map[string]bool, error) {
	warm := map[string]bool{}
	seq := uint64(1) << 46 // far from the load's sequence numbers
	for _, tg := range r.targets {
		for _, provider := range []string{"paymaya", "paytia"} {
			for ; ; seq++ {
				if r.gen.pick(seq).provider == provider {
					break
				}
			}
			res, errText := r.do(seq, tg, time.Since(r.epoch).Nanoseconds())
			seq++
			if !res.ok() {
				return nil, fmt.Errorf("warm-up %s callback to %s: %d %s", provider, tg.paytia, res.status, errText)
			}
			warm[res.id] = true
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for id := range warm {
			for _, ep := range endpoints {
				if _, ok := sink.firstOK(ep, id); !ok {
					missing++
				}
			}
		}
		if missing == 0 {
			logf("warm-up: %d callbacks stored and delivered", len(warm))
			return warm, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("warm-up: %d deliveries did not reach the sink within 30s (see the hookrelay logs)", missing)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// progress logs the running totals every 5 seconds until done; warm is the warm-up's
// deliveries (callbacks × endpoints), left out of "delivered".
func progress(logf func(string, ...any), rec *recorder, sink *Sink, r *Runner, warm int64, done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	var lastSent, lastOK int64
	for {
		select {
		case <-done:
			return
		case <-t.C:
			sent, ok := rec.sent.Load(), rec.ok.Load()
			logf("answered %d (%.0f/s), 2xx %d (%.0f/s), errors or not sent %d, outstanding %d, delivered %d",
				sent, float64(sent-lastSent)/5, ok, float64(ok-lastOK)/5, rec.failed.Load(), r.outstanding.Load(), sink.okDistinct.Load()-warm)
			lastSent, lastOK = sent, ok
		}
	}
}

func describePlan(p Plan) string {
	if len(p) == 1 {
		return fmt.Sprintf("%.0f/s for %v (%d requests), open loop", p[0].Rate, p[0].Duration, p.Total())
	}
	return fmt.Sprintf("%.0f/s to %.0f/s in %d steps of %v, open loop", p[0].Rate, p[len(p)-1].Rate, len(p), p[0].Duration)
}

// prepareDir makes the run dir: a new temporary one, or dir if it is empty or absent
// (a used one would hold another run's streams and endpoints).
func prepareDir(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "hookload-")
		if err != nil {
			return "", err
		}
		dir = d
	} else {
		if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
			return "", usageError{fmt.Sprintf("--dir %s is not empty; give a new or empty directory", dir)}
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		dir = abs
	}
	for _, sub := range []string{"bin", "logs", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// moduleRoot is the directory of the hookrelay module (go env GOMOD).
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run hookload from the hookrelay repository (it builds ./cmd/hookrelay and reads parse/testdata)")
	}
	return filepath.Dir(mod), nil
}

// version runs bin --version and extracts re's match (its group, if any).
func version(bin, re string) string {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "?"
	}
	m := regexp.MustCompile(re).FindStringSubmatch(string(out))
	switch len(m) {
	case 0:
		return strings.TrimSpace(string(out))
	case 1:
		return m[0]
	default:
		return m[1]
	}
}

// writeReports keeps report.json, report.txt, timeline.csv and usage.csv in the run dir.
func writeReports(rep *Report, smp *sampler) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(rep.Dir, "report.json"), b, 0o644); err != nil {
		return err
	}
	var txt, tl, us strings.Builder
	rep.printText(&txt)
	rep.writeTimeline(&tl)
	us.WriteString("process,t_s,cpu_s,rss_kb,hwm_kb\n")
	smp.mu.Lock()
	for _, n := range slices.Sorted(maps.Keys(smp.series)) {
		for _, u := range smp.series[n] {
			fmt.Fprintf(&us, "%q,%.3f,%.2f,%d,%d\n", n, u.At.Seconds(), u.CPU, u.RSSKB, u.PeakKB)
		}
	}
	smp.mu.Unlock()
	return errors.Join(
		os.WriteFile(filepath.Join(rep.Dir, "report.txt"), []byte(txt.String()), 0o644),
		os.WriteFile(filepath.Join(rep.Dir, "timeline.csv"), []byte(tl.String()), 0o644),
		os.WriteFile(filepath.Join(rep.Dir, "usage.csv"), []byte(us.String()), 0o644),
	)
}

// runFailed decides the exit status. The run fails on lost or unchecked events
// (accountingFailed), a process that died on its own, a faults run whose providers
// mostly got no 2xx (ingestFailed), a schedule violation, more than 1 % of the
// retried deliveries unmeasured, a kill that could not be made, or a process that did
// not stop cleanly at the end. Other problems are reported but do not fail it.
func runFailed(rep *Report, accountingFailed, died, ingestFailed bool, stops []stopResult) bool {
	if accountingFailed || died || ingestFailed {
		return true
	}
	if t := rep.Schedule; t != nil && (t.Violations > 0 || 100*t.Unmeasured > t.Deliveries) {
		return true
	}
	if rep.Faults != nil {
		for _, k := range rep.Faults.Kills {
			if k.Err != "" {
				return true
			}
		}
	}
	for _, s := range stops {
		if s.ExitCode != 0 || s.Killed {
			return true
		}
	}
	return false
}
