package deliver_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// stallingLink is a TCP proxy to addr whose server-to-client direction can be held:
// while held, what the server sends waits in the proxy (nothing is lost), as over a
// link that stalls. It returns the proxy's address and hold.
func stallingLink(t *testing.T, addr string) (string, func(held bool)) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	held := false
	var conns []net.Conn // closed at cleanup (registered here: not from another goroutine)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		held = false
		cond.Broadcast()
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
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			go func() { _, _ = io.Copy(s, c) }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					mu.Lock()
					for held {
						cond.Wait()
					}
					mu.Unlock()
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						c.Close()
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func(h bool) {
		mu.Lock()
		held = h
		mu.Unlock()
		cond.Broadcast()
	}
}

// TestWorkerPullsAgainAfterMissedHeartbeats: when the worker's pull for jobs misses its
// heartbeats (a stalled link here; a pull request the server dropped does the same,
// as nats-server 2.9 does under load), the endpoint's loop pulls again and later jobs
// are delivered. The loop used to end on any error from the iterator, so the endpoint
// got nothing more until a restart.
func TestWorkerPullsAgainAfterMissedHeartbeats(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	var hold func(bool)
	p := newPipeline(t, pipelineOpts{
		pullExpiry: time.Second, // heartbeats every 500 ms: two missed within about a second
		log:        zap.New(core),
		workerJS: func(real jetstream.JetStream) jetstream.JetStream {
			u, err := url.Parse(real.Conn().ConnectedUrl())
			if err != nil {
				t.Fatal(err)
			}
			var link string
			link, hold = stallingLink(t, u.Host)
			nc, err := nats.Connect("nats://" + link)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			return js
		},
	})
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_before", "payment.succeeded")
	eventually(t, func() bool { return len(m.got()) == 1 })

	hold(true)
	eventually(t, func() bool { return logs.FilterMessage("endpoint consumer interrupted; pulling again").Len() > 0 })
	hold(false)

	p.publish("evt_after", "payment.succeeded")
	eventually(t, func() bool { return len(m.got()) == 2 })
	if got := m.got(); got[0].webhookID == got[1].webhookID {
		t.Errorf("both POSTs carry webhook-id %s, want one per event", got[0].webhookID)
	}
	if n := logs.FilterMessage("endpoint consumer stopped by the server; starting it again").Len(); n != 0 {
		t.Errorf("the endpoint's loop ended %d times; it should have pulled again", n)
	}
}

// TestConsumersDeletedUnderPipeline: the fan-out's and an endpoint's durable consumers
// deleted while the pipeline runs (by hand, say) are created again, and the next event
// is delivered without a restart; the event delivered before is not sent again.
// Before, fan-out waited forever on a closed consumption and the endpoint's loop ended
// for good.
func TestConsumersDeletedUnderPipeline(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	p := newPipeline(t, pipelineOpts{log: zap.New(core), pullExpiry: time.Second})
	m := newMerchant(t, func(int, string) int { return 200 })
	p.addEndpoint("acme-orders", m, nil)
	p.publish("evt_before", "payment.succeeded")
	eventually(t, func() bool { return len(m.got()) == 1 })

	for _, c := range []struct{ stream, name string }{
		{p.nats.Topo.EventsStream(), "hookrelay-fanout"},
		{p.nats.Topo.DeliveriesStream(), "hookrelay-deliver-acme-orders"},
	} {
		if err := p.nats.JS.DeleteConsumer(p.ctx, c.stream, c.name); err != nil {
			t.Fatalf("delete consumer %s: %v", c.name, err)
		}
	}
	eventually(t, func() bool {
		return logs.FilterMessage("event consumer stopped by the server; creating it again").Len() > 0 &&
			logs.FilterMessage("endpoint consumer stopped by the server; starting it again").Len() > 0
	})
	p.publish("evt_after", "payment.succeeded")
	eventually(t, func() bool { return len(m.got()) >= 2 })
	got := m.got()
	if len(got) != 2 || got[0].webhookID == got[1].webhookID {
		t.Errorf("merchant got %d POSTs (%s, %s), want one for each of the two events", len(got), got[0].webhookID, got[len(got)-1].webhookID)
	}
}
