package redisx_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redisx"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// TestBatcherResults: many goroutines at once each get their own reply, error
// included, as with single calls.
func TestBatcherResults(t *testing.T) {
	r := testenv.NewRedis(t)
	b := redisx.NewBatcher(r.Client, 2)
	t.Cleanup(b.Close)
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 500 {
		wg.Go(func() {
			key := r.Prefix + "k" + strconv.Itoa(i)
			if err := b.Do(ctx, redis.NewStatusCmd(ctx, "set", key, i)); err != nil {
				t.Errorf("set %s: %v", key, err)
				return
			}
			get := redis.NewStringCmd(ctx, "get", key)
			if err := b.Do(ctx, get); err != nil || get.Val() != strconv.Itoa(i) {
				t.Errorf("get %s = %q, %v", key, get.Val(), err)
			}
			missing := redis.NewStringCmd(ctx, "get", key+":none")
			if err := b.Do(ctx, missing); !errors.Is(err, redis.Nil) {
				t.Errorf("get of a missing key = %v, want redis.Nil", err)
			}
			bad := redis.NewCmd(ctx, "incr", key+":none", "extra")
			if err := b.Do(ctx, bad); err == nil {
				t.Error("a wrong command returned no error")
			}
		})
	}
	wg.Wait()
}

// TestBatcherScript: a script Redis has not seen is loaded on first use (the NOSCRIPT
// answer falls back to EVAL), then runs by its hash.
func TestBatcherScript(t *testing.T) {
	r := testenv.NewRedis(t)
	b := redisx.NewBatcher(r.Client, 0)
	t.Cleanup(b.Close)
	ctx := context.Background()
	script := redis.NewScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`)
	if err := r.Client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	key := r.Prefix + "counter"
	for want := int64(3); want <= 9; want += 3 {
		n, err := b.Script(ctx, script, []string{key}, 3).Int64()
		if err != nil || n != want {
			t.Fatalf("script = %d, %v, want %d", n, err, want)
		}
	}
	if !redisx.IsNoScript(errors.New("NOSCRIPT No matching script")) || redisx.IsNoScript(nil) {
		t.Error("IsNoScript misreads errors")
	}
}

// TestBatcherClosed: after Close, calls fail at once.
func TestBatcherClosed(t *testing.T) {
	r := testenv.NewRedis(t)
	b := redisx.NewBatcher(r.Client, 0)
	ctx := context.Background()
	if err := b.Do(ctx, redis.NewStatusCmd(ctx, "ping")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.Do(ctx, redis.NewStatusCmd(ctx, "ping")); !errors.Is(err, redisx.ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
}

// TestBatcherCancelled: a caller whose context ends stops waiting.
func TestBatcherCancelled(t *testing.T) {
	r := testenv.NewRedis(t)
	b := redisx.NewBatcher(r.Client, 0)
	t.Cleanup(b.Close)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Do(ctx, redis.NewStatusCmd(ctx, "ping")); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestBatcherClosedUnused: a batcher closed before its first call refuses calls and
// starts no workers.
func TestBatcherClosedUnused(t *testing.T) {
	r := testenv.NewRedis(t)
	b := redisx.NewBatcher(r.Client, 0)
	b.Close()
	ctx := context.Background()
	if err := b.Do(ctx, redis.NewStatusCmd(ctx, "ping")); !errors.Is(err, redisx.ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	b.Close() // no worker to wait for; must not block
}
