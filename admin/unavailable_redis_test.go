package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/apierr"
)

// silentServer accepts connections and never answers: a Redis too slow for the pool.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	return ln.Addr().String()
}

// TestRedisUnavailableIs503: the failures a real go-redis client returns while Redis
// is restarting (LOADING as it reads its AOF), too slow for the pool, or closed under
// a request at shutdown answer 503 ADMIN_UNAVAILABLE ("retry"), wrapped as the stores
// wrap them; a Redis error that is a bug (WRONGTYPE) stays a 500.
func TestRedisUnavailableIs503(t *testing.T) {
	ctx := context.Background()
	answering := func(reply string) *redis.Client {
		mr := miniredis.RunT(t)
		mr.SetError(reply) // every command answers this error
		c := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c
	}
	loading := answering("LOADING Redis is loading the dataset in memory").Get(ctx, "k").Err()
	wrongType := answering("WRONGTYPE Operation against a key holding the wrong kind of value").Get(ctx, "k").Err()

	slow := redis.NewClient(&redis.Options{Addr: silentServer(t), PoolSize: 1, PoolTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { slow.Close() })
	go slow.Get(ctx, "held") // holds the one connection: the server never answers
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if st := slow.PoolStats(); st.TotalConns == 1 && st.IdleConns == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the held command never took the connection")
		}
	}
	poolTimeout := slow.Get(ctx, "k").Err()
	if !errors.Is(poolTimeout, redis.ErrPoolTimeout) {
		t.Fatalf("second command on a full pool: %v, want %v", poolTimeout, redis.ErrPoolTimeout)
	}
	closedClient := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	closedClient.Close()
	closed := closedClient.Get(ctx, "k").Err()

	for _, tc := range []struct {
		name string
		err  error
		want apierr.Code
	}{
		{"loading", loading, apierr.AdminUnavailable},
		{"pool timeout", poolTimeout, apierr.AdminUnavailable},
		{"client closed", closed, apierr.AdminUnavailable},
		{"wrong type", wrongType, apierr.Internal},
	} {
		if tc.err == nil {
			t.Fatalf("%s: the client returned no error", tc.name)
		}
		if got := internal("read dead letters", fmt.Errorf("count: %w", tc.err)); got.Code != tc.want {
			t.Errorf("%s (%v): internal() = %s, want %s", tc.name, tc.err, got.Code, tc.want)
		}
	}
}
