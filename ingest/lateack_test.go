package ingest_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/ingest"
)

// slowLink is a TCP proxy to addr that delays every byte from the server to the client
// by delay (the client's bytes go through at once), as a congested or distant NATS
// would: a PubAck then reaches the client delay after the message was stored.
func slowLink(t *testing.T, addr string, delay time.Duration) string {
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
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); s.Close() })
			go func() { _, _ = io.Copy(s, c) }()
			type chunk struct {
				at time.Time
				b  []byte
			}
			q := make(chan chunk, 1024)
			go func() {
				defer close(q)
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						q <- chunk{time.Now().Add(delay), append([]byte(nil), buf[:n]...)}
					}
					if err != nil {
						return
					}
				}
			}()
			go func() {
				for ch := range q {
					time.Sleep(time.Until(ch.at))
					if _, err := c.Write(ch.b); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestLatePubAckRealClient: the late-PubAck path through the real nats.go client, whose
// asynchronous publish timeout drops a PubAck that comes after it. With the JetStream
// context ingest.NewJetStream makes (as serve uses), a PubAck 400 ms late for a
// 100 ms PublishTimeout still marks the event seen after the 503, so the provider's
// retry is a duplicate even past JetStream's duplicate window. (With a context whose
// async timeout is the publish timeout, as serve used to build, the marker never came.)
func TestLatePubAckRealClient(t *testing.T) {
	h := newHarness(t,
		withConfig(func(c *ingest.Config) { c.PublishTimeout = 100 * time.Millisecond }),
		withPublisher(func(real jetstream.JetStream) ingest.Publisher {
			server := strings.TrimPrefix(real.Conn().ConnectedUrl(), "nats://")
			nc, err := nats.Connect("nats://"+slowLink(t, server, 400*time.Millisecond), nats.Timeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := ingest.NewJetStream(nc, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			return js
		}))
	refused(t, h.do(maya(successBody)), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
	deadline := time.Now().Add(5 * time.Second)
	for {
		keys, err := h.redis.Client.Keys(context.Background(), h.redis.Prefix+"*:seen").Result()
		if err == nil && len(keys) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no seen marker after the late PubAck (keys %v, %v)", keys, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.streamMsgs(h.nats.Topo.EventsStream()); n != 1 {
		t.Errorf("events stream holds %d, want 1", n)
	}
}

// TestWaitLateAcks: a shutdown's WaitLateAcks returns only once a PubAck that came
// after its request gave up has marked the event seen, so the marker can be closed
// after it; with a context that ends first, it says how many are still waiting.
func TestWaitLateAcks(t *testing.T) {
	h := newHarness(t,
		withConfig(func(c *ingest.Config) { c.PublishTimeout = 100 * time.Millisecond }),
		withPublisher(func(real jetstream.JetStream) ingest.Publisher {
			server := strings.TrimPrefix(real.Conn().ConnectedUrl(), "nats://")
			nc, err := nats.Connect("nats://"+slowLink(t, server, 600*time.Millisecond), nats.Timeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := ingest.NewJetStream(nc, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			return js
		}))
	seenKeys := func() int {
		t.Helper()
		keys, err := h.redis.Client.Keys(context.Background(), h.redis.Prefix+"*:seen").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	refused(t, h.do(maya(successBody)), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := h.handler.WaitLateAcks(short); n != 1 {
		t.Errorf("WaitLateAcks(50ms) = %d still waiting, want 1 (the PubAck is 600 ms late)", n)
	}
	long, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if n := h.handler.WaitLateAcks(long); n != 0 {
		t.Fatalf("WaitLateAcks(10s) = %d still waiting, want 0", n)
	}
	if n := seenKeys(); n != 1 {
		t.Errorf("%d seen markers right after WaitLateAcks, want 1", n)
	}
}

// TestWaitLateAcksCoversStoresInFlight: a request still storing its event when a
// shutdown waits (its listener's drain was cut short) is waited for too, so its seen
// marker is written before the marker closes.
func TestWaitLateAcksCoversStoresInFlight(t *testing.T) {
	publishing := make(chan struct{}, 1)
	h := newHarness(t, withPublisher(func(real jetstream.JetStream) ingest.Publisher {
		return publisherFunc(func(ctx context.Context, m *nats.Msg, o ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
			publishing <- struct{}{}
			time.Sleep(500 * time.Millisecond) // a slow store, well within PublishTimeout
			return real.PublishMsg(ctx, m, o...)
		})
	}))
	answered := make(chan *http.Response, 1)
	go func() { answered <- h.do(maya(successBody)) }()
	<-publishing

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := h.handler.WaitLateAcks(short); n != 1 {
		t.Errorf("WaitLateAcks(50ms) during the store = %d still waiting, want 1", n)
	}
	long, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if n := h.handler.WaitLateAcks(long); n != 0 {
		t.Fatalf("WaitLateAcks(10s) = %d still waiting, want 0", n)
	}
	keys, err := h.redis.Client.Keys(context.Background(), h.redis.Prefix+"*:seen").Result()
	if err != nil || len(keys) != 1 {
		t.Errorf("seen markers right after WaitLateAcks: %v, %v; want 1", keys, err)
	}
	accepted(t, <-answered)
}
