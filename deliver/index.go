package deliver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
)

// IndexEntry is where one event is on HOOKRELAY_EVENTS.
type IndexEntry struct {
	ID        string    // event id
	Reference string    // reference_id; may be empty
	Seq       uint64    // stream sequence
	At        time.Time // when it was stored
}

// Indexer is what fan-out needs of the event index: *EventIndex.
type Indexer interface {
	IndexMany(ctx context.Context, es []IndexEntry) []error
}

var _ Indexer = (*EventIndex)(nil)

// ErrEventNotIndexed: the index does not know the event (never stored, older than the
// events' max age, or Redis lost the index: redrive rebuilds it).
var ErrEventNotIndexed = errors.New("deliver: event not in the index")

// EventIndex keeps, in Redis, each event's stream sequence by event id and by
// reference_id, so on-call finds "payment X" without scanning the stream. Fan-out
// writes it for every event it routes (at least once: entries are idempotent); each
// entry expires with the events' max age.
type EventIndex struct {
	keys   rkeys.Keyspace
	rdb    redis.UniversalClient
	maxAge time.Duration
}

// NewEventIndex returns the index; maxAge is the events stream's (entries live as
// long; 0 means natsx.DefaultEventsMaxAge).
func NewEventIndex(rdb redis.UniversalClient, keys rkeys.Keyspace, maxAge time.Duration) *EventIndex {
	if maxAge <= 0 {
		maxAge = natsx.DefaultEventsMaxAge
	}
	return &EventIndex{keys: keys, rdb: rdb, maxAge: maxAge}
}

// IndexMany records es in one pipeline; errs[i] belongs to es[i].
func (x *EventIndex) IndexMany(ctx context.Context, es []IndexEntry) []error {
	errs := make([]error, len(es))
	cmds := make([][]redis.Cmder, len(es))
	var all []redis.Cmder
	ttl := x.maxAge.Milliseconds()
	for i, e := range es {
		seq := strconv.FormatUint(e.Seq, 10)
		cs := []redis.Cmder{redis.NewStatusCmd(ctx, "set", x.keys.EventSeq(e.ID), seq, "px", ttl)}
		if e.Reference != "" {
			ref := x.keys.EventsByReference(e.Reference)
			cs = append(cs,
				redis.NewIntCmd(ctx, "zadd", ref, e.At.UnixMilli(), seq),
				redis.NewIntCmd(ctx, "pexpire", ref, ttl))
		}
		cmds[i] = cs
		all = append(all, cs...)
	}
	if len(all) == 0 {
		return errs
	}
	pipe := x.rdb.Pipeline()
	for _, c := range all {
		_ = pipe.Process(ctx, c)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, cs := range cmds {
		for _, c := range cs {
			if err := c.Err(); err != nil {
				errs[i] = fmt.Errorf("index event %s: %w", es[i].ID, err)
				break
			}
		}
	}
	return errs
}

// Seq returns the stream sequence of event id, or ErrEventNotIndexed.
func (x *EventIndex) Seq(ctx context.Context, id string) (uint64, error) {
	v, err := x.rdb.Get(ctx, x.keys.EventSeq(id)).Uint64()
	if errors.Is(err, redis.Nil) {
		return 0, ErrEventNotIndexed
	}
	if err != nil {
		return 0, fmt.Errorf("index lookup %s: %w", id, err)
	}
	return v, nil
}

// ByReference returns the sequences of the events of reference_id stored between since
// and until (zero: unbounded), oldest first, at most limit.
func (x *EventIndex) ByReference(ctx context.Context, reference string, since, until time.Time, limit int) ([]uint64, error) {
	min, max := "-inf", "+inf"
	if !since.IsZero() {
		min = strconv.FormatInt(since.UnixMilli(), 10)
	}
	if !until.IsZero() {
		max = "(" + strconv.FormatInt(until.UnixMilli(), 10)
	}
	vals, err := x.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: x.keys.EventsByReference(reference), Start: min, Stop: max, ByScore: true, Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("index lookup reference %s: %w", reference, err)
	}
	out := make([]uint64, 0, len(vals))
	for _, v := range vals {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}
