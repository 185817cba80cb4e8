// Package testenv gives tests a JetStream and a Redis: in-process ones (nats-server/v2
// with a t.TempDir() store, miniredis) by default, the real servers named by
// HOOKRELAY_TEST_NATS_URL / HOOKRELAY_TEST_REDIS_URL when those are set. On a shared
// server every test gets its own stream names, subjects and key prefix, and removes
// them when it ends.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/natsx"
)

// Environment variables naming real servers for the shared suites.
const (
	EnvNATS  = "HOOKRELAY_TEST_NATS_URL"
	EnvRedis = "HOOKRELAY_TEST_REDIS_URL"
)

// NATS is a JetStream for one test.
type NATS struct {
	URL    string
	Conn   *nats.Conn
	JS     jetstream.JetStream
	Topo   natsx.Topology
	Server *server.Server // the in-process server; nil on a real one
}

// NewNATS returns a JetStream for t: the real one when HOOKRELAY_TEST_NATS_URL is set,
// else a fresh in-process server. Streams are not created; see natsx.EnsureStreams.
func NewNATS(t testing.TB) *NATS {
	t.Helper()
	if url := os.Getenv(EnvNATS); url != "" {
		id := uniqueID()
		n := connect(t, url)
		n.Topo = natsx.Topology{StreamPrefix: "T" + strings.ToUpper(id) + "_", SubjectPrefix: "t" + id + "."}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, s := range n.Topo.Streams() {
				_ = n.JS.DeleteStream(ctx, s)
			}
		})
		return n
	}
	return NewInProcessNATS(t)
}

// NewInProcessNATS always starts an in-process server (for tests that stop or
// restart it). It listens on a random loopback port.
func NewInProcessNATS(t testing.TB) *NATS {
	t.Helper()
	ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: t.TempDir(), Listen: true, Port: -1})
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(ns.Shutdown)
	n := connect(t, ns.ClientURL())
	n.Server = ns
	return n
}

func connect(t testing.TB, url string) *NATS {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("hookrelay-test"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect nats %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := natsx.NewJetStream(nc, 5*time.Second, natsx.DefaultMaxPendingAcks)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return &NATS{URL: url, Conn: nc, JS: js}
}

// Redis is a Redis for one test.
type Redis struct {
	Client *redis.Client
	Prefix string               // key prefix unique to this test, ends in ':'
	Mini   *miniredis.Miniredis // nil on a real server
}

// NewRedis returns a Redis for t: the real one when HOOKRELAY_TEST_REDIS_URL is set
// (keys under a prefix of the test's own, deleted at the end), else miniredis.
func NewRedis(t testing.TB) *Redis {
	t.Helper()
	prefix := "hookrelay-test-" + uniqueID() + ":"
	if url := os.Getenv(EnvRedis); url != "" {
		opt, err := redis.ParseURL(url)
		if err != nil {
			t.Fatalf("parse %s: %v", EnvRedis, err)
		}
		c := redis.NewClient(opt)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// One pipelined UNLINK per scanned page, not a round trip per key: a
			// benchmark can leave a million keys behind.
			var cursor uint64
			for {
				keys, next, err := c.Scan(ctx, cursor, prefix+"*", 5000).Result()
				if err != nil {
					break
				}
				if len(keys) > 0 {
					c.Unlink(ctx, keys...)
				}
				if cursor = next; cursor == 0 {
					break
				}
			}
			_ = c.Close()
		})
		if err := c.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("ping redis %s: %v", url, err)
		}
		return &Redis{Client: c, Prefix: prefix}
	}
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = c.Close() })
	return &Redis{Client: c, Prefix: prefix, Mini: mr}
}

func uniqueID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
