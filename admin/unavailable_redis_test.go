package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/apierr"
)

// fakeRedis is a TCP server that answers every read with reply, or never answers
// when reply is empty; it returns its address.
func fakeRedis(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if reply == "" {
						continue
					}
					// One reply per command: each starts a line with its '*' array header.
					for i := range n {
						if buf[i] == '*' && (i == 0 || buf[i-1] == '\n') {
							if _, err := c.Write([]byte(reply)); err != nil {
								return
							}
						}
					}
				}
			}()
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
		c := redis.NewClient(&redis.Options{Addr: fakeRedis(t, reply), MaxRetries: -1})
		t.Cleanup(func() { c.Close() })
		return c
	}
	loading := answering("-LOADING Redis is loading the dataset in memory\r\n").Get(ctx, "k").Err()
	wrongType := answering("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n").Get(ctx, "k").Err()

	slow := redis.NewClient(&redis.Options{Addr: fakeRedis(t, ""), PoolSize: 1, PoolTimeout: 50 * time.Millisecond, MaxRetries: -1})
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
	closedClient := redis.NewClient(&redis.Options{Addr: fakeRedis(t, "+OK\r\n")})
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
