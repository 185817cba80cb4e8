package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/parse"
	"github.com/hookrelay/hookrelay/schedule"
)

// Scheduler is what fan-out needs of the retry schedule: *schedule.Store.
type Scheduler interface {
	ScheduleMany(ctx context.Context, ds []schedule.Delivery) ([]schedule.Scheduled, []error)
}

var _ Scheduler = (*schedule.Store)(nil)

// FanoutConfig configures a Fanout.
type FanoutConfig struct {
	JS        jetstream.JetStream
	Topology  natsx.Topology
	Endpoints *EndpointSet
	Schedule  Scheduler
	// Index, when set, records each event's place by id and reference_id (the admin
	// API's lookups); an event is acked only once indexed.
	Index    Indexer
	Clock    clock.Clock
	Logger   *zap.Logger
	Observer PublishObserver // nil: not measured
	// Consumer is the durable consumer's name; default "hookrelay-fanout".
	Consumer string
	// PullExpiry is how long each pull request for events lasts; the server sends a
	// heartbeat every half of it, and a pull that missed two is made again. Default
	// 30 s (nats.go's).
	PullExpiry time.Duration
}

// Fanout turns each event on HOOKRELAY_EVENTS into one delivery per matching endpoint
// and hands each first attempt straight to the endpoint's workers: the delivery goes
// into the schedule as queued, then its job onto HOOKRELAY_DELIVERIES, with the event
// in hand (no claim, no second read of the event). It acks an event only after every
// job is stored. A redelivered event finds its deliveries known and creates nothing
// twice; one still queued for attempt 1 gets its job published again, under the same
// Nats-Msg-Id, which covers a crash between the two writes.
type Fanout struct {
	cfg     FanoutConfig
	log     *zap.Logger
	consCfg jetstream.ConsumerConfig
	cons    jetstream.Consumer
}

// NewFanout creates or updates the durable consumer.
func NewFanout(ctx context.Context, cfg FanoutConfig) (*Fanout, error) {
	if cfg.JS == nil || cfg.Endpoints == nil || cfg.Schedule == nil {
		return nil, errors.New("deliver: fanout needs JetStream, endpoints and a schedule")
	}
	if cfg.Consumer == "" {
		cfg.Consumer = "hookrelay-fanout"
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	consCfg := jetstream.ConsumerConfig{
		Durable:       cfg.Consumer,
		Description:   "hookrelay: events into deliveries",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	cons, err := cfg.JS.CreateOrUpdateConsumer(ctx, cfg.Topology.EventsStream(), consCfg)
	if err != nil {
		return nil, fmt.Errorf("fanout consumer: %w", err)
	}
	return &Fanout{cfg: cfg, log: cfg.Logger.Named("fanout"), consCfg: consCfg, cons: cons}, nil
}

// Fan-out works in batches: whatever events are waiting (up to fanoutBatch) get their
// deliveries scheduled in one Redis pipeline, their jobs published together, and are
// acked together, so a burst costs a few round trips per batch rather than per event.
// fanoutLoops batches are in flight at once.
const (
	fanoutBatch = 256
	fanoutLoops = 4
)

// Run consumes events until ctx ends, then lets the events in hand finish and returns
// nil. If the consumer goes away under it (deleted by hand, or lost by the server), it
// creates it again and goes on, as a restart would. Like a restart after a deletion,
// the new consumer starts at the stream's first event: deliveries already known
// (done markers last 30 days) are not created twice, but an endpoint created since
// an event came gets that event.
func (f *Fanout) Run(ctx context.Context) error {
	msgs := make(chan jetstream.Msg, fanoutBatch)
	handler := func(m jetstream.Msg) { msgs <- m }
	cc, err := f.consume(f.cons, handler)
	if err != nil {
		return fmt.Errorf("fanout consume: %w", err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range fanoutLoops {
		wg.Go(func() { f.loop(ctx, msgs, stop) })
	}
	for cc != nil {
		select {
		case <-ctx.Done():
			cc.Drain()
			<-cc.Closed() // no callback is running or will run
			cc = nil
		case <-cc.Closed():
			f.log.Error("event consumer stopped by the server; creating it again")
			cc = f.restart(ctx, handler)
		}
	}
	close(stop)
	wg.Wait()
	return nil
}

// consume starts consuming from cons. Interruptions are logged; the pull is made
// again by nats.go. A consumer deleted under it stops the consumption (Run then
// creates it again), also on a server that does not tell pulls of a deletion and
// only stops sending heartbeats.
func (f *Fanout) consume(cons jetstream.Consumer, handler jetstream.MessageHandler) (jetstream.ConsumeContext, error) {
	opts := []jetstream.PullConsumeOpt{
		jetstream.PullMaxMessages(2 * fanoutBatch),
		jetstream.ConsumeErrHandler(func(cc jetstream.ConsumeContext, err error) {
			f.log.Warn("event consumer interrupted; pulling again", zap.Error(err))
			// A deletion the server reports stops the consumption by itself; one it
			// does not report only shows as missed heartbeats.
			if errors.Is(err, jetstream.ErrNoHeartbeat) && consumerGone(context.Background(), cons) {
				cc.Stop()
			}
		}),
	}
	if f.cfg.PullExpiry > 0 {
		opts = append(opts, jetstream.PullExpiry(f.cfg.PullExpiry))
	}
	return cons.Consume(handler, opts...)
}

// restart creates the consumer again and consumes from it, retrying with a backoff
// until it works or ctx ends (then nil).
func (f *Fanout) restart(ctx context.Context, handler jetstream.MessageHandler) jetstream.ConsumeContext {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
	var cc jetstream.ConsumeContext
	err := backoff.RetryNotify(func() error {
		cons, err := f.cfg.JS.CreateOrUpdateConsumer(ctx, f.cfg.Topology.EventsStream(), f.consCfg)
		if err != nil {
			return fmt.Errorf("create the event consumer: %w", err)
		}
		cc, err = f.consume(cons, handler)
		return err
	}, backoff.WithContext(b, ctx), func(err error, wait time.Duration) {
		f.log.Warn("start the event consumer again; will retry", zap.Error(err), zap.Duration("in", wait))
	})
	if err != nil {
		return nil // ctx ended
	}
	return cc
}

// loop takes a batch of whatever events are waiting, handles it, and repeats until
// stop; then it handles everything left in msgs.
func (f *Fanout) loop(ctx context.Context, msgs <-chan jetstream.Msg, stop <-chan struct{}) {
	batch := make([]jetstream.Msg, 0, fanoutBatch)
	for {
		select {
		case m := <-msgs:
			f.handle(ctx, waiting(append(batch[:0], m), msgs))
		case <-stop:
			for batch = waiting(batch[:0], msgs); len(batch) > 0; batch = waiting(batch[:0], msgs) {
				f.handle(ctx, batch)
			}
			return
		}
	}
}

// waiting adds the messages already waiting in msgs to batch, up to its capacity,
// without blocking.
func waiting(batch []jetstream.Msg, msgs <-chan jetstream.Msg) []jetstream.Msg {
	for len(batch) < cap(batch) {
		select {
		case m := <-msgs:
			batch = append(batch, m)
		default:
			return batch
		}
	}
	return batch
}

// eventHead is what routing needs of an event; decoding only these fields skips the
// payment details and the provider's raw data (jobs carry the event's bytes as they are).
type eventHead struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Source    string `json:"source"`
	Merchant  string `json:"merchant"`
	Reference string `json:"reference_id"`
}

// handle fans out a batch of events: every delivery is created queued for attempt 1,
// then each job is published; an event is acked once all its jobs are stored, and
// nak'd (to come again) if any of its deliveries could not be scheduled or published.
func (f *Fanout) handle(ctx context.Context, msgs []jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	type item struct {
		m   jetstream.Msg
		id  string
		err error
	}
	items := make([]item, 0, len(msgs))
	var (
		ds     []schedule.Delivery
		owner  []int    // ds[i] belongs to items[owner[i]]
		target []string // ds[i]'s endpoint
		seqs   []uint64 // ds[i]'s event sequence
	)
	var index []IndexEntry // index[i] belongs to items[i]
	now := f.cfg.Clock.Now()
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			f.log.Error("event without metadata", zap.Error(err))
			_ = m.Term()
			continue
		}
		var head eventHead
		if err := json.Unmarshal(m.Data(), &head); err != nil || head.ID == "" {
			// Not an event hookrelay wrote; nothing can be delivered from it.
			f.log.Error("undecodable event; skipped", zap.Uint64("seq", meta.Sequence.Stream), zap.Error(err))
			_ = m.Term()
			continue
		}
		ev := parse.Event{ID: head.ID, Type: head.Type, Source: head.Source, Merchant: head.Merchant}
		for _, endpoint := range f.cfg.Endpoints.Matching(&ev) {
			ds = append(ds, schedule.Delivery{
				ID: DeliveryID(ev.ID, endpoint), Payload: eventPayload(meta.Sequence.Stream),
				First: now, Due: now, Attempt: 1, Queued: true,
			})
			owner, target = append(owner, len(items)), append(target, endpoint)
			seqs = append(seqs, meta.Sequence.Stream)
		}
		items = append(items, item{m: m, id: ev.ID})
		index = append(index, IndexEntry{ID: head.ID, Reference: head.Reference, Seq: meta.Sequence.Stream, At: meta.Timestamp})
	}
	if f.cfg.Index != nil && len(index) > 0 {
		for i, err := range f.cfg.Index.IndexMany(ctx, index) {
			if err != nil {
				items[i].err = err
			}
		}
	}
	var acks []jetstream.PubAckFuture
	if len(ds) > 0 {
		acks = make([]jetstream.PubAckFuture, len(ds))
		res, errs := f.cfg.Schedule.ScheduleMany(ctx, ds)
		for i, d := range ds {
			it := &items[owner[i]]
			switch {
			case errs[i] != nil:
				it.err = errs[i]
				continue
			case res[i].State != schedule.StateQueued || res[i].Attempt != 1:
				continue // known and past its first hand-off
			}
			job := Job{ID: d.ID, Endpoint: target[i], Attempt: 1, First: res[i].First, Due: res[i].First, Seq: seqs[i], Event: it.m.Data()}
			ack, err := f.cfg.JS.PublishMsgAsync(job.msg(f.cfg.Topology.DeliverySubject(target[i])))
			if err != nil {
				f.cfg.Observer.PublishFailed(f.cfg.Topology.DeliveriesStream())
				it.err = fmt.Errorf("publish job %s: %w", d.ID, err)
				continue
			}
			acks[i] = ack
		}
	}
	for i, ack := range acks {
		if ack == nil {
			continue
		}
		select {
		case <-ack.Ok():
		case err := <-ack.Err():
			f.cfg.Observer.PublishFailed(f.cfg.Topology.DeliveriesStream())
			items[owner[i]].err = fmt.Errorf("publish job %s: %w", ds[i].ID, err)
		case <-ctx.Done():
			items[owner[i]].err = fmt.Errorf("publish job %s: %w", ds[i].ID, ctx.Err())
		}
	}
	for _, it := range items {
		if it.err != nil {
			f.log.Warn("fan-out failed; the event will be redelivered", zap.String("event_id", it.id), zap.Error(it.err))
			_ = it.m.NakWithDelay(time.Second)
			continue
		}
		if err := it.m.Ack(); err != nil {
			f.log.Warn("ack event", zap.String("event_id", it.id), zap.Error(err))
		}
	}
}
