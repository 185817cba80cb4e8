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
	"github.com/hookrelay/hookrelay/schedule"
)

// Errors of the dead-letter store.
var (
	ErrDeadLetterNotFound = errors.New("deliver: dead letter not found")
	// ErrAlreadyReplayed: the letter's delivery is no longer dead from the schedule
	// the letter records (it was replayed, maybe this very moment by someone else).
	ErrAlreadyReplayed = errors.New("deliver: dead letter already replayed")
	// ErrNotReplayable: the letter cannot be delivered again (its endpoint was deleted,
	// or the schedule forgot it and the letter does not say where its event is).
	ErrNotReplayable = errors.New("deliver: dead letter cannot be replayed")
)

// States of a stored dead letter.
const (
	LetterOpen     = "open"     // its delivery is still dead from this letter's schedule
	LetterReplayed = "replayed" // its delivery was replayed since (it may have died again: a newer letter)
)

// StoredLetter is a dead letter as the admin API shows it: its stream sequence (its
// id), whether it is still open, and the letter.
type StoredLetter struct {
	Seq   uint64 `json:"seq"`
	State string `json:"state"`
	DeadLetter
}

// LetterFilter selects dead letters; zero fields match everything.
type LetterFilter struct {
	Endpoint string    // endpoint id (the subject's last token)
	Type     string    // event type, exact
	Since    time.Time // dead at or after
	Until    time.Time // dead before
	State    string    // LetterOpen, LetterReplayed or ""
}

// Replayer is what replay needs of the schedule: *schedule.Store.
type Replayer interface {
	Get(ctx context.Context, id string) (schedule.State, error)
	Revive(ctx context.Context, id string, deadFirst, now time.Time, attempt int) (bool, error)
	Schedule(ctx context.Context, d schedule.Delivery) (schedule.Scheduled, error)
}

var _ Replayer = (*schedule.Store)(nil)

// DeadLetterConfig configures a DeadLetterStore.
type DeadLetterConfig struct {
	JS        jetstream.JetStream
	Topology  natsx.Topology
	Schedule  Replayer
	Endpoints *EndpointStore
	Notify    Notifier // wakes the schedule loop after a replay; may be nil
	Clock     clock.Clock
}

// DeadLetterStore reads HOOKRELAY_DEAD and replays its letters. A letter's id is its
// stream sequence. Reading walks the stream with direct gets (next message at or after
// a sequence, for the endpoint's subject), so listing never creates consumers.
type DeadLetterStore struct {
	cfg    DeadLetterConfig
	stream jetstream.Stream
}

// NewDeadLetterStore opens HOOKRELAY_DEAD (natsx.EnsureStreams made it).
func NewDeadLetterStore(ctx context.Context, cfg DeadLetterConfig) (*DeadLetterStore, error) {
	cfg.Clock = clock.Or(cfg.Clock)
	st, err := cfg.JS.Stream(ctx, cfg.Topology.DeadStream())
	if err != nil {
		return nil, fmt.Errorf("dead letter stream: %w", err)
	}
	return &DeadLetterStore{cfg: cfg, stream: st}, nil
}

// Get returns the letter with sequence seq.
func (s *DeadLetterStore) Get(ctx context.Context, seq uint64) (StoredLetter, error) {
	if seq == 0 {
		return StoredLetter{}, ErrDeadLetterNotFound
	}
	m, err := s.stream.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return StoredLetter{}, ErrDeadLetterNotFound
	}
	if err != nil {
		return StoredLetter{}, fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	l, err := decodeLetter(seq, m.Data)
	if err != nil {
		return StoredLetter{}, err
	}
	if err := s.fillState(ctx, &l); err != nil {
		return StoredLetter{}, err
	}
	return l, nil
}

func decodeLetter(seq uint64, data []byte) (StoredLetter, error) {
	l := StoredLetter{Seq: seq}
	if err := json.Unmarshal(data, &l.DeadLetter); err != nil {
		return StoredLetter{}, fmt.Errorf("decode dead letter %d: %w", seq, err)
	}
	return l, nil
}

// fillState sets l.State from the schedule: open while the delivery is dead from the
// schedule the letter records, or unknown to the schedule (Redis lost it, or its
// marker expired: a replay schedules it afresh).
func (s *DeadLetterStore) fillState(ctx context.Context, l *StoredLetter) error {
	st, err := s.cfg.Schedule.Get(ctx, l.ID)
	switch {
	case errors.Is(err, schedule.ErrNotFound):
		l.State = LetterOpen
	case err != nil:
		return fmt.Errorf("state of %s: %w", l.ID, err)
	case st.Name == schedule.StateDead && (l.First.IsZero() || st.First.Equal(l.First)):
		l.State = LetterOpen
	default:
		l.State = LetterReplayed
	}
	return nil
}

// List returns up to limit letters matching f with sequences above after, oldest
// first, and the cursor for the next page (0 when the stream holds no more).
func (s *DeadLetterStore) List(ctx context.Context, f LetterFilter, after uint64, limit int) ([]StoredLetter, uint64, error) {
	var out []StoredLetter
	next, err := s.Scan(ctx, f, after, func(l StoredLetter) bool {
		out = append(out, l)
		return len(out) < limit
	})
	return out, next, err
}

// Scan calls fn for each letter matching f with a sequence above after, oldest first,
// until fn returns false or the stream as it was when Scan began is exhausted. It
// returns the sequence to continue after (0 when exhausted).
func (s *DeadLetterStore) Scan(ctx context.Context, f LetterFilter, after uint64, fn func(StoredLetter) bool) (uint64, error) {
	info, err := s.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dead letter stream: %w", err)
	}
	last := info.State.LastSeq
	subject := s.cfg.Topology.DeadSubject("*")
	if f.Endpoint != "" {
		subject = s.cfg.Topology.DeadSubject(f.Endpoint)
	}
	seq := after + 1
	if !f.Since.IsZero() {
		from, err := s.firstAtOrAfter(ctx, f.Since, info.State.FirstSeq, last)
		if err != nil {
			return 0, err
		}
		seq = max(seq, from)
	}
	for seq <= last {
		m, err := s.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("read dead letters from %d: %w", seq, err)
		}
		if m.Sequence > last {
			return 0, nil
		}
		seq = m.Sequence + 1
		l, err := decodeLetter(m.Sequence, m.Data)
		if err != nil {
			continue // not a letter hookrelay wrote; nothing to replay from it
		}
		if !f.Since.IsZero() && l.DeadAt.Before(f.Since) {
			continue
		}
		if !f.Until.IsZero() && !l.DeadAt.Before(f.Until) {
			continue // letters are only roughly in time order (replicas' clocks)
		}
		if f.Type != "" && eventType(l.Event) != f.Type {
			continue
		}
		if err := s.fillState(ctx, &l); err != nil {
			return 0, err
		}
		if f.State != "" && l.State != f.State {
			continue
		}
		if !fn(l) {
			if m.Sequence >= last {
				return 0, nil
			}
			return m.Sequence, nil
		}
	}
	return 0, nil
}

// firstAtOrAfter is the lowest sequence in [lo, hi] whose letter died at or after t
// less a minute (hi+1 when none): a binary search on dead_at, which rises with the
// sequence up to the skew between replicas' clocks (the minute). Scan checks each
// letter's time exactly; this only skips the older part of the stream.
func (s *DeadLetterStore) firstAtOrAfter(ctx context.Context, t time.Time, lo, hi uint64) (uint64, error) {
	end := hi + 1
	for lo < end {
		mid := lo + (end-lo)/2
		m, err := s.stream.GetMsg(ctx, mid, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			end = mid
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("find dead letters since %v: %w", t, err)
		}
		var at struct {
			DeadAt time.Time `json:"dead_at"`
		}
		if json.Unmarshal(m.Data, &at) == nil && at.DeadAt.Before(t.Add(-time.Minute)) {
			lo = m.Sequence + 1
		} else {
			end = mid
		}
	}
	return lo, nil
}

// eventType reads the type of an event body ("" if it has none).
func eventType(ev json.RawMessage) string {
	var h eventHead
	if len(ev) == 0 || json.Unmarshal(ev, &h) != nil {
		return ""
	}
	return h.Type
}

// Replay delivers letter seq again with a fresh schedule (attempt 1, due now),
// keeping the attempt log. The schedule changes atomically, so the same letter
// replayed twice at once is delivered once: the second gets ErrAlreadyReplayed. The
// new attempts' jobs carry a fresh Nats-Msg-Id (their first-attempt time is new) and
// the same webhook-id.
func (s *DeadLetterStore) Replay(ctx context.Context, seq uint64) (StoredLetter, error) {
	l, err := s.Get(ctx, seq)
	if err != nil {
		return StoredLetter{}, err
	}
	if l.State != LetterOpen {
		return l, ErrAlreadyReplayed
	}
	if err := s.CheckEndpoint(ctx, l.Endpoint.ID); err != nil {
		return l, err
	}
	if err := s.ReplayLetter(ctx, &l); err != nil {
		return l, err
	}
	return l, nil
}

// CheckEndpoint returns ErrNotReplayable if endpoint id no longer exists.
func (s *DeadLetterStore) CheckEndpoint(ctx context.Context, id string) error {
	if _, err := s.cfg.Endpoints.Get(ctx, id); errors.Is(err, ErrEndpointNotFound) {
		return fmt.Errorf("%w: endpoint %s was deleted", ErrNotReplayable, id)
	} else if err != nil {
		return err
	}
	return nil
}

// ReplayLetter is Replay for a letter already read whose endpoint the caller has
// checked (bulk replay checks each endpoint once).
func (s *DeadLetterStore) ReplayLetter(ctx context.Context, l *StoredLetter) error {
	now := s.cfg.Clock.Now()
	ok, err := s.cfg.Schedule.Revive(ctx, l.ID, l.First, now, 1)
	if err != nil {
		return err
	}
	if !ok {
		// Not dead from this letter's schedule: replayed already, unless the schedule
		// has forgotten the delivery altogether (Redis lost, marker expired).
		if _, err := s.cfg.Schedule.Get(ctx, l.ID); !errors.Is(err, schedule.ErrNotFound) {
			if err != nil {
				return err
			}
			return ErrAlreadyReplayed
		}
		if l.EventSeq == 0 {
			return fmt.Errorf("%w: the schedule has forgotten %s and the letter does not name its event's sequence", ErrNotReplayable, l.ID)
		}
		res, err := s.cfg.Schedule.Schedule(ctx, schedule.Delivery{
			ID: l.ID, Payload: eventPayload(l.EventSeq), First: now, Due: now, Attempt: 1,
		})
		if err != nil {
			return err
		}
		if !res.Created {
			return ErrAlreadyReplayed
		}
	}
	l.State = LetterReplayed
	if s.cfg.Notify != nil {
		s.cfg.Notify.Notify()
	}
	return nil
}
