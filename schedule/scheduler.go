package schedule

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/clock"
)

// Dispatcher hands a claimed delivery on for its attempt (the deliver package
// publishes it to JetStream). An error hands the delivery back to the schedule, due
// now, with the attempt not counted.
type Dispatcher interface {
	Dispatch(ctx context.Context, c Claimed) error
}

// Defaults of Config.
const (
	DefaultBatch = MaxClaim
	DefaultLease = 30 * time.Second
	// maxSleep bounds Run's sleep, so deliveries scheduled by other replicas that
	// did not Notify this one start within a second of their due time.
	maxSleep = WakeHorizon
)

// WakeHorizon is how far ahead a sleeping Run looks on its own: a delivery scheduled
// to come due sooner than this from now needs a Notify to start on time; one due
// later is found by the loop's next look.
const WakeHorizon = time.Second

// Config configures a Scheduler.
type Config struct {
	Store    *Store        // required
	Clock    clock.Clock   // nil: the real clock
	Dispatch Dispatcher    // required
	Batch    int           // deliveries claimed per call; 0: DefaultBatch; at most MaxClaim
	Lease    time.Duration // how long a worker owns a claimed attempt; 0: DefaultLease
	// Parallel is how many deliveries of a claimed batch are dispatched at once; 0 or
	// 1: one at a time. Above 1, Dispatch must be safe for concurrent use. A dispatch
	// is I/O (a stream read, a publish), so a batch dispatched one at a time costs a
	// batch of round trips in series.
	Parallel int
	Logger   *zap.Logger // nil: no logs
	Observer Observer    // nil: not measured
}

// Observer is told how late each claimed delivery was (metrics).
type Observer interface {
	// Claimed: a delivery was claimed late after its due time (0 if not late).
	Claimed(late time.Duration)
}

// Validate reports whether c is usable (after defaults).
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("schedule: config: store is required"))
	}
	if c.Dispatch == nil {
		errs = append(errs, errors.New("schedule: config: dispatch is required"))
	}
	if c.Batch < 0 || c.Batch > MaxClaim {
		errs = append(errs, fmt.Errorf("schedule: config: batch %d, want 0..%d", c.Batch, MaxClaim))
	}
	if c.Parallel < 0 || c.Parallel > MaxClaim {
		errs = append(errs, fmt.Errorf("schedule: config: parallel %d, want 0..%d", c.Parallel, MaxClaim))
	}
	if c.Lease < 0 || (c.Lease > 0 && c.Lease < time.Millisecond) {
		errs = append(errs, fmt.Errorf("schedule: config: lease %v, want 0 or >= 1ms", c.Lease))
	}
	return errors.Join(errs...)
}

// Scheduler is the loop that claims due deliveries and dispatches them. Any number of
// replicas may run against one Store.
type Scheduler struct {
	store    *Store
	clock    clock.Clock
	dispatch Dispatcher
	batch    int
	parallel int
	lease    time.Duration
	log      *zap.Logger
	obs      Observer
	wake     chan struct{}
}

// New returns a Scheduler for cfg.
func New(cfg Config) (*Scheduler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Scheduler{
		store:    cfg.Store,
		clock:    clock.Or(cfg.Clock),
		dispatch: cfg.Dispatch,
		batch:    cfg.Batch,
		parallel: max(cfg.Parallel, 1),
		lease:    cfg.Lease,
		log:      cfg.Logger,
		obs:      cfg.Observer,
		wake:     make(chan struct{}, 1),
	}
	if s.batch == 0 {
		s.batch = DefaultBatch
	}
	if s.lease == 0 {
		s.lease = DefaultLease
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.log = s.log.Named("schedule")
	return s, nil
}

// Tick runs one round: it makes up to one batch of expired leases pending again,
// claims up to one batch of deliveries due now and dispatches each (Parallel at a
// time). A delivery whose dispatch fails is released, due now, attempt not counted.
// It returns, once every dispatch of the batch has finished, how many were
// dispatched; an error is returned after the batch has been handled.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	now := s.clock.Now()
	if n, err := s.store.Reclaim(ctx, now, s.batch); err != nil {
		return 0, err
	} else if n > 0 {
		s.log.Warn("schedule.reclaimed", zap.Int("count", n))
	}
	claimed, err := s.store.Claim(ctx, now, s.batch, s.lease)
	if err != nil {
		return 0, err
	}
	if s.obs != nil {
		for _, c := range claimed {
			s.obs.Claimed(max(now.Sub(c.Due), 0))
		}
	}
	var (
		mu   sync.Mutex
		sent int
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, s.parallel)
	)
	for _, c := range claimed {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.dispatch.Dispatch(ctx, c)
			if err != nil {
				s.release(ctx, c, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("dispatch %s attempt %d: %w", c.ID, c.Attempt, err))
				return
			}
			sent++
		})
	}
	wg.Wait()
	return sent, errors.Join(errs...)
}

// release hands back a delivery whose dispatch failed. It outlives a cancelled ctx so
// a shutdown does not strand the delivery until its lease expires.
func (s *Scheduler) release(ctx context.Context, c Claimed, cause error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	ok, err := s.store.Release(rctx, c.ID, c.Attempt, s.clock.Now())
	switch {
	case err != nil:
		// The lease expires and Reclaim hands it out again.
		s.log.Error("schedule.release_failed", zap.String("delivery", c.ID), zap.Int("attempt", c.Attempt), zap.Error(err))
	case !ok:
		s.log.Warn("schedule.release_stale", zap.String("delivery", c.ID), zap.Int("attempt", c.Attempt))
	default:
		s.log.Warn("schedule.dispatch_failed", zap.String("delivery", c.ID), zap.Int("attempt", c.Attempt), zap.Error(cause))
	}
}

// Notify wakes Run early (call it after scheduling something due sooner in this
// process). It never blocks.
func (s *Scheduler) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run ticks until ctx is cancelled, then returns nil. Between ticks it sleeps until
// the next due time or lease expiry, at most a second, or until Notify. After an
// error it waits a second and tries again.
func (s *Scheduler) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-s.wake:
		}
		sleep := maxSleep
		n, err := s.Tick(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			s.log.Error("schedule.tick_failed", zap.Error(err))
		case n >= s.batch:
			sleep = 0 // more may be due
		default:
			sleep = s.untilWake(ctx)
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(sleep)
	}
}

// untilWake is how long to sleep until the next due time or lease expiry, in
// [0, maxSleep].
func (s *Scheduler) untilWake(ctx context.Context) time.Duration {
	at, ok, err := s.store.NextWake(ctx)
	if err != nil {
		s.log.Error("schedule.next_wake_failed", zap.Error(err))
		return maxSleep
	}
	if !ok {
		return maxSleep
	}
	return min(max(at.Sub(s.clock.Now()), 0), maxSleep)
}
