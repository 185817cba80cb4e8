package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/parse"
	"github.com/hookrelay/hookrelay/schedule"
)

// RedriveResult counts what a redrive did.
type RedriveResult struct {
	Events    int  `json:"events"`    // events read from the stream
	Scheduled int  `json:"scheduled"` // deliveries the schedule did not know: scheduled again
	Known     int  `json:"known"`     // deliveries the schedule knows (done, pending, dead…): left as they are
	Truncated bool `json:"truncated,omitempty"`
	// NextSince, when Truncated, is the stored time of the first event not read: redrive
	// again from it for the rest.
	NextSince *time.Time `json:"next_since,omitempty"`
}

// RedriveConfig configures a Redriver.
type RedriveConfig struct {
	JS        jetstream.JetStream
	Topology  natsx.Topology
	Endpoints *EndpointSet
	Schedule  Scheduler
	Index     Indexer  // rebuilt for the events read; may be nil
	Notify    Notifier // wakes the schedule loop; may be nil
	Clock     clock.Clock
}

// Redriver is SPEC §8's disaster recovery: it walks HOOKRELAY_EVENTS from a time and
// schedules afresh every delivery the schedule does not know, so a lost Redis costs
// duplicates (the same webhook-id), never a lost event. Deliveries the schedule knows,
// done ones included, are left alone.
type Redriver struct {
	cfg    RedriveConfig
	stream jetstream.Stream
}

// NewRedriver opens HOOKRELAY_EVENTS.
func NewRedriver(ctx context.Context, cfg RedriveConfig) (*Redriver, error) {
	cfg.Clock = clock.Or(cfg.Clock)
	st, err := cfg.JS.Stream(ctx, cfg.Topology.EventsStream())
	if err != nil {
		return nil, fmt.Errorf("events stream: %w", err)
	}
	return &Redriver{cfg: cfg, stream: st}, nil
}

// redriveBatch is how many deliveries go to the schedule in one pipeline.
const redriveBatch = 256

// Redrive schedules the unknown deliveries of the events stored since (to endpoint
// only, when not empty), reading at most maxEvents events.
func (r *Redriver) Redrive(ctx context.Context, since time.Time, endpoint string, maxEvents int) (RedriveResult, error) {
	var res RedriveResult
	info, err := r.stream.Info(ctx)
	if err != nil {
		return res, fmt.Errorf("events stream: %w", err)
	}
	last := info.State.LastSeq
	seq, err := firstStoredAtOrAfter(ctx, r.stream, since, info.State.FirstSeq, last)
	if err != nil {
		return res, err
	}
	var (
		ds    []schedule.Delivery
		index []IndexEntry
	)
	flush := func() error {
		if r.cfg.Index != nil && len(index) > 0 {
			for _, err := range r.cfg.Index.IndexMany(ctx, index) {
				if err != nil {
					return err
				}
			}
		}
		index = index[:0]
		if len(ds) == 0 {
			return nil
		}
		out, errs := r.cfg.Schedule.ScheduleMany(ctx, ds)
		for i := range ds {
			if errs[i] != nil {
				return errs[i]
			}
			if out[i].Created {
				res.Scheduled++
			} else {
				res.Known++
			}
		}
		ds = ds[:0]
		return nil
	}
	subject := r.cfg.Topology.EventSubject("*", "*", ">")
	for seq <= last {
		m, err := r.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read events from %d: %w", seq, err)
		}
		if m.Sequence > last {
			break
		}
		if res.Events == maxEvents {
			at := m.Time.UTC()
			res.Truncated, res.NextSince = true, &at
			break
		}
		seq = m.Sequence + 1
		var head eventHead
		if json.Unmarshal(m.Data, &head) != nil || head.ID == "" {
			continue
		}
		res.Events++
		index = append(index, IndexEntry{ID: head.ID, Reference: head.Reference, Seq: m.Sequence, At: m.Time})
		now := r.cfg.Clock.Now()
		ev := parse.Event{ID: head.ID, Type: head.Type, Source: head.Source, Merchant: head.Merchant}
		for _, ep := range r.cfg.Endpoints.Matching(&ev) {
			if endpoint != "" && ep != endpoint {
				continue
			}
			ds = append(ds, schedule.Delivery{ID: DeliveryID(head.ID, ep), Payload: eventPayload(m.Sequence), First: now, Due: now, Attempt: 1})
		}
		if len(ds) >= redriveBatch || len(index) >= redriveBatch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := flush(); err != nil {
		return res, err
	}
	if res.Scheduled > 0 && r.cfg.Notify != nil {
		r.cfg.Notify.Notify()
	}
	return res, nil
}
