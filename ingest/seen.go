package ingest

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redisx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
)

// SeenTTL is how long a seen marker answers provider retries (SPEC §2).
const SeenTTL = 7 * 24 * time.Hour

// RedisMarker keeps seen markers in Redis: one key per stored event, expiring after
// SeenTTL.
//
// Concurrent calls are coalesced (redisx.Batcher): whatever look-ups and marks are
// waiting go to Redis as one pipeline, so a burst of N requests costs a few round
// trips instead of 2N, and a request at an idle marker is sent at once. Close stops
// that.
type RedisMarker struct {
	keys  rkeys.Keyspace
	batch *redisx.Batcher
}

// NewRedisMarker returns a marker in rdb under keys' prefix.
func NewRedisMarker(rdb redis.UniversalClient, keys rkeys.Keyspace) *RedisMarker {
	return &RedisMarker{keys: keys, batch: redisx.NewBatcher(rdb, 0)}
}

// Seen implements Marker.
func (m *RedisMarker) Seen(ctx context.Context, eventID string) (bool, error) {
	cmd := redis.NewStringCmd(ctx, "get", m.keys.Seen(eventID))
	err := m.batch.Do(ctx, cmd)
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

// MarkSeen implements Marker.
func (m *RedisMarker) MarkSeen(ctx context.Context, eventID string, seq uint64) error {
	return m.batch.Do(ctx, redis.NewStatusCmd(ctx, "set", m.keys.Seen(eventID), strconv.FormatUint(seq, 10), "px", SeenTTL.Milliseconds()))
}

// Close stops the pipelining workers; calls after Close fail.
func (m *RedisMarker) Close() { m.batch.Close() }
