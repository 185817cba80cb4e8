package admin_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/internal/natsx"
)

// TestReadyz: /readyz answers 503 naming NATS while its server is down and Redis while
// it is down, and 200 again once each is back; /healthz stays 200 throughout.
func TestReadyz(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	opts := natsx.EmbeddedOptions{StoreDir: dir, Listen: true, Host: "127.0.0.1", Port: port}
	ns, err := natsx.StartEmbedded(opts)
	must(t, err)
	t.Cleanup(func() { ns.Shutdown() })
	nc, err := nats.Connect(ns.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	must(t, err)
	t.Cleanup(nc.Close)
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })

	e := newEnvWith(t, func(c *admin.Config) { c.Ready = admin.Readiness(nc, rdb) })
	ready := func(wantStatus int, wantIn string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			a := e.doAs("", "GET", "/readyz", nil)
			if a.status == wantStatus && strings.Contains(string(a.body), wantIn) {
				if h := e.doAs("", "GET", "/healthz", nil); h.status != 200 {
					t.Fatalf("/healthz = %d", h.status)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz = %d %s; want %d with %q", a.status, a.body, wantStatus, wantIn)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	ready(200, "ready")

	ns.Shutdown()
	ready(503, "nats")
	ns, err = natsx.StartEmbedded(opts)
	must(t, err)
	ready(200, "ready")

	mr.Close()
	ready(503, "redis")
	must(t, mr.Restart())
	ready(200, "ready")
}
