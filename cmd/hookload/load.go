package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Result statuses besides HTTP ones.
const (
	statusTransport = 0  // no HTTP answer: connection error or timeout
	statusSkipped   = -1 // not sent: too many requests outstanding (the generator's limit)
)

// result is one provider request. Times are ns since the run's epoch.
type result struct {
	due    int64  // scheduled start
	lat    int64  // from the scheduled start to the answer (or the failure)
	lag    int64  // from the scheduled start to the send: pace + the wait for a free connection
	pace   int64  // from the scheduled start to the moment the pacer queued it: the generator's own lateness
	status int16  // HTTP status, or statusTransport / statusSkipped
	dup    bool   // answered "duplicate": true
	tries  int8   // provider retries it took (--provider-retries)
	maya   bool   // PayMaya (else Paytia)
	id     string // event id from a 2xx answer
}

func (r *result) ok() bool { return r.status >= 200 && r.status < 300 }

// recorder keeps every result, by plan step.
type recorder struct {
	sent, ok, failed atomic.Int64 // running totals of answered (or failed) requests, 2xx, the rest

	mu        sync.Mutex
	steps     [][]result
	scheduled []atomic.Int64 // per step
	errs      map[string]int // distinct error texts (transport errors, non-2xx bodies)
}

func newRecorder(steps int) *recorder {
	return &recorder{steps: make([][]result, steps), scheduled: make([]atomic.Int64, steps), errs: map[string]int{}}
}

func (r *recorder) add(step int, res result, errText string) {
	if res.status != statusSkipped {
		r.sent.Add(1)
	}
	if res.ok() {
		r.ok.Add(1)
	} else {
		r.failed.Add(1)
	}
	r.mu.Lock()
	r.steps[step] = append(r.steps[step], res)
	if errText != "" && (len(r.errs) < 50 || r.errs[errText] > 0) {
		r.errs[errText]++
	}
	r.mu.Unlock()
}

// step returns step i's results so far. It is not a copy: the recorder only appends,
// never changing a result once added, so the first n stay as they are; the cap of n
// keeps an append by the caller from writing into the recorder's array. Read only.
func (r *recorder) step(i int) []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.steps[i])
	return r.steps[i][:n:n]
}

// all returns every result.
func (r *recorder) all() []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []result
	for _, s := range r.steps {
		out = append(out, s...)
	}
	return out
}

// target is one ingest process's URLs.
type target struct {
	maya, paytia string
}

// Runner is the open-loop generator: requests are due on the plan's schedule whatever
// earlier ones are doing. The pacer puts each due request on its ingest process's
// queue, which that process's own pool of workers (one per allowed connection) takes
// from; when every worker of the pool is busy the request waits in the queue, and
// since latency counts from the scheduled start, that wait (a stall in the system, or
// in the generator) shows up in the figures instead of silently lowering the rate (no
// coordinated omission). A pool per process keeps one slow process from holding up
// the requests of the others. Long-lived workers keep the generator cheap: no
// goroutine, stack growth or connection set-up per request.
type Runner struct {
	reqCtx         context.Context // requests; not cancelled when the pacing stops
	epoch          time.Time
	gen            *Generator
	client         *http.Client
	targets        []target
	paytiaAuth     string // Authorization header value for Paytia
	rec            *recorder
	conns          int // workers per target
	maxOutstanding int64
	outstanding    atomic.Int64 // queued or being sent
	// retries: a failed request (no answer, 5xx, 429) is sent again, the same body,
	// to the next target, after retryWait, then twice that, and so on.
	retries   int
	retryWait time.Duration
	retried   atomic.Int64 // requests sent again
	wg        sync.WaitGroup
}

// job is one due request.
type job struct {
	seq    uint64
	step   int
	due    int64 // ns since the epoch: the scheduled start, or when queued if that was earlier
	queued int64 // ns since the epoch
}

// NewRunner spreads requests over the ingest addresses, round robin, with at most
// conns connections (and workers) per address. PayMaya gets its token in the URL
// (what Maya's webhook registration allows), Paytia as a bearer token.
func NewRunner(reqCtx context.Context, epoch time.Time, gen *Generator, ingest []string, mayaToken, paytiaToken string, conns int, timeout time.Duration, maxOutstanding int) *Runner {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * len(ingest),
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     60 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	r := &Runner{
		reqCtx: reqCtx, epoch: epoch, gen: gen, client: &http.Client{Transport: tr, Timeout: timeout},
		paytiaAuth: "Bearer " + paytiaToken, maxOutstanding: int64(maxOutstanding), conns: conns,
	}
	for _, a := range ingest {
		r.targets = append(r.targets, target{
			maya:   "http://" + a + "/ingest/paymaya/" + mayaSource + "?token=" + mayaToken,
			paytia: "http://" + a + "/ingest/paytia/" + paytiaSource,
		})
	}
	return r
}

// Run sends the plan's requests on schedule, starting at start, into rec (made for
// plan), until the plan ends or ctx is done; it returns when every request has been
// queued (not answered: see Wait). Request seq goes to target seq % len(targets),
// whose own conns workers send it. The pacer sleeps until the next tick is due and
// then queues every tick that is due, or due within 200µs (not worth a sleep), so the
// long-run rate is exact even when a sleep oversleeps. A tick that finds
// maxOutstanding requests queued or in flight (over all targets) is recorded as not
// sent.
func (r *Runner) Run(ctx context.Context, plan Plan, start time.Time, rec *recorder) {
	r.rec = rec
	jobs := make([]chan job, len(r.targets))
	for i := range jobs {
		// Each queue holds maxOutstanding, as all of them may pile up at one target.
		jobs[i] = make(chan job, r.maxOutstanding)
		defer close(jobs[i])
		for range r.conns {
			r.wg.Go(func() {
				for j := range jobs[i] {
					res, errText := r.send(j.seq, i, j.due)
					res.pace = j.queued - j.due
					r.outstanding.Add(-1)
					r.rec.add(j.step, res, errText)
				}
			})
		}
	}
	sched := newSchedule(plan)
	base := start.Sub(r.epoch).Nanoseconds()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		t, ok := sched.next()
		if !ok {
			return
		}
		due := start.Add(t.Offset)
		if d := time.Until(due); d > 200*time.Microsecond {
			timer.Reset(d)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		r.rec.scheduled[t.Step].Add(1)
		// A tick queued before its time (within 200µs of it) counts from when it was
		// queued: latency from a start still to come would be understated, and the
		// pacer lag would be negative. A late tick counts from its scheduled start.
		now := time.Since(r.epoch).Nanoseconds()
		j := job{seq: uint64(t.Seq), step: t.Step, due: min(base+t.Offset.Nanoseconds(), now), queued: now}
		if r.outstanding.Load() >= r.maxOutstanding {
			r.rec.add(t.Step, result{due: j.due, pace: j.queued - j.due, status: statusSkipped}, fmt.Sprintf("not sent: %d requests outstanding (--max-outstanding)", r.maxOutstanding))
			continue
		}
		r.outstanding.Add(1)
		jobs[j.seq%uint64(len(jobs))] <- j // never blocks: each queue holds maxOutstanding
	}
}

// Wait waits until every request queued has been answered or has timed out.
func (r *Runner) Wait() { r.wg.Wait() }

// send posts callback seq to target ti and, while it fails and retries are left,
// again to the next targets, as a provider retries a webhook it got no 2xx for. The
// latency counts from due, retries included.
func (r *Runner) send(seq uint64, ti int, due int64) (result, string) {
	res, errText := r.do(seq, r.targets[ti], due)
	wait := r.retryWait
	for try := 1; try <= r.retries && retryable(res.status); try++ {
		r.retried.Add(1)
		time.Sleep(wait)
		wait *= 2
		res, errText = r.do(seq, r.targets[(ti+try)%len(r.targets)], due)
		res.tries = int8(min(try, 127))
	}
	return res, errText
}

// retryable is a provider answer worth sending again: none, a 5xx or a 429.
func retryable(status int16) bool {
	return status == statusTransport || status >= 500 || status == http.StatusTooManyRequests
}

// do posts callback seq to tg; due is its scheduled start (ns since the epoch).
func (r *Runner) do(seq uint64, tg target, due int64) (result, string) {
	ctx := r.reqCtx
	tpl, body := r.gen.Body(seq)
	res := result{due: due, maya: tpl.provider == "paymaya"}
	var req *http.Request
	if res.maya {
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, tg.maya, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req, _ = http.NewRequestWithContext(ctx, http.MethodPost, tg.paytia, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", r.paytiaAuth)
	}
	res.lag = time.Since(r.epoch).Nanoseconds() - due
	resp, err := r.client.Do(req)
	var errText string
	if err != nil {
		res.status = statusTransport
		errText = err.Error()
		if ue, ok := err.(interface{ Unwrap() error }); ok && ue.Unwrap() != nil {
			errText = ue.Unwrap().Error() // without the URL (and its token)
		}
	} else {
		raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		res.status = int16(resp.StatusCode)
		switch {
		case rerr != nil:
			res.status, errText = statusTransport, "reading answer: "+rerr.Error()
		case res.ok():
			var ans struct {
				ID        string `json:"id"`
				Duplicate bool   `json:"duplicate"`
			}
			if json.Unmarshal(raw, &ans) != nil || ans.ID == "" {
				errText = fmt.Sprintf("2xx without an event id: %.200s", raw)
			}
			res.id, res.dup = ans.ID, ans.Duplicate
		default:
			errText = fmt.Sprintf("%d %.300s", resp.StatusCode, bytes.TrimSpace(raw))
		}
	}
	res.lat = time.Since(r.epoch).Nanoseconds() - due
	return res, errText
}
