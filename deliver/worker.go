package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/schedule"
)

// Notifier wakes the schedule loop when something is due sooner than it planned:
// *schedule.Scheduler.
type Notifier interface{ Notify() }

var _ Notifier = (*schedule.Scheduler)(nil)

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	JS        jetstream.JetStream
	Topology  natsx.Topology
	Endpoints *EndpointSet
	Store     Recorder
	Sender    *Sender
	Notify    Notifier // optional: wakes the schedule after a reschedule
	Clock     clock.Clock
	Logger    *zap.Logger
	Observer  Observer // nil: not measured
	// AckWait is how long JetStream waits for a job's ack before redelivering it:
	// how long the jobs of a worker that died wait before another worker takes them.
	// Without KeepAlive it must exceed the attempt timeout plus bookkeeping. Default
	// 2 minutes.
	AckWait time.Duration
	// KeepAlive, when set, tells JetStream every KeepAlive that a job is still being
	// worked on, so AckWait can be short (a few KeepAlives) whatever the attempt
	// timeout. It stops once the job has run as long as a job can (the sender's
	// timeout plus twice Bookkeeping), so a job stuck past that is still redelivered.
	KeepAlive time.Duration
	// RetryDelay is how soon a job whose bookkeeping failed comes again. Default 5 s.
	RetryDelay time.Duration
	// Bookkeeping bounds the state read before an attempt and, separately, the record
	// after it (which must not share a deadline with a POST that may take the whole
	// sender timeout). It runs without the caller's cancellation, so a shutdown never
	// strands a half-recorded attempt. Default 10 s.
	Bookkeeping time.Duration
	// PullExpiry is how long each pull request for jobs lasts; the server sends a
	// heartbeat every half of it, and a pull that missed two is made again. Default
	// 30 s (nats.go's).
	PullExpiry time.Duration
}

// Worker makes the attempts. Each endpoint has its own durable consumer on
// HOOKRELAY_DELIVERIES with MaxAckPending = the endpoint's max_in_flight, so at most
// that many attempts to it run at once (across replicas) and a slow merchant never
// holds up the others.
type Worker struct {
	cfg  WorkerConfig
	log  *zap.Logger
	dead *deadLetters

	// abort, once cancelled (HandBack), cuts the running POSTs short: their jobs go
	// back to JetStream unrecorded, to be attempted again at once elsewhere.
	abort    context.Context
	handBack context.CancelFunc
	mu       sync.Mutex
	loops    map[string]*endpointLoop
	enabled  map[string]bool // each endpoint's enabled flag at the last reconcile
	ticks    int

	signers sync.Map // endpoint id → *signerEntry
}

type endpointLoop struct {
	maxInFlight int
	cons        jetstream.Consumer
	stop        context.CancelFunc
	done        chan struct{}
	// orphan: the endpoint is gone; the loop drains its jobs (each becomes a dead
	// letter, "endpoint deleted") and stops once the consumer has none left.
	orphan bool
}

// consumerPrefix starts the name of every endpoint's durable consumer.
const consumerPrefix = "hookrelay-deliver-"

// NewWorker returns a Worker.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if cfg.JS == nil || cfg.Endpoints == nil || cfg.Store == nil || cfg.Sender == nil {
		return nil, errors.New("deliver: worker needs JetStream, endpoints, a store and a sender")
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 2 * time.Minute
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = 5 * time.Second
	}
	if cfg.Bookkeeping <= 0 {
		cfg.Bookkeeping = 10 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	abort, handBack := context.WithCancel(context.Background())
	return &Worker{
		abort: abort, handBack: handBack,
		cfg:     cfg,
		log:     cfg.Logger.Named("deliver"),
		dead:    &deadLetters{js: cfg.JS, topo: cfg.Topology, store: cfg.Store, clock: cfg.Clock},
		loops:   map[string]*endpointLoop{},
		enabled: map[string]bool{},
	}, nil
}

// Run keeps one consumer loop per endpoint, following endpoint changes, until ctx
// ends; then it stops taking jobs, lets in-flight attempts finish and record, and
// returns nil.
func (w *Worker) Run(ctx context.Context) error {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		w.reconcile(ctx)
		select {
		case <-ctx.Done():
			w.stopAll()
			return nil
		case <-w.cfg.Endpoints.Changed():
		case <-tick.C:
		}
	}
}

// HandBack cuts short the attempts still running after Run's ctx has ended (a
// shutdown past its grace): each POST is cancelled and its job handed back to
// JetStream unrecorded (nak, no delay), so another replica, or this one after a
// restart, attempts it again at once with the same webhook-id. An attempt whose answer
// has arrived is recorded as usual.
func (w *Worker) HandBack() { w.handBack() }

// errHandedBack is an attempt cut short by HandBack.
var errHandedBack = errors.New("deliver: attempt cut short by shutdown; handed back")

// reconcile starts loops for new endpoints and restarts those whose limit changed;
// a deleted endpoint's loop goes on until its jobs are drained (they become dead
// letters, not strands). Every sweep round it also finds consumers of endpoints
// deleted while no replica ran that still hold jobs. And it releases held deliveries
// (see release).
func (w *Worker) reconcile(ctx context.Context) {
	want := map[string]int{}
	enabled := map[string]bool{}
	for _, ep := range w.cfg.Endpoints.All() {
		want[ep.ID] = max(ep.MaxInFlight, 1)
		enabled[ep.ID] = ep.Enabled
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	sweep := w.ticks%sweepRounds == 0
	w.ticks++
	w.release(ctx, enabled, sweep)
	for id, l := range w.loops {
		select {
		case <-l.done:
			if ctx.Err() != nil {
				continue // shutting down: the loop ended with Run's ctx
			}
			// Ended without being stopped: its consumer went away under it (deleted by
			// hand, or lost by the server). It is created again: by ensure below, or
			// here for a deleted endpoint's loop, whose jobs still have to drain.
			// Reconcile runs every few seconds, which paces a consumer that keeps
			// going away.
			w.log.Error("endpoint consumer stopped by the server; starting it again", zap.String("endpoint", id))
			w.stop(id, l)
			if _, ok := want[id]; l.orphan || !ok { // ensure below only starts wanted ones
				w.ensure(ctx, id, l.maxInFlight, true)
			}
			continue
		default:
		}
		n, ok := want[id]
		switch {
		case !ok && !l.orphan:
			l.orphan = true
		case !ok:
			if w.drained(ctx, l) {
				w.stop(id, l)
			}
		case l.orphan || n != l.maxInFlight:
			w.stop(id, l)
		}
	}
	for id, n := range want {
		w.ensure(ctx, id, n, false)
	}
	if sweep {
		for _, id := range w.orphanConsumers(ctx, want) {
			w.ensure(ctx, id, DefaultMaxInFlight, true)
		}
	}
}

// ensure starts endpoint id's loop unless it runs.
func (w *Worker) ensure(ctx context.Context, id string, maxInFlight int, orphan bool) {
	if _, ok := w.loops[id]; ok {
		return
	}
	l, err := w.start(ctx, id, maxInFlight)
	if err != nil {
		w.log.Warn("start endpoint consumer; will retry", zap.String("endpoint", id), zap.Error(err))
		return
	}
	l.orphan = orphan
	w.loops[id] = l
}

// stop ends endpoint id's loop once its attempts in flight are recorded, and forgets
// its signer.
func (w *Worker) stop(id string, l *endpointLoop) {
	l.stop()
	<-l.done
	delete(w.loops, id)
	w.signers.Delete(id)
}

// drained reports whether a loop's consumer has no job left, waiting or in flight.
func (w *Worker) drained(ctx context.Context, l *endpointLoop) bool {
	info, err := l.cons.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// orphanConsumers lists endpoints that are not in want but whose consumer still holds
// jobs (deleted while no replica was running).
func (w *Worker) orphanConsumers(ctx context.Context, want map[string]int) []string {
	stream, err := w.cfg.JS.Stream(ctx, w.cfg.Topology.DeliveriesStream())
	if err != nil {
		w.log.Warn("list endpoint consumers", zap.Error(err))
		return nil
	}
	var ids []string
	lister := stream.ListConsumers(ctx)
	for info := range lister.Info() {
		id, ok := strings.CutPrefix(info.Name, consumerPrefix)
		if _, live := want[id]; ok && !live && info.NumPending+uint64(info.NumAckPending) > 0 {
			ids = append(ids, id)
		}
	}
	if err := lister.Err(); err != nil {
		w.log.Warn("list endpoint consumers", zap.Error(err))
	}
	return ids
}

// sweepRounds is how many reconcile rounds (one per endpoint change, and one every
// 5 s) pass between sweeps: releasing every enabled endpoint's held deliveries and
// looking for consumers and held deliveries of endpoints that are gone.
const sweepRounds = 6

// release hands a disabled endpoint's held deliveries back to the schedule, due now,
// as soon as this replica sees it enabled or deleted (a deleted endpoint's deliveries
// then become dead letters). A sweep (the first round of a process is one) also
// releases every enabled endpoint's, which catches a delivery held by a replica whose
// view of the endpoint was a moment behind, and every group whose endpoint no longer
// exists, which catches endpoints enabled or deleted while no replica was running.
func (w *Worker) release(ctx context.Context, enabled map[string]bool, sweep bool) {
	// A sweep releases only groups that hold something (the hold script records each
	// in the held-groups set), not one Unhold per enabled endpoint; if that set cannot
	// be read, every enabled endpoint is released as before.
	var held map[string]bool
	if sweep {
		groups, err := w.cfg.Store.HeldGroups(ctx)
		if err != nil {
			w.log.Warn("list held groups", zap.Error(err))
		} else {
			held = make(map[string]bool, len(groups))
			for _, g := range groups {
				held[g] = true
			}
		}
	}
	groups := map[string]bool{}
	for id, on := range enabled {
		if on && (!w.enabled[id] || (sweep && (held == nil || held[id]))) {
			groups[id] = true
		}
	}
	for id := range w.enabled {
		if _, ok := enabled[id]; !ok {
			groups[id] = true
		}
	}
	for g := range held {
		if _, ok := enabled[g]; !ok {
			groups[g] = true
		}
	}
	w.enabled = enabled
	released := 0
	for g := range groups {
		n, err := w.cfg.Store.Unhold(ctx, g, w.cfg.Clock.Now())
		if err != nil {
			w.log.Warn("release held deliveries; will retry", zap.String("endpoint", g), zap.Error(err))
			w.enabled[g] = false // try again next round
			continue
		}
		if n > 0 {
			w.log.Info("delivery.released", zap.String("endpoint", g), zap.Int("count", n))
		}
		released += n
	}
	if released > 0 && w.cfg.Notify != nil {
		w.cfg.Notify.Notify()
	}
}

func (w *Worker) stopAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, l := range w.loops {
		w.stop(id, l)
	}
}

func (w *Worker) start(ctx context.Context, endpointID string, maxInFlight int) (*endpointLoop, error) {
	cons, err := w.cfg.JS.CreateOrUpdateConsumer(ctx, w.cfg.Topology.DeliveriesStream(), jetstream.ConsumerConfig{
		Durable:       consumerPrefix + endpointID,
		Description:   "hookrelay: attempts to endpoint " + endpointID,
		FilterSubject: w.cfg.Topology.DeliverySubject(endpointID),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		MaxAckPending: maxInFlight,
	})
	if err != nil {
		return nil, err
	}
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(maxInFlight)}
	// A pull's heartbeat is half its expiry; missing two is how a dropped pull shows.
	if w.cfg.PullExpiry > 0 {
		opts = append(opts, jetstream.PullExpiry(w.cfg.PullExpiry))
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	l := &endpointLoop{maxInFlight: maxInFlight, cons: cons, stop: cancel, done: make(chan struct{})}
	go func() {
		<-lctx.Done()
		it.Stop() // unblocks Next
	}()
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		sem := make(chan struct{}, maxInFlight)
		pause := backoff.NewExponentialBackOff()
		pause.InitialInterval, pause.MaxInterval, pause.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
		for {
			m, err := it.Next()
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				break // stopped, by stop() or because the consumer is gone
			}
			if err != nil {
				// Missed heartbeats (a pull the server dropped, a link that stalled) or
				// the consumer deleted: the iterator pulls again, or ends, by itself.
				// Leaving here would stop this endpoint's deliveries until a restart.
				// A server that does not tell pulls of a deletion only stops sending
				// heartbeats: then the loop ends here, and reconcile creates the
				// consumer again.
				w.log.Warn("endpoint consumer interrupted; pulling again", zap.String("endpoint", endpointID), zap.Error(err))
				if consumerGone(lctx, cons) {
					break
				}
				select {
				case <-lctx.Done():
				case <-time.After(pause.NextBackOff()):
				}
				continue
			}
			pause.Reset()
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				w.handle(lctx, m)
			})
		}
		wg.Wait() // in-flight attempts finish and record
	}()
	return l, nil
}

// handle makes one attempt for one job, records it, then acks. Every decision about
// the job's message is made here. The keep-alive stops before the job is answered: an
// in-progress mark that followed a NakWithDelay would stretch its delay to AckWait.
func (w *Worker) handle(ctx context.Context, m jetstream.Msg) {
	stop := func() {}
	if w.cfg.KeepAlive > 0 {
		stop = keepAlive(m, w.cfg.KeepAlive, w.cfg.Sender.timeout+2*w.cfg.Bookkeeping)
	}
	reply := w.work(ctx, m)
	stop()
	reply()
}

// work makes the attempt and returns how to answer the job's message.
func (w *Worker) work(ctx context.Context, m jetstream.Msg) (reply func()) {
	job, err := jobFrom(m.Headers(), m.Data())
	if err != nil {
		w.log.Error("undecodable job; dropped", zap.Error(err))
		return func() { _ = m.Term() }
	}
	// A job seen before may have had its attempt recorded by a worker that died before
	// its ack: only those pay for the fence read.
	redelivered := true
	if meta, err := m.Metadata(); err == nil && meta.NumDelivered <= 1 {
		redelivered = false
	}
	if err := w.attempt(ctx, &job, redelivered); err != nil {
		if errors.Is(err, errHandedBack) {
			w.log.Warn("delivery.handed_back", zap.String("delivery_id", job.ID), zap.Int("attempt", job.Attempt))
			return func() { _ = m.Nak() }
		}
		w.log.Warn("job not finished; JetStream will redeliver it", zap.String("delivery_id", job.ID), zap.Int("attempt", job.Attempt), zap.Error(err))
		return func() { _ = m.NakWithDelay(w.cfg.RetryDelay) }
	}
	return func() {
		if err := m.Ack(); err != nil {
			w.log.Warn("ack job", zap.String("delivery_id", job.ID), zap.Int("attempt", job.Attempt), zap.Error(err))
		}
	}
}

// keepAlive marks m in progress every interval until the returned stop is called or
// limit has passed.
func keepAlive(m jetstream.Msg, every, limit time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	deadline := time.Now().Add(limit)
	var t *time.Timer
	mu.Lock() // the first tick waits for t
	defer mu.Unlock()
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped || time.Now().After(deadline) {
			return
		}
		_ = m.InProgress() // a failure (NATS away) leaves AckWait to redeliver it
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// attempt runs the fence (for a redelivered job), the POST and the record. A nil
// error means the job is finished (acked); an error means it must come again.
//
// A job seen for the first time is not fenced: the schedule made it for exactly this
// attempt, and the record itself is fenced, so the only cost of a stale job (a
// scheduler crash between publishing a job and marking it queued, with the first job
// still waiting when the lease runs out; or fan-out re-publishing attempt 1 after
// JetStream's duplicate window) is a repeated POST with the same webhook-id.
func (w *Worker) attempt(ctx context.Context, job *Job, redelivered bool) error {
	ep, found := w.cfg.Endpoints.Get(job.Endpoint)
	ref := EndpointRef{ID: job.Endpoint}
	if found {
		ref = EndpointRef{ID: ep.ID, Merchant: ep.Merchant, URL: ep.URL}
	}
	if redelivered || !found || !ep.Enabled {
		if post, err := w.beforePOST(ctx, job, &ep, found, ref, redelivered); !post {
			return err
		}
	}
	signer, err := w.signer(&ep)
	if err != nil {
		return fmt.Errorf("endpoint %s secret: %w", ep.ID, err)
	}
	eventID, _, _ := splitDeliveryID(job.ID)
	// The attempt is not cut short by a shutdown's start (the sender's timeout bounds
	// it), only by HandBack once the shutdown's grace is over: w.abort.
	w.cfg.Observer.InFlight(ep.ID, 1)
	a := w.cfg.Sender.Send(w.abort, Request{
		URL: ep.URL, Headers: ep.Headers, MsgID: eventID, Body: job.Event,
		Signer: signer, Now: w.cfg.Clock.Now(),
	})
	w.cfg.Observer.InFlight(ep.ID, -1)
	if a.Status == 0 && w.abort.Err() != nil {
		return errHandedBack // no answer, and it was HandBack that stopped it
	}
	// The record's own deadline starts now: the POST may have taken the whole timeout.
	bctx, cancel := w.bookkeeping(ctx)
	defer cancel()
	outcome := Classify(a)
	rec := newRecord(job.Attempt, a, outcome)
	w.log.Info("delivery.attempted",
		zap.String("event_id", eventID), zap.String("endpoint", ep.ID), zap.Int("attempt", job.Attempt),
		zap.Int("status", a.Status), zap.Duration("duration", a.Duration), zap.String("outcome", outcome.String()),
		zap.String("error", a.Err))
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	switch outcome {
	case Delivered:
		w.cfg.Observer.Attempted(ep.ID, outcome.String(), a.Duration)
		return retry(bctx, func() error {
			_, err := w.cfg.Store.Succeed(bctx, job.ID, job.Attempt, raw)
			return err
		})
	case Dead:
		w.cfg.Observer.Attempted(ep.ID, outcome.String(), a.Duration)
		return w.finishDead(bctx, job, ref, raw, "endpoint answered 410 Gone")
	}
	var res schedule.FailResult
	err = retry(bctx, func() error {
		res, err = w.cfg.Store.Fail(bctx, job.ID, job.Attempt, w.cfg.Clock.Now(), raw)
		return err
	})
	if err != nil {
		return err
	}
	if res.Outcome == schedule.Dead {
		w.cfg.Observer.Attempted(ep.ID, Dead.String(), a.Duration)
	} else {
		w.cfg.Observer.Attempted(ep.ID, outcome.String(), a.Duration)
	}
	switch res.Outcome {
	case schedule.Dead:
		return w.dead.send(bctx, job.ID, ref, job.Event, job.Seq, exhaustedReason(job.Attempt), job.First, job.Attempt, nil)
	case schedule.Stale:
		// Recorded elsewhere, or by an earlier try of this very call whose reply was lost.
		return w.letterIfDead(bctx, job, ref, schedule.State{}, exhaustedReason(job.Attempt))
	case schedule.Rescheduled:
		// Due later than the horizon, a sleeping loop finds it on its own.
		if w.cfg.Notify != nil && res.Due.Sub(w.cfg.Clock.Now()) < schedule.WakeHorizon {
			w.cfg.Notify.Notify()
		}
	}
	return nil
}

// exhaustedReason is a dead letter's reason when the schedule ran out (built only
// then, not on every failed attempt).
func exhaustedReason(attempts int) string {
	return fmt.Sprintf("no success after %d attempts (retry schedule exhausted)", attempts)
}

// beforePOST runs what comes before a POST when there is something to check: the fence
// of a redelivered job, a deleted endpoint (dead letter), a disabled one (held). post
// is false when the job is finished (err nil) or must come again (err).
func (w *Worker) beforePOST(ctx context.Context, job *Job, ep *Endpoint, found bool, ref EndpointRef, redelivered bool) (post bool, err error) {
	bctx, cancel := w.bookkeeping(ctx)
	defer cancel()
	if redelivered {
		st, err := w.cfg.Store.Get(bctx, job.ID)
		if errors.Is(err, schedule.ErrNotFound) {
			return false, nil // long finished: its marker has expired
		}
		if err != nil {
			return false, fmt.Errorf("read state: %w", err)
		}
		if (st.Name != schedule.StateQueued && st.Name != schedule.StateLeased) || st.Attempt != job.Attempt {
			// Recorded before a crash kept the ack from JetStream; if recorded dead, the
			// letter may not have been written.
			return false, w.letterIfDead(bctx, job, ref, st, "repeated after a restart")
		}
	}
	switch {
	case !found:
		rec := AttemptRecord{Attempt: job.Attempt, Start: w.cfg.Clock.Now().UTC(), Error: "endpoint deleted", Outcome: Dead.String()}
		raw, err := json.Marshal(rec)
		if err != nil {
			return false, err
		}
		return false, w.finishDead(bctx, job, ref, raw, "endpoint deleted")
	case !ep.Enabled:
		// Held until the endpoint is enabled (or deleted): see release.
		_, err := w.cfg.Store.Hold(bctx, job.ID, job.Attempt, ep.ID, w.cfg.Clock.Now())
		return false, err
	}
	return true, nil
}

// bookkeeping is a context for Redis and JetStream calls around an attempt: not cut
// short by a shutdown, bounded by the Bookkeeping timeout.
func (w *Worker) bookkeeping(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Bookkeeping)
}

// retry runs a bookkeeping call until it succeeds or ctx (the Bookkeeping timeout) ends,
// so a Redis blip after a POST does not cost the merchant a repeated request.
func retry(ctx context.Context, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 50*time.Millisecond, time.Second, 0
	return backoff.Retry(op, backoff.WithContext(b, ctx))
}

// finishDead records the final attempt as dead, then writes the letter. A crash in
// between redelivers the job, whose fence sees "dead at this attempt" and writes it.
// A stale job (the Kill finds the delivery elsewhere) writes nothing.
func (w *Worker) finishDead(bctx context.Context, job *Job, ref EndpointRef, raw []byte, reason string) error {
	var killed bool
	var err error
	if err := retry(bctx, func() error {
		killed, err = w.cfg.Store.Kill(bctx, job.ID, job.Attempt, w.cfg.Clock.Now(), raw)
		return err
	}); err != nil {
		return err
	}
	if !killed {
		// Recorded elsewhere, or by an earlier try of this very call whose reply was lost.
		return w.letterIfDead(bctx, job, ref, schedule.State{}, reason)
	}
	return w.dead.send(bctx, job.ID, ref, job.Event, job.Seq, reason, job.First, job.Attempt, nil)
}

// letterIfDead writes the dead letter of a job whose record found the delivery
// already past it (stale): if the delivery is dead at the job's attempt, that death
// may have no letter yet (a crash before it, or a retried record whose first try ran
// but lost its reply). st is the state if already read (zero: read it). Letters are
// deduplicated by JetStream, so writing one twice keeps one.
func (w *Worker) letterIfDead(bctx context.Context, job *Job, ref EndpointRef, st schedule.State, reason string) error {
	if st.Name == "" {
		var err error
		if st, err = w.cfg.Store.Get(bctx, job.ID); errors.Is(err, schedule.ErrNotFound) {
			return nil
		} else if err != nil {
			return fmt.Errorf("read state: %w", err)
		}
	}
	if st.Name != schedule.StateDead || st.Attempt != job.Attempt {
		return nil
	}
	return w.dead.send(bctx, job.ID, ref, job.Event, job.Seq, reason, job.First, job.Attempt, nil)
}

// signerEntry is a cached signer and the secrets it was built from.
type signerEntry struct {
	secret, previous string
	until            time.Time
	signer           *Signer
}

// signer returns the endpoint's signer, built once per secret (the base64 decoding is
// not repeated on every attempt).
func (w *Worker) signer(ep *Endpoint) (*Signer, error) {
	var until time.Time
	if ep.PreviousSecretUntil != nil {
		until = *ep.PreviousSecretUntil
	}
	if v, ok := w.signers.Load(ep.ID); ok {
		e := v.(*signerEntry)
		if e.secret == ep.Secret && e.previous == ep.PreviousSecret && e.until.Equal(until) {
			return e.signer, nil
		}
	}
	s, err := signerFor(ep)
	if err != nil {
		return nil, err
	}
	w.signers.Store(ep.ID, &signerEntry{secret: ep.Secret, previous: ep.PreviousSecret, until: until, signer: s})
	return s, nil
}

// signerFor builds the endpoint's signer, with the previous secret during rotation.
func signerFor(ep *Endpoint) (*Signer, error) {
	cur, err := ParseSecret(ep.Secret)
	if err != nil {
		return nil, err
	}
	s := NewSigner(cur)
	if ep.PreviousSecret != "" && ep.PreviousSecretUntil != nil {
		prev, err := ParseSecret(ep.PreviousSecret)
		if err != nil {
			return nil, err
		}
		s.Previous, s.PreviousUntil = prev, *ep.PreviousSecretUntil
	}
	return s, nil
}

// consumerGone reports whether cons no longer exists on the server (an answer, not a
// failure to get one).
func consumerGone(ctx context.Context, cons jetstream.Consumer) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := cons.Info(ctx)
	return errors.Is(err, jetstream.ErrConsumerNotFound)
}
