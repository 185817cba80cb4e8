package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/schedule"
)

// Recorder is what delivery needs of the retry schedule: *schedule.Store.
type Recorder interface {
	Get(ctx context.Context, id string) (schedule.State, error)
	Succeed(ctx context.Context, id string, attempt int, record []byte) (bool, error)
	Fail(ctx context.Context, id string, attempt int, now time.Time, record []byte) (schedule.FailResult, error)
	Kill(ctx context.Context, id string, attempt int, now time.Time, record []byte) (bool, error)
	Hold(ctx context.Context, id string, attempt int, group string, now time.Time) (bool, error)
	Unhold(ctx context.Context, group string, now time.Time) (int, error)
	HeldGroups(ctx context.Context) ([]string, error)
	Queued(ctx context.Context, id string, attempt int) (bool, error)
	Attempts(ctx context.Context, id string) ([][]byte, error)
}

var (
	_ Recorder            = (*schedule.Store)(nil)
	_ schedule.Dispatcher = (*Dispatcher)(nil)
)

// DispatcherConfig configures a Dispatcher.
type DispatcherConfig struct {
	JS        jetstream.JetStream
	Topology  natsx.Topology
	Endpoints *EndpointSet
	Store     Recorder
	Clock     clock.Clock
	Logger    *zap.Logger
	Observer  PublishObserver // nil: not measured
}

// Dispatcher is the schedule's hand-off: it turns a claimed delivery (a retry, a
// released hold, a revived one) into a job on HOOKRELAY_DELIVERIES for the endpoint's
// workers, then marks it queued. A crash between the two leaves the lease to expire:
// the delivery is claimed again and its job published again. The job's Nats-Msg-Id
// carries the due time, which Reclaim resets, so JetStream does not drop the second
// job: if the first still waits (a slow endpoint's backlog), the merchant gets the
// attempt twice, with the same webhook-id.
type Dispatcher struct {
	cfg    DispatcherConfig
	log    *zap.Logger
	events jetstream.Stream
	dead   *deadLetters
}

// NewDispatcher returns a Dispatcher.
func NewDispatcher(ctx context.Context, cfg DispatcherConfig) (*Dispatcher, error) {
	if cfg.JS == nil || cfg.Endpoints == nil || cfg.Store == nil {
		return nil, errors.New("deliver: dispatcher needs JetStream, endpoints and a store")
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	events, err := cfg.JS.Stream(ctx, cfg.Topology.EventsStream())
	if err != nil {
		return nil, fmt.Errorf("events stream: %w", err)
	}
	return &Dispatcher{
		cfg:    cfg,
		log:    cfg.Logger.Named("dispatch"),
		events: events,
		dead:   &deadLetters{js: cfg.JS, topo: cfg.Topology, store: cfg.Store, clock: cfg.Clock},
	}, nil
}

// Dispatch implements schedule.Dispatcher. An error hands the delivery back to the
// schedule (due now); everything it decides itself returns nil.
func (d *Dispatcher) Dispatch(ctx context.Context, c schedule.Claimed) error {
	_, endpointID, ok := splitDeliveryID(c.ID)
	if !ok {
		return fmt.Errorf("deliver: malformed delivery id %q", c.ID)
	}
	ep, found := d.cfg.Endpoints.Get(endpointID)
	if found && !ep.Enabled {
		_, err := d.cfg.Store.Hold(ctx, c.ID, c.Attempt, endpointID, d.cfg.Clock.Now())
		return err
	}
	seq, err := parseEventPayload(c.Payload)
	if err != nil {
		return err
	}
	event, err := d.event(ctx, seq)
	switch {
	case errors.Is(err, errEventGone):
		return d.kill(ctx, c, seq, EndpointRef{ID: endpointID}, nil, err.Error())
	case err != nil:
		return err
	case !found:
		return d.kill(ctx, c, seq, EndpointRef{ID: endpointID}, event, "endpoint deleted")
	}
	job := Job{ID: c.ID, Endpoint: endpointID, Attempt: c.Attempt, First: c.First, Due: c.Due, Seq: seq, Event: event}
	if _, err := d.cfg.JS.PublishMsg(ctx, job.msg(d.cfg.Topology.DeliverySubject(endpointID))); err != nil {
		d.cfg.Observer.PublishFailed(d.cfg.Topology.DeliveriesStream())
		return fmt.Errorf("publish job %s: %w", c.ID, err)
	}
	// From here JetStream owns the attempt; the lease must not expire under a job that
	// waits behind a slow endpoint. Stale (false) means a worker already recorded it.
	// If the mark fails, the job is still stored: handing the delivery back would make a
	// second job, so the lease is left to run out instead; by then the job has usually
	// been recorded and Reclaim finds nothing.
	if _, err := d.cfg.Store.Queued(ctx, c.ID, c.Attempt); err != nil {
		d.log.Warn("job published but not marked queued; its lease will run out", zap.String("delivery_id", c.ID), zap.Int("attempt", c.Attempt), zap.Error(err))
	}
	return nil
}

// kill makes a delivery that can never be attempted a dead letter: the letter first,
// then the state, so a crash in between only repeats the (deduplicated) letter.
func (d *Dispatcher) kill(ctx context.Context, c schedule.Claimed, seq uint64, ep EndpointRef, event json.RawMessage, reason string) error {
	rec := AttemptRecord{Attempt: c.Attempt, Start: d.cfg.Clock.Now().UTC(), Error: reason, Outcome: Dead.String()}
	// The letter goes first, so it carries the final record the store has not got yet.
	if err := d.dead.send(ctx, c.ID, ep, event, seq, reason, c.First, c.Attempt, []AttemptRecord{rec}); err != nil {
		return err
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = d.cfg.Store.Kill(ctx, c.ID, c.Attempt, d.cfg.Clock.Now(), raw)
	d.log.Warn("delivery dead before an attempt", zap.String("delivery_id", c.ID), zap.String("reason", reason))
	return err
}

// event reads event seq of HOOKRELAY_EVENTS.
func (d *Dispatcher) event(ctx context.Context, seq uint64) (json.RawMessage, error) {
	m, err := d.events.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, errEventGone
	}
	if err != nil {
		return nil, fmt.Errorf("read event %d: %w", seq, err)
	}
	return m.Data, nil
}

// deadLetters writes HOOKRELAY_DEAD.
type deadLetters struct {
	js    jetstream.JetStream
	topo  natsx.Topology
	store Recorder
	clock clock.Clock
}

// send publishes the dead letter of delivery id with its attempt log (plus extra,
// records not yet in the store). The Nats-Msg-Id makes a repeat within JetStream's
// duplicate window a no-op.
func (dl *deadLetters) send(ctx context.Context, id string, ep EndpointRef, event json.RawMessage, seq uint64, reason string, first time.Time, attempt int, extra []AttemptRecord) error {
	raws, err := dl.store.Attempts(ctx, id)
	if err != nil {
		return fmt.Errorf("attempt log of %s: %w", id, err)
	}
	attempts := append(decodeAttempts(raws), extra...)
	eventID, _, _ := splitDeliveryID(id)
	letter, err := json.Marshal(DeadLetter{
		ID: id, EventID: eventID, Endpoint: ep, Reason: reason, DeadAt: dl.clock.Now().UTC(),
		First: first.UTC(), FinalAttempt: attempt, EventSeq: seq, Attempts: attempts, Event: event,
	})
	if err != nil {
		return err
	}
	msgID := "dead:" + attemptKey(id, first, attempt)
	if _, err := dl.js.PublishMsg(ctx, &nats.Msg{Subject: dl.topo.DeadSubject(ep.ID), Data: letter}, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish dead letter %s: %w", id, err)
	}
	return nil
}

// decodeAttempts reads a delivery's attempt log (schedule.Store.Attempts), skipping
// records it cannot read.
func decodeAttempts(raws [][]byte) []AttemptRecord {
	out := make([]AttemptRecord, 0, len(raws))
	for _, r := range raws {
		var a AttemptRecord
		if json.Unmarshal(r, &a) == nil {
			out = append(out, a)
		}
	}
	return out
}
