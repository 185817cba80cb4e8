package deliver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/schedule"
)

// ErrEventNotFound: no stored event has this id (or it is older than the events' max
// age, or the index was lost: redrive rebuilds it).
var ErrEventNotFound = errors.New("deliver: event not found")

// StoredEvent is an event as stored on HOOKRELAY_EVENTS.
type StoredEvent struct {
	Seq   uint64          `json:"seq"`
	Event json.RawMessage `json:"event"`
}

// EventFilter selects events; zero fields match everything. With Reference the index
// answers; without, the stream is walked (by subject for Source and Type).
type EventFilter struct {
	Reference string
	Type      string
	Source    string
	Since     time.Time // stored at or after
	Until     time.Time // stored before
}

// DeliveryView is one endpoint's delivery of an event, for "what happened to payment X".
type DeliveryView struct {
	ID        string             `json:"id"`
	Endpoint  string             `json:"endpoint"`
	State     schedule.StateName `json:"state"`
	Attempt   int                `json:"attempt"`               // the current (or last) attempt's number
	First     time.Time          `json:"first_attempt_at"`      // of the current schedule
	NextDue   *time.Time         `json:"next_due_at,omitempty"` // pending: when the next attempt is due
	Attempts  []AttemptRecord    `json:"attempts"`              // every attempt, replays included
	LeaseEnds *time.Time         `json:"lease_ends_at,omitempty"`
}

// DeliveryReader is what the event views need of the schedule: *schedule.Store.
type DeliveryReader interface {
	Get(ctx context.Context, id string) (schedule.State, error)
	Attempts(ctx context.Context, id string) ([][]byte, error)
}

// EventsConfig configures Events.
type EventsConfig struct {
	JS        jetstream.JetStream
	Topology  natsx.Topology
	Index     *EventIndex
	Schedule  DeliveryReader
	Endpoints *EndpointStore
}

// Events answers the admin API's questions about events and their deliveries.
type Events struct {
	cfg    EventsConfig
	stream jetstream.Stream
}

// NewEvents opens HOOKRELAY_EVENTS.
func NewEvents(ctx context.Context, cfg EventsConfig) (*Events, error) {
	st, err := cfg.JS.Stream(ctx, cfg.Topology.EventsStream())
	if err != nil {
		return nil, fmt.Errorf("events stream: %w", err)
	}
	return &Events{cfg: cfg, stream: st}, nil
}

// Get returns event id.
func (x *Events) Get(ctx context.Context, id string) (StoredEvent, error) {
	seq, err := x.cfg.Index.Seq(ctx, id)
	if errors.Is(err, ErrEventNotIndexed) {
		return StoredEvent{}, ErrEventNotFound
	}
	if err != nil {
		return StoredEvent{}, err
	}
	ev, err := x.read(ctx, seq)
	if err != nil {
		return StoredEvent{}, err
	}
	var head eventHead
	if json.Unmarshal(ev.Event, &head) != nil || head.ID != id {
		return StoredEvent{}, ErrEventNotFound // the index is stale (a stream recreated)
	}
	return ev, nil
}

func (x *Events) read(ctx context.Context, seq uint64) (StoredEvent, error) {
	m, err := x.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return StoredEvent{}, ErrEventNotFound
	}
	if err != nil {
		return StoredEvent{}, fmt.Errorf("read event %d: %w", seq, err)
	}
	return StoredEvent{Seq: seq, Event: m.Data}, nil
}

// Find returns up to limit events matching f with sequences above after, oldest first,
// and the cursor for more (0 when there are none).
func (x *Events) Find(ctx context.Context, f EventFilter, after uint64, limit int) ([]StoredEvent, uint64, error) {
	if f.Reference != "" {
		return x.findByReference(ctx, f, after, limit)
	}
	info, err := x.stream.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("events stream: %w", err)
	}
	last := info.State.LastSeq
	typ := f.Type // two tokens (payment.succeeded); ">" matches any
	if typ == "" {
		typ = ">"
	}
	subject := x.cfg.Topology.EventSubject("*", orWildcard(f.Source), typ)
	seq := max(after+1, info.State.FirstSeq)
	if !f.Since.IsZero() {
		from, err := firstStoredAtOrAfter(ctx, x.stream, f.Since, seq, last)
		if err != nil {
			return nil, 0, err
		}
		seq = max(seq, from)
	}
	var out []StoredEvent
	for seq <= last {
		m, err := x.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read events from %d: %w", seq, err)
		}
		if m.Sequence > last || (!f.Until.IsZero() && !m.Time.Before(f.Until)) {
			break
		}
		seq = m.Sequence + 1
		out = append(out, StoredEvent{Seq: m.Sequence, Event: m.Data})
		if len(out) == limit {
			if m.Sequence < last {
				return out, m.Sequence, nil
			}
			break
		}
	}
	return out, 0, nil
}

func orWildcard(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// findByReference reads the index's events of f.Reference, then applies the rest of f.
func (x *Events) findByReference(ctx context.Context, f EventFilter, after uint64, limit int) ([]StoredEvent, uint64, error) {
	seqs, err := x.cfg.Index.ByReference(ctx, f.Reference, f.Since, f.Until, 10_000)
	if err != nil {
		return nil, 0, err
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	var out []StoredEvent
	for i, seq := range seqs {
		if seq <= after {
			continue
		}
		ev, err := x.read(ctx, seq)
		if errors.Is(err, ErrEventNotFound) {
			continue // aged out of the stream before its index entry
		}
		if err != nil {
			return nil, 0, err
		}
		var head eventHead
		if json.Unmarshal(ev.Event, &head) != nil || head.Reference != f.Reference ||
			(f.Type != "" && head.Type != f.Type) || (f.Source != "" && head.Source != f.Source) {
			continue
		}
		out = append(out, ev)
		if len(out) == limit {
			if i < len(seqs)-1 {
				return out, seq, nil
			}
			break
		}
	}
	return out, 0, nil
}

// Deliveries returns the delivery of event id to each current endpoint that has one,
// with its state and every attempt.
func (x *Events) Deliveries(ctx context.Context, id string) ([]DeliveryView, error) {
	eps, err := x.cfg.Endpoints.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []DeliveryView{}
	for _, ep := range eps {
		did := DeliveryID(id, ep.ID)
		st, err := x.cfg.Schedule.Get(ctx, did)
		if errors.Is(err, schedule.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		v := DeliveryView{ID: did, Endpoint: ep.ID, State: st.Name, Attempt: st.Attempt, First: st.First}
		if !st.Due.IsZero() {
			due := st.Due
			if st.Name == schedule.StateLeased {
				v.LeaseEnds = &due
			} else {
				v.NextDue = &due
			}
		}
		raws, err := x.cfg.Schedule.Attempts(ctx, did)
		if err != nil {
			return nil, err
		}
		v.Attempts = decodeAttempts(raws)
		out = append(out, v)
	}
	return out, nil
}

// firstStoredAtOrAfter is the lowest sequence in [lo, hi] stored at or after t (hi+1
// when none): a binary search on the stream's stored times, which rise with the
// sequence on one server.
func firstStoredAtOrAfter(ctx context.Context, st jetstream.Stream, t time.Time, lo, hi uint64) (uint64, error) {
	end := hi + 1
	for lo < end {
		mid := lo + (end-lo)/2
		m, err := st.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			end = mid
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("find events since %v: %w", t, err)
		}
		if m.Time.Before(t) {
			lo = m.Sequence + 1
		} else {
			end = mid
		}
	}
	return lo, nil
}
