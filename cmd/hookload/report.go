package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
)

// Report is everything a run measured; --json prints it as is.
type Report struct {
	Mode      string     `json:"mode"`
	Dir       string     `json:"dir"`
	Started   time.Time  `json:"started"`
	Procs     string     `json:"procs"`
	Endpoints int        `json:"endpoints"`
	Settings  Settings   `json:"settings"`
	Ingest    Ingest     `json:"ingest"`
	Server    ServerSide `json:"server_side"`
	Delivery  Delivery   `json:"delivery"`
	// Steps are saturate's stairs, those evaluated before it stopped (none for hold).
	Steps []StepStat `json:"steps"`
	// HighestSustained is saturate's answer: the highest rate whose step passed.
	HighestSustained float64 `json:"highest_sustained_rate,omitempty"`
	StopReason       string  `json:"stop_reason,omitempty"`
	// Schedule is when retries arrived against their due times (nil: none retried).
	Schedule *Timing `json:"schedule,omitempty"`
	// Faults are the kills of the faults mode.
	Faults    *FaultReport `json:"faults,omitempty"`
	Processes []ProcStat   `json:"processes"`
	Machine   Machine      `json:"machine"`
	Timeline  []Second     `json:"timeline"`
	Problems  []string     `json:"problems"`
}

// Settings are the knobs of the run.
type Settings struct {
	RetryScale     float64 `json:"retry_scale"`
	SinkFail       float64 `json:"sink_fail"`
	Sink           string  `json:"sink_policy"`
	DeliveryTO     string  `json:"delivery_timeout"`
	ProvRetries    int     `json:"provider_retries"`
	MaxInFlight    int     `json:"max_in_flight"`
	MayaShare      float64 `json:"paymaya_share"`
	Conns          int     `json:"conns_per_ingest"`
	MaxOutstanding int     `json:"max_outstanding"`
	P99Limit       string  `json:"p99_limit,omitempty"`
	GOMAXPROCS     int     `json:"children_gomaxprocs,omitempty"`
	NATSServer     string  `json:"nats_server"`
	NATSVersion    string  `json:"nats_version"`
	RedisVersion   string  `json:"redis_version"`
}

// Ingest is the provider side.
type Ingest struct {
	LoadSeconds float64        `json:"load_seconds"` // the plan's length (or until stopped)
	Scheduled   int64          `json:"scheduled"`
	Sent        int            `json:"sent"`
	NotSent     int            `json:"not_sent"` // the generator's backlog was full (--max-outstanding)
	OK          int            `json:"answered_2xx"`
	DupAnswers  int            `json:"answered_duplicate"`       // 2xx with "duplicate": true to a first try (should be 0)
	Retried     int64          `json:"provider_retries"`         // requests sent again (--provider-retries)
	RetryDups   int            `json:"retry_answered_duplicate"` // a retry answered "duplicate": the lost answer's event was stored (expected under faults)
	Errors      int            `json:"errors"`                   // sent, but non-2xx or a transport error
	Statuses    map[string]int `json:"statuses"`
	OfferedRate float64        `json:"offered_per_s"` // scheduled / load seconds
	// OKRate is the 2xx answers that came during the load, per second of load: the
	// rate achieved.
	OKRate float64 `json:"achieved_2xx_per_s"`
	// Throughput is every 2xx answer over the time from the start of the load to the
	// last answer (longer than the load when a backlog built up).
	Throughput float64    `json:"throughput_2xx_per_s"`
	AnswerSpan float64    `json:"answer_span_seconds"`
	Latency    Summary    `json:"latency"`     // 2xx answers, from the scheduled start
	LatencyAll Summary    `json:"latency_all"` // every answer or failure
	PacerLag   Summary    `json:"pacer_lag"`   // the generator's own lateness: scheduled start to queued
	SendDelay  Summary    `json:"send_delay"`  // scheduled start to sent: pacer lag + waiting for one of --conns connections
	PayMaya    int        `json:"paymaya_2xx"`
	Paytia     int        `json:"paytia_2xx"`
	TopErrors  []msgCount `json:"top_errors,omitempty"`
}

// Delivery is the merchant side.
type Delivery struct {
	Expected  int64 `json:"expected"` // 2xx events × endpoints
	Delivered int64 `json:"delivered"`
	Missing   int64 `json:"missing"` // lost: expected but neither answered 200 by the sink nor a dead letter
	// DeadLettered are expected deliveries the sink never answered 200 that are open
	// dead letters (the sink answered 410, or failed every attempt).
	DeadLettered int64 `json:"dead_lettered"`
	// DeliveredAndDead were answered 200 and are dead letters too: a bug.
	DeliveredAndDead int64 `json:"delivered_and_dead"`
	// DeadUncaused are dead letters the sink gave no cause for (no 410, and it did not
	// fail every attempt it got): suspicious.
	DeadUncaused int64   `json:"dead_not_caused_by_sink"`
	DupPairs     int64   `json:"duplicate_deliveries"` // (endpoint, event) pairs POSTed again after a 200
	DupRate      float64 `json:"duplicate_rate"`       // duplicate POSTs / delivered
	// Unchecked are 2xx answers that named no new event: no id, or an id another 2xx
	// answer named too. Every request is a distinct event, so each is an event
	// accepted but (by its answer) not stored as itself, whose loss Missing can't see.
	Unchecked  int64 `json:"unchecked_2xx"`
	sinkCounts `json:"sink"`
	// Strays are events the sink got that no 2xx answer named (e.g. stored although
	// the provider saw a timeout): legitimate under at-least-once, but counted.
	Strays         int64   `json:"strays"`
	E2E            Summary `json:"e2e_latency"` // provider POST scheduled start → sink receipt
	DeliveredAtEnd int64   `json:"delivered_when_load_ended"`
	DrainSeconds   float64 `json:"drain_seconds"` // from the end of the load until all were delivered
	DrainTimedOut  bool    `json:"drain_timed_out"`
	// DrainInterrupted says why the drain stopped early (Ctrl-C, a process exited):
	// then Missing counts deliveries still to come, not known to be lost.
	DrainInterrupted string   `json:"drain_interrupted,omitempty"`
	MissingExamples  []string `json:"missing_examples,omitempty"`
	// Faulty: faults were injected or the sink fails on purpose, so duplicates are
	// expected (up to the 1 % goal).
	Faulty bool `json:"-"`
}

// StepStat is one step of the plan.
type StepStat struct {
	Step       int     `json:"step"`
	Rate       float64 `json:"target_per_s"`
	Scheduled  int64   `json:"scheduled"`
	OK         int     `json:"answered_2xx"`
	Errors     int     `json:"errors"`
	Incomplete int64   `json:"unanswered_at_evaluation"` // scheduled (by the plan) but neither answered nor recorded as not sent
	NotSent    int     `json:"not_sent"`                 // the generator's backlog was full (also counted in Errors)
	Achieved   float64 `json:"achieved_2xx_per_s"`
	Ingest     Summary `json:"ingest_latency"`
	SendP99    float64 `json:"send_delay_p99_ms"`
	PacerP99   float64 `json:"pacer_lag_p99_ms"`
	E2E        Summary `json:"e2e_latency"`
	Pass       bool    `json:"pass"`
	Why        string  `json:"why,omitempty"`
}

// ProcStat is one process's resources and end.
type ProcStat struct {
	Name     string   `json:"name"`
	PID      int      `json:"pid"`
	CPULoad  float64  `json:"cpu_s_during_load"`
	CPUPct   float64  `json:"cpu_pct_during_load"` // of one core
	CPUTotal float64  `json:"cpu_s_total"`
	MaxRSSMB float64  `json:"max_rss_mb"`
	ExitCode *int     `json:"exit_code,omitempty"`
	StopSecs float64  `json:"stop_seconds,omitempty"`
	Killed   bool     `json:"killed,omitempty"`
	Log      logStats `json:"log"`
	LogPath  string   `json:"log_path,omitempty"`
}

// Machine is the whole machine's CPU during the load, in cores (seconds per second).
type Machine struct {
	Cores   int     `json:"cores"`
	Busy    float64 `json:"busy_cores"`
	Ours    float64 `json:"our_processes_cores"` // hookload and its children
	Rest    float64 `json:"rest_cores"`          // other processes and kernel work not charged to a process (softirq: loopback networking)
	SoftIRQ float64 `json:"softirq_cores"`
	Steal   float64 `json:"steal_cores"` // taken by the hypervisor
	// IdleBusy is how busy the machine was in the second before the load, with the
	// system started and idle: other work on the machine.
	IdleBusy float64 `json:"busy_cores_before_load"`
}

// Second is one second of the load (from its start): requests by scheduled time,
// answers by answer time, deliveries by arrival time.
type Second struct {
	T         int     `json:"t"`
	Sent      int     `json:"sent"`
	OK        int     `json:"answered_2xx"`
	Errors    int     `json:"errors"`
	IngestP99 float64 `json:"ingest_p99_ms"`
	Delivered int     `json:"delivered"`
}

// evalStep judges a saturate step of scheduled requests, res those answered (or
// failed, or not sent) so far: it passes when nothing failed, the ingest p99 (with
// requests still unanswered or never sent counted as infinitely slow) is within limit,
// and the 2xx answers per second reach minFrac of the target.
func evalStep(i int, s Step, scheduled int64, res []result, limit time.Duration, minFrac float64) StepStat {
	st := StepStat{Step: i + 1, Rate: s.Rate, Scheduled: scheduled}
	var okLat, all, lag, pace []int64
	for _, r := range res {
		pace = append(pace, r.pace)
		if r.status == statusSkipped {
			st.NotSent++
			all = append(all, math.MaxInt64) // never answered: infinitely slow, not lat 0
		} else {
			lag = append(lag, r.lag)
			all = append(all, r.lat)
		}
		if r.ok() {
			st.OK++
			okLat = append(okLat, r.lat)
		} else {
			st.Errors++
		}
	}
	st.Incomplete = max(0, scheduled-int64(len(res)))
	for range st.Incomplete {
		all = append(all, math.MaxInt64)
	}
	st.Ingest = summarize(okLat)
	st.SendP99, st.PacerP99 = summarize(lag).P99, summarize(pace).P99
	slices.Sort(all)
	p99 := percentile(all, 99)
	st.Achieved = float64(st.OK) / s.Duration.Seconds()
	var why []string
	if st.Errors > 0 {
		why = append(why, fmt.Sprintf("%d errors", st.Errors))
	}
	unanswered := fmt.Sprintf("%d unanswered", st.Incomplete)
	if st.NotSent > 0 {
		unanswered = fmt.Sprintf("%d unanswered or not sent", st.Incomplete+int64(st.NotSent))
	}
	if p99 > limit.Nanoseconds() {
		switch {
		case p99 == math.MaxInt64:
			why = append(why, fmt.Sprintf("p99 > %v: %s", limit, unanswered))
		case st.Incomplete > 0 || st.NotSent > 0:
			why = append(why, fmt.Sprintf("ingest p99 %.1fms > %v (counting %s as slowest)", ms(p99), limit, unanswered))
		default:
			why = append(why, fmt.Sprintf("ingest p99 %.1fms > %v", ms(p99), limit))
		}
	}
	if st.Achieved < minFrac*s.Rate {
		why = append(why, fmt.Sprintf("achieved %.0f/s < %.0f%% of %.0f/s", st.Achieved, minFrac*100, s.Rate))
	}
	if st.PacerP99 > ms(limit.Nanoseconds()) {
		why = append(why, fmt.Sprintf("the generator itself ran late (pacer lag p99 %.1fms): hookload is short of CPU", st.PacerP99))
	}
	st.Pass = len(why) == 0
	st.Why = strings.Join(why, "; ")
	return st
}

// okIDs are the distinct event ids answered 2xx, with the earliest scheduled start.
func okIDs(res []result) map[string]int64 {
	out := make(map[string]int64, len(res))
	for _, r := range res {
		if r.ok() && r.id != "" {
			if d, ok := out[r.id]; !ok || r.due < d {
				out[r.id] = r.due
			}
		}
	}
	return out
}

// pending is the (endpoint, event id) pairs still to be delivered: endpoint → ids.
type pending map[string]map[string]struct{}

func newPending(ids map[string]int64, endpoints []string) pending {
	p := make(pending, len(endpoints))
	for _, ep := range endpoints {
		set := make(map[string]struct{}, len(ids))
		for id := range ids {
			set[id] = struct{}{}
		}
		p[ep] = set
	}
	return p
}

// prune drops the pairs the sink has answered 200, or that are dead letters (by
// delivery id), since the last call and returns how many are left; it holds each
// endpoint's lock only over that endpoint's pending ids.
func (p pending) prune(sink *Sink, dead map[string]letter) int64 {
	var n int64
	for ep, set := range p {
		e := sink.endpoints[ep]
		e.mu.Lock()
		for id := range set {
			if a := e.got[id]; a != nil && a.firstOK != 0 {
				delete(set, id)
			} else if _, ok := dead[deliver.DeliveryID(id, ep)]; ok {
				delete(set, id)
			}
		}
		e.mu.Unlock()
		n += int64(len(set))
	}
	return n
}

// missingDeliveries counts (endpoint, id) pairs neither answered 200 by the sink nor
// dead letters.
func missingDeliveries(ids map[string]int64, sink *Sink, endpoints []string, dead map[string]letter, examples int) (int64, []string) {
	var n int64
	var ex []string
	for _, ep := range endpoints {
		e := sink.endpoints[ep]
		e.mu.Lock()
		for id := range ids {
			if _, isDead := dead[deliver.DeliveryID(id, ep)]; isDead {
				continue
			}
			if a := e.got[id]; a == nil || a.firstOK == 0 {
				n++
				if len(ex) < examples {
					ex = append(ex, ep+"/"+id)
				}
			}
		}
		e.mu.Unlock()
	}
	return n, ex
}

// fillIngest computes the provider-side figures.
func fillIngest(rep *Report, rec *recorder, plan Plan, loadStart int64, loadDur time.Duration) {
	res := rec.all()
	in := &rep.Ingest
	in.LoadSeconds = loadDur.Seconds()
	in.Statuses = map[string]int{}
	var okLat, allLat, lag, pace []int64
	var okInLoad int
	var lastAnswer int64
	for _, r := range res {
		switch {
		case r.status == statusSkipped:
			in.Statuses["not sent"]++
		case r.status == statusTransport:
			in.Statuses["transport error"]++
		default:
			in.Statuses[strconv.Itoa(int(r.status))]++
		}
		pace = append(pace, r.pace)
		if r.status != statusSkipped {
			in.Sent++
			lag = append(lag, r.lag)
			allLat = append(allLat, r.lat)
		}
		if r.ok() {
			in.OK++
			okLat = append(okLat, r.lat)
			if r.due+r.lat-loadStart <= loadDur.Nanoseconds() {
				okInLoad++
			}
			lastAnswer = max(lastAnswer, r.due+r.lat)
			if r.dup && r.tries > 0 {
				in.RetryDups++
			} else if r.dup {
				in.DupAnswers++
			}
			if r.maya {
				in.PayMaya++
			} else {
				in.Paytia++
			}
		} else if r.status == statusSkipped {
			in.NotSent++
		} else {
			in.Errors++
		}
	}
	for i := range plan {
		in.Scheduled += rec.scheduled[i].Load()
	}
	if s := loadDur.Seconds(); s > 0 {
		in.OfferedRate = float64(in.Scheduled) / s
		in.OKRate = float64(okInLoad) / s
	}
	if lastAnswer > loadStart {
		in.AnswerSpan = float64(lastAnswer-loadStart) / 1e9
		in.Throughput = float64(in.OK) / in.AnswerSpan
	}
	in.Latency, in.LatencyAll, in.SendDelay, in.PacerLag = summarize(okLat), summarize(allLat), summarize(lag), summarize(pace)
	rec.mu.Lock()
	for msg, n := range rec.errs {
		in.TopErrors = append(in.TopErrors, msgCount{Level: "error", Msg: msg, N: n})
	}
	rec.mu.Unlock()
	slices.SortFunc(in.TopErrors, func(a, b msgCount) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Msg, b.Msg)) })
	in.TopErrors = in.TopErrors[:min(len(in.TopErrors), 8)]
}

// fillDelivery joins the 2xx answers with what the sink got; rep.Ingest must be filled.
//
// Every dead letter must have a cause at the sink: a 410, or an event the sink fails
// every time whose letter came after the schedule's last attempt (maxAttempts).
func fillDelivery(rep *Report, rec *recorder, sink *Sink, endpoints []string, warm map[string]bool, dead map[string]letter, maxAttempts int) {
	res := rec.all()
	ids := okIDs(res)
	d := &rep.Delivery
	d.Expected = int64(len(ids)) * int64(len(endpoints))
	d.Missing, d.MissingExamples = missingDeliveries(ids, sink, endpoints, dead, 10)
	// Every request is a distinct event, so each 2xx answer should name a new one.
	d.Unchecked = int64(rep.Ingest.OK - len(ids))
	d.sinkCounts = sink.counts()
	// The step of each event: the one its request was recorded in (its due time may
	// be a little before the step's start when it was queued early).
	stepOf := make(map[string]int, len(ids))
	for i := range rec.scheduled {
		for _, r := range rec.step(i) {
			if r.ok() && r.id != "" && r.due == ids[r.id] {
				stepOf[r.id] = i
			}
		}
	}
	var e2e []int64
	perStep := make([][]int64, len(rec.scheduled))
	strays := map[string]bool{}
	for did, l := range dead {
		id, ep, _ := strings.Cut(did, ":")
		var a arrival
		if e := sink.endpoints[ep]; e != nil {
			e.mu.Lock()
			if got := e.got[id]; got != nil {
				a = *got
			}
			e.mu.Unlock()
		}
		switch {
		case a.firstOK != 0:
			d.DeliveredAndDead++
		case a.gone:
		case sink.alwaysFails(id) && l.FinalAttempt == maxAttempts && l.Attempts >= maxAttempts:
		default:
			d.DeadUncaused++
		}
	}
	sink.each(func(ep, id string, a arrival) {
		if a.afterOK > 0 {
			d.DupPairs++
		}
		due, ok := ids[id]
		if !ok {
			if !warm[id] {
				strays[ep+"/"+id] = true
			}
			return
		}
		if a.firstOK != 0 {
			d.Delivered++
			e2e = append(e2e, a.firstOK-due)
			i := stepOf[id]
			perStep[i] = append(perStep[i], a.firstOK-due)
		}
	})
	d.Strays = int64(len(strays))
	for id := range ids {
		for _, ep := range endpoints {
			if _, isDead := dead[deliver.DeliveryID(id, ep)]; isDead {
				if t, ok := sink.firstOK(ep, id); !ok || t == 0 {
					d.DeadLettered++
				}
			}
		}
	}
	if d.Delivered > 0 {
		d.DupRate = float64(d.Duplicates) / float64(d.Delivered)
	}
	d.E2E = summarize(e2e)
	for i := range rep.Steps {
		if i < len(perStep) {
			rep.Steps[i].E2E = summarize(perStep[i])
		}
	}
}

// fillTimeline buckets the load by second.
func fillTimeline(rep *Report, rec *recorder, sink *Sink, loadStart int64, warm map[string]bool) {
	sec := func(t int64) int { return int(max(0, t-loadStart) / 1e9) }
	var out []Second
	grow := func(i int) *Second {
		for len(out) <= i {
			out = append(out, Second{T: len(out)})
		}
		return &out[i]
	}
	lat := map[int][]int64{}
	for _, r := range rec.all() {
		grow(sec(r.due)).Sent++
		if r.ok() {
			grow(sec(r.due+r.lat)).OK++
			lat[sec(r.due)] = append(lat[sec(r.due)], r.lat)
		} else {
			grow(sec(r.due+r.lat)).Errors++
		}
	}
	sink.each(func(_, id string, a arrival) {
		if a.firstOK != 0 && !warm[id] {
			grow(sec(a.firstOK)).Delivered++
		}
	})
	for i := range out {
		out[i].IngestP99 = summarize(lat[i]).P99
	}
	rep.Timeline = out
}

// printText writes the human-readable report.
func (rep *Report) printText(w io.Writer) {
	in, d := rep.Ingest, rep.Delivery
	fmt.Fprintf(w, "hookload %s — procs %s, %d endpoint(s), run dir %s\n", rep.Mode, rep.Procs, rep.Endpoints, rep.Dir)
	gmp := "default"
	if rep.Settings.GOMAXPROCS > 0 {
		gmp = strconv.Itoa(rep.Settings.GOMAXPROCS)
	}
	fmt.Fprintf(w, "  nats-server %s, redis %s, retry delays ÷%g, delivery timeout %s, max_in_flight %d, PayMaya share %g, children's GOMAXPROCS %s, provider retries %d\n",
		rep.Settings.NATSVersion, rep.Settings.RedisVersion, rep.Settings.RetryScale, rep.Settings.DeliveryTO, rep.Settings.MaxInFlight, rep.Settings.MayaShare, gmp, rep.Settings.ProvRetries)
	fmt.Fprintf(w, "  sink: %s\n\n", rep.Settings.Sink)

	fmt.Fprintf(w, "INGEST  %.1fs of load: scheduled %d (%.0f/s), sent %d, not sent (generator backlog full) %d, answered 2xx %d (PayMaya %d, Paytia %d), duplicate answers %d, errors %d\n",
		in.LoadSeconds, in.Scheduled, in.OfferedRate, in.Sent, in.NotSent, in.OK, in.PayMaya, in.Paytia, in.DupAnswers, in.Errors)
	if in.Retried > 0 {
		fmt.Fprintf(w, "  provider retries: %d requests sent again; %d retries answered \"duplicate\" (the first try was stored, its answer lost)\n", in.Retried, in.RetryDups)
	}
	fmt.Fprintf(w, "  achieved: %.0f 2xx/s during the load; %.0f 2xx/s from the start of the load to the last answer (%.1fs)\n", in.OKRate, in.Throughput, in.AnswerSpan)
	fmt.Fprintf(w, "  statuses: %s\n", fmtStatuses(in.Statuses))
	notSent := ""
	if in.NotSent > 0 {
		notSent = fmt.Sprintf(" (%d not sent: not in these figures)", in.NotSent)
	}
	fmt.Fprintf(w, "  latency, 2xx, from scheduled start: %s%s\n", in.Latency, notSent)
	fmt.Fprintf(w, "  send delay (sent − scheduled):       %s\n", in.SendDelay)
	fmt.Fprintf(w, "  of which pacer lag (queued − sched.): %s\n", in.PacerLag)
	if sv := rep.Server; sv.IngestN > 0 {
		fmt.Fprintf(w, "  inside hookrelay (its /metrics): ingest mean %.2fms, p50 ≤ %gms, p99 ≤ %gms over %.0f requests; delivery attempt mean %.2fms, p99 ≤ %gms\n",
			sv.IngestMeanMS, sv.IngestP50LeMS, sv.IngestP99LeMS, sv.IngestN, sv.AttemptMeanMS, sv.AttemptP99LeMS)
	}
	for _, e := range in.TopErrors {
		fmt.Fprintf(w, "  error %6d × %s\n", e.N, e.Msg)
	}

	fmt.Fprintf(w, "\nDELIVERY expected %d, delivered %d, MISSING %d, UNCHECKED 2xx %d, duplicates %d, strays %d, answered non-200 on purpose %d, bad signatures %d, sink POSTs %d\n",
		d.Expected, d.Delivered, d.Missing, d.Unchecked, d.Duplicates, d.Strays, d.Failed, d.BadSig, d.Posts)
	drain := fmt.Sprintf("all delivered %.1fs after the load ended", d.DrainSeconds)
	switch {
	case d.DrainInterrupted != "":
		drain = fmt.Sprintf("drain interrupted after %.1fs (%s)", d.DrainSeconds, d.DrainInterrupted)
	case d.DrainTimedOut:
		drain = fmt.Sprintf("drain timed out after %.1fs", d.DrainSeconds)
	}
	fmt.Fprintf(w, "  %d delivered when the load ended; %s\n", d.DeliveredAtEnd, drain)
	fmt.Fprintf(w, "  accounted: delivered %d + dead letters %d + lost %d = %d expected; delivered and dead %d, dead letters without a cause %d\n",
		d.Delivered, d.DeadLettered, d.Missing, d.Expected, d.DeliveredAndDead, d.DeadUncaused)
	fmt.Fprintf(w, "  duplicates: %d POSTs after a 200 (%d deliveries, %.3f%% of delivered), each counted by its webhook-id; sink answered %v\n",
		d.Duplicates, d.DupPairs, 100*d.DupRate, d.Answered)
	fmt.Fprintf(w, "  end-to-end latency (provider POST scheduled start → sink receipt): %s\n", d.E2E)
	for _, ex := range d.MissingExamples {
		fmt.Fprintf(w, "  missing: %s\n", ex)
	}

	if t := rep.Schedule; t != nil {
		fmt.Fprintf(w, "\nSCHEDULE (retries as the sink saw them, against due = first attempt + offset, or the previous try's end if later)\n")
		fmt.Fprintf(w, "  %d retries of %d deliveries measured; tolerance %s: late %d (%d during a fault), early %d, VIOLATIONS %d; unrecorded tries %d, attempts the sink never saw %d\n",
			t.Attempts, t.Deliveries, t.Tolerance, t.Late, t.LateInFault, t.Early, t.Violations, t.Repeats, t.Unseen)
		fmt.Fprintf(w, "  lateness, all:           %s\n", t.Lateness)
		fmt.Fprintf(w, "  lateness, outside faults: %s\n", t.Quiet)
		for _, ex := range t.Examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
	if f := rep.Faults; f != nil {
		fmt.Fprintf(w, "\nFAULTS SIGKILL every %s (%s), down %s each: %s\n", f.Every, strings.Join(f.Classes, ", "), f.Down, f.Summary)
		for _, k := range f.Kills {
			e := ""
			if k.Err != "" {
				e = "  DID NOT COME BACK: " + k.Err
			}
			fmt.Fprintf(w, "  %6.1fs  %-28s %-9s ready after %.2fs%s\n", k.At, k.Process, k.Class, k.Ready, e)
		}
	}

	if rep.Mode == "saturate" {
		fmt.Fprintf(w, "\nSTEPS\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "step\ttarget/s\tachieved/s\terrors\tunanswered\tingest p50\tp99\tmax\tsend delay p99\tpacer lag p99\te2e p50\te2e p99\t  verdict")
		for _, s := range rep.Steps {
			verdict := "pass"
			if !s.Pass {
				verdict = "FAIL: " + s.Why
			}
			fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%d\t%d\t%.1fms\t%.1fms\t%.0fms\t%.1fms\t%.1fms\t%.0fms\t%.0fms\t  %s\n",
				s.Step, s.Rate, s.Achieved, s.Errors, s.Incomplete, s.Ingest.P50, s.Ingest.P99, s.Ingest.Max, s.SendP99, s.PacerP99, s.E2E.P50, s.E2E.P99, verdict)
		}
		tw.Flush()
		fmt.Fprintf(w, "  highest sustained rate: %.0f/s (%s)\n", rep.HighestSustained, rep.StopReason)
	}

	fmt.Fprintf(w, "\nPROCESSES (CPU in seconds of one core; %% of one core over %.1fs of load; the machine has %d cores)\n", in.LoadSeconds, rep.Machine.Cores)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tpid\tcpu load\tcpu %\tcpu total\tmax RSS\texit\tstop\twarn\terror\t")
	var sumLoad float64
	for _, p := range rep.Processes {
		exit := "-"
		if p.ExitCode != nil {
			exit = strconv.Itoa(*p.ExitCode)
			if p.Killed {
				exit += " (killed)"
			}
		}
		stop := "-"
		if p.StopSecs > 0 {
			stop = fmt.Sprintf("%.1fs", p.StopSecs)
		}
		sumLoad += p.CPULoad
		fmt.Fprintf(tw, "%s\t%d\t%.1fs\t%.0f%%\t%.1fs\t%.0f MB\t%s\t%s\t%d\t%d\t\n",
			p.Name, p.PID, p.CPULoad, p.CPUPct, p.CPUTotal, p.MaxRSSMB, exit, stop, p.Log.Warn, p.Log.Errors)
	}
	fmt.Fprintf(tw, "total\t\t%.1fs\t%.0f%%\t\t\t\t\t\t\t\n", sumLoad, 100*sumLoad/max(in.LoadSeconds, 1e-9))
	tw.Flush()
	m := rep.Machine
	fmt.Fprintf(w, "  machine during the load: %.2f of %d cores busy; these processes %.2f, the rest %.2f (other processes, and softirq %.2f: loopback networking), hypervisor steal %.2f; %.2f busy just before the load\n",
		m.Busy, m.Cores, m.Ours, m.Rest, m.SoftIRQ, m.Steal, m.IdleBusy)
	for _, p := range rep.Processes {
		for _, m := range p.Log.Top {
			fmt.Fprintf(w, "  %s log: %s\n", p.Name, m)
		}
	}

	exits := "every process exited 0"
	for _, p := range rep.Processes {
		if p.ExitCode != nil && (*p.ExitCode != 0 || p.Killed) {
			exits = "NOT every process exited 0"
		}
	}
	fmt.Fprintf(w, "\nVERDICT: %s, %d duplicates, %s\n", d.lossVerdict(), d.Duplicates, exits)
	if len(rep.Problems) > 0 {
		fmt.Fprintf(w, "PROBLEMS\n")
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  - %s\n", p)
		}
	}
	fmt.Fprintf(w, "run dir: %s (report.json, report.txt, timeline.csv, usage.csv, logs/)\n", rep.Dir)
}

// problems are the delivery side's entries in Report.Problems.
func (d Delivery) problems() []string {
	var out []string
	switch {
	case d.Missing > 0 && d.DrainInterrupted != "":
		out = append(out, fmt.Sprintf("interrupted: %d of %d deliveries undelivered when the drain stopped early (%s); not known whether they were lost", d.Missing, d.Expected, d.DrainInterrupted))
	case d.Missing > 0:
		out = append(out, fmt.Sprintf("LOST: %d of %d deliveries were neither delivered nor a dead letter within the drain timeout", d.Missing, d.Expected))
	}
	if d.Unchecked > 0 {
		out = append(out, fmt.Sprintf("%d 2xx answers named no new event: their events can't be checked for loss", d.Unchecked))
	}
	switch {
	case d.Duplicates > 0 && !d.Faulty:
		out = append(out, fmt.Sprintf("%d duplicate deliveries (same webhook-id after a 200) without any fault injected", d.Duplicates))
	case d.DupRate > 0.01:
		out = append(out, fmt.Sprintf("duplicates: %d POSTs after a 200 for %d delivered, %.2f%%, above the 1%% goal", d.Duplicates, d.Delivered, 100*d.DupRate))
	}
	if d.DeliveredAndDead > 0 {
		out = append(out, fmt.Sprintf("%d deliveries were answered 200 by the sink and are dead letters too", d.DeliveredAndDead))
	}
	if d.DeadUncaused > 0 {
		out = append(out, fmt.Sprintf("%d dead letters the sink gave no cause for (no 410; not an always-failing event dead after the schedule's last attempt)", d.DeadUncaused))
	}
	if n := d.Delivered + d.DeadLettered + d.Missing; n != d.Expected {
		out = append(out, fmt.Sprintf("accounting: delivered %d + dead letters %d + lost %d = %d, not the %d expected", d.Delivered, d.DeadLettered, d.Missing, n, d.Expected))
	}
	if d.BadBody > 0 {
		out = append(out, fmt.Sprintf("sink refused %d deliveries whose body's event id was not the webhook-id", d.BadBody))
	}
	if d.BadSig > 0 || d.UnknownPath > 0 {
		out = append(out, fmt.Sprintf("sink refused %d deliveries with bad signatures and %d requests to unknown paths", d.BadSig, d.UnknownPath))
	}
	return out
}

// failed reports whether the delivery side fails the run (exit 1): deliveries
// missing (lost, or still to come when the drain was interrupted), 2xx answers
// whose events can't be checked for loss, or deliveries with bad signatures.
func (d Delivery) failed() bool {
	return d.Missing > 0 || d.Unchecked > 0 || d.BadSig > 0 || d.BadBody > 0 || d.DeliveredAndDead > 0 || d.DeadUncaused > 0 ||
		d.Delivered+d.DeadLettered+d.Missing != d.Expected
}

// lossVerdict is the verdict's word on loss.
func (d Delivery) lossVerdict() string {
	var v string
	switch {
	case d.Missing > 0 && d.DrainInterrupted != "":
		v = fmt.Sprintf("interrupted: %d of %d undelivered", d.Missing, d.Expected)
	case d.Missing > 0:
		v = fmt.Sprintf("LOST %d of %d", d.Missing, d.Expected)
	case d.DeadLettered > 0:
		v = fmt.Sprintf("0 lost (%d of %d delivered, %d dead letters)", d.Delivered, d.Expected, d.DeadLettered)
	default:
		v = fmt.Sprintf("0 lost (%d of %d delivered)", d.Delivered, d.Expected)
	}
	if d.Unchecked > 0 {
		v += fmt.Sprintf(", %d 2xx UNCHECKED (named no new event)", d.Unchecked)
	}
	return v
}

func (s Summary) String() string {
	if s.N == 0 {
		return "n=0"
	}
	return fmt.Sprintf("p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms  (mean %.2fms, n=%d)", s.P50, s.P90, s.P99, s.P999, s.Max, s.Mean, s.N)
}

func fmtStatuses(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// writeTimeline writes the per-second timeline as CSV.
func (rep *Report) writeTimeline(w io.Writer) {
	fmt.Fprintln(w, "t,sent,answered_2xx,errors,ingest_p99_ms,delivered")
	for _, s := range rep.Timeline {
		fmt.Fprintf(w, "%d,%d,%d,%d,%.3f,%d\n", s.T, s.Sent, s.OK, s.Errors, s.IngestP99, s.Delivered)
	}
}
