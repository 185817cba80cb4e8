// Package redisx coalesces concurrent Redis commands into pipelines.
package redisx

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults of a Batcher.
const (
	DefaultWorkers  = 4               // pipelines in flight at once
	DefaultMaxBatch = 256             // commands per pipeline at most
	DefaultTimeout  = 5 * time.Second // bound on one pipeline round trip
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("redisx: batcher closed")

// Batcher sends commands from many goroutines to Redis as pipelines: whatever
// commands are waiting when a worker is free go as one round trip, so N concurrent
// callers cost a few round trips (and syscalls) instead of N. Nothing waits for a
// batch to fill: a command that arrives at an idle batcher is sent at once. Each
// command carries its own result and error, as with a single call.
type Batcher struct {
	rdb      redis.UniversalClient
	maxBatch int
	timeout  time.Duration

	reqs     chan *req
	start    sync.Once
	workers  int
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

type req struct {
	cmd  redis.Cmder
	done chan struct{}
}

// NewBatcher returns a Batcher over rdb with workers pipelines in flight at most
// (0: DefaultWorkers).
func NewBatcher(rdb redis.UniversalClient, workers int) *Batcher {
	if workers <= 0 {
		workers = DefaultWorkers
	}
	return &Batcher{
		rdb:      rdb,
		maxBatch: DefaultMaxBatch,
		timeout:  DefaultTimeout,
		workers:  workers,
		reqs:     make(chan *req),
		stop:     make(chan struct{}),
	}
}

// Do sends cmd in the next pipeline and waits for its reply; the error is cmd.Err().
// If ctx ends first, Do returns ctx.Err() while the command may still run.
func (b *Batcher) Do(ctx context.Context, cmd redis.Cmder) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-b.stop:
		return ErrClosed // and starts no workers
	default:
	}
	b.start.Do(func() {
		b.wg.Add(b.workers)
		for range b.workers {
			go b.work()
		}
	})
	r := &req{cmd: cmd, done: make(chan struct{})}
	select {
	case b.reqs <- r:
	case <-b.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.done:
		return cmd.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the workers once the pipelines in flight return; Do fails after it.
func (b *Batcher) Close() {
	b.stopOnce.Do(func() { close(b.stop) })
	b.wg.Wait()
}

func (b *Batcher) work() {
	defer b.wg.Done()
	batch := make([]*req, 0, b.maxBatch)
	for {
		select {
		case r := <-b.reqs:
			batch = append(batch[:0], r)
		case <-b.stop:
			return
		}
	fill:
		for len(batch) < b.maxBatch {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		b.exec(batch)
	}
}

func (b *Batcher) exec(batch []*req) {
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	defer cancel()
	pipe := b.rdb.Pipeline()
	for _, r := range batch {
		_ = pipe.Process(ctx, r.cmd)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own result
	for _, r := range batch {
		close(r.done)
	}
}

// Script runs script with keys and args through b (EVALSHA in the next pipeline),
// falling back to a direct EVAL when Redis does not know the script yet.
func (b *Batcher) Script(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmdArgs := make([]any, 0, 3+len(keys)+len(args))
	cmdArgs = append(cmdArgs, "evalsha", script.Hash(), len(keys))
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	if err := b.Do(ctx, cmd); err != nil && IsNoScript(err) {
		return script.Eval(ctx, b.rdb, keys, args...)
	}
	return cmd
}

// IsNoScript reports whether err is Redis's answer to EVALSHA of an unknown script.
func IsNoScript(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") }
