package ingest_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
)

const successBody = `{"id":"5f1e1df5-b58f-481b-89cb-8dd41afcf771","status":"PAYMENT_SUCCESS","amount":"100","currency":"PHP","updatedAt":"2018-09-26T08:39:17Z","requestReferenceNumber":"6319921"}`

func paymentBody(i int) string {
	return `{"id":"pay-` + strconv.Itoa(i) + `","status":"PAYMENT_SUCCESS","amount":"100","currency":"PHP","updatedAt":"2018-09-26T08:39:17Z","requestReferenceNumber":"r-` + strconv.Itoa(i) + `"}`
}

// TestDuplicateAfterWindow: once JetStream's duplicate window has passed, a provider
// retry is still answered as a duplicate, through the Redis seen marker, and stores
// nothing new. Within the window, JetStream alone dedupes even without the marker.
func TestDuplicateAfterWindow(t *testing.T) {
	const window = 300 * time.Millisecond
	h := newHarness(t, withStreams(natsx.StreamConfig{DuplicateWindow: window}))
	first := accepted(t, h.do(maya(successBody)))
	subject := h.nats.Topo.EventSubject("paymaya", "acme-maya", "payment.succeeded")

	t.Run("within the window without the marker", func(t *testing.T) {
		// Lose the marker (as if the process died between PubAck and SET).
		if err := h.redis.Client.Del(context.Background(), rkeys.Keyspace{Prefix: h.redis.Prefix}.Seen(first.ID)).Err(); err != nil {
			t.Fatal(err)
		}
		again := accepted(t, h.do(maya(successBody)))
		if again.ID != first.ID || !again.Duplicate {
			t.Fatalf("retry = %+v, want duplicate of %s", again, first.ID)
		}
	})

	t.Run("after the window through the marker", func(t *testing.T) {
		// Prove the window really passed: a probe id JetStream forgets.
		probe := h.nats.Topo.EventSubject("paymaya", "probe", "payment.updated")
		publishProbe := func() *jetstream.PubAck {
			ack, err := h.nats.JS.Publish(context.Background(), probe, []byte("{}"), jetstream.WithMsgID("probe"))
			if err != nil {
				t.Fatal(err)
			}
			return ack
		}
		publishProbe()
		deadline := time.Now().Add(15 * time.Second)
		for publishProbe().Duplicate {
			if time.Now().After(deadline) {
				t.Fatal("JetStream never forgot the probe id")
			}
			time.Sleep(window / 3)
		}
		again := accepted(t, h.do(maya(successBody)))
		if again.ID != first.ID || !again.Duplicate {
			t.Fatalf("retry after the window = %+v, want duplicate of %s", again, first.ID)
		}
		if n := h.subjectMsgs(h.nats.Topo.EventsStream(), subject); n != 1 {
			t.Fatalf("%d messages on %s, want 1", n, subject)
		}
	})
}

// TestStorageUnavailable: whenever JetStream does not confirm, the provider gets 503 with
// Retry-After, no seen marker is written, and its retry later succeeds with the same id.
func TestStorageUnavailable(t *testing.T) {
	t.Run("stalled", func(t *testing.T) {
		var stall atomic.Bool
		stall.Store(true)
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		h := newHarness(t,
			withConfig(func(c *ingest.Config) { c.PublishTimeout = 100 * time.Millisecond }),
			withPublisher(func(real jetstream.JetStream) ingest.Publisher {
				return publisherFunc(func(ctx context.Context, m *nats.Msg, o ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
					if stall.Load() {
						<-release // no PubAck while the test runs
						return nil, errors.New("injected: stalled")
					}
					return real.PublishMsg(ctx, m, o...)
				})
			}))
		resp := h.do(maya(successBody))
		refused(t, resp, http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
		if ra := resp.Header.Get("Retry-After"); ra == "" {
			t.Error("503 without Retry-After")
		}
		if n := h.streamMsgs(h.nats.Topo.EventsStream()); n != 0 {
			t.Errorf("events stream holds %d, want 0", n)
		}
		if n, _ := h.redis.Client.DBSize(context.Background()).Result(); h.redis.Mini != nil && n != 0 {
			t.Errorf("redis holds %d keys after a failed publish, want 0", n)
		}
		stall.Store(false)
		r := accepted(t, h.do(maya(successBody)))
		if r.Duplicate {
			t.Errorf("first stored attempt answered duplicate")
		}
	})

	t.Run("stopped", func(t *testing.T) {
		h := newHarness(t, withInProcessNATS(),
			withConfig(func(c *ingest.Config) { c.PublishTimeout = 300 * time.Millisecond }))
		h.nats.Server.Shutdown()
		h.nats.Server.WaitForShutdown()
		for _, req := range []request{maya(successBody), paytia("success=1&reference_id=r-1")} {
			refused(t, h.do(req), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
		}
		// A bad body cannot be kept either, so it is not answered 400 (which the
		// provider would not retry) but 503.
		refused(t, h.do(paytia("success=1")), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
	})

	t.Run("ack after the timeout", func(t *testing.T) {
		// The PubAck arrives after the request gave up (503): the event is stored, so
		// it still gets its seen marker, and the retry is a duplicate.
		h := newHarness(t,
			withConfig(func(c *ingest.Config) { c.PublishTimeout = 100 * time.Millisecond }),
			withPublisher(func(real jetstream.JetStream) ingest.Publisher {
				return publisherFunc(func(ctx context.Context, m *nats.Msg, o ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
					time.Sleep(400 * time.Millisecond)
					return real.PublishMsg(ctx, m, o...)
				})
			}))
		refused(t, h.do(maya(successBody)), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
		h.waitSeenMarkers(1, "after the late PubAck")
		if n := h.streamMsgs(h.nats.Topo.EventsStream()); n != 1 {
			t.Errorf("events stream holds %d, want 1", n)
		}
	})

	t.Run("rejected body acked after the timeout", func(t *testing.T) {
		// A kept bad body whose PubAck comes late: it is stored, and no seen marker is
		// made for it (markers are for events; a "rej_" id is not one).
		h := newHarness(t,
			withConfig(func(c *ingest.Config) { c.PublishTimeout = 100 * time.Millisecond }),
			withPublisher(func(real jetstream.JetStream) ingest.Publisher {
				return publisherFunc(func(ctx context.Context, m *nats.Msg, o ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
					time.Sleep(400 * time.Millisecond)
					return real.PublishMsg(ctx, m, o...)
				})
			}))
		refused(t, h.do(paytia("success=1")), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
		deadline := time.Now().Add(5 * time.Second)
		for h.streamMsgs(h.nats.Topo.RejectedStream()) != 1 {
			if time.Now().After(deadline) {
				t.Fatal("the late rejected body was never stored")
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // a marker would be written right after the PubAck
		if keys, err := h.redis.Client.Keys(context.Background(), h.redis.Prefix+"*:seen").Result(); err != nil || len(keys) != 0 {
			t.Errorf("seen markers %v, %v; want none for a rejected body", keys, err)
		}
	})

	t.Run("ack lost after the store", func(t *testing.T) {
		var lose atomic.Bool
		lose.Store(true)
		h := newHarness(t, withPublisher(func(real jetstream.JetStream) ingest.Publisher {
			return publisherFunc(func(ctx context.Context, m *nats.Msg, o ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
				ack, err := real.PublishMsg(ctx, m, o...)
				if lose.Load() {
					return nil, errors.New("injected: PubAck lost in transit")
				}
				return ack, err
			})
		}))
		refused(t, h.do(maya(successBody)), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
		lose.Store(false)
		r := accepted(t, h.do(maya(successBody)))
		if !r.Duplicate {
			t.Errorf("retry after a lost ack = %+v, want duplicate (the first attempt was stored)", r)
		}
		if n := h.streamMsgs(h.nats.Topo.EventsStream()); n != 1 {
			t.Errorf("events stream holds %d, want 1", n)
		}
	})
}

// TestNoSuccessWithoutPubAck: with JetStream failing at random before or after storing,
// every 200 stands for a message in the stream, and every 503'd callback is stored
// once the provider retries.
func TestNoSuccessWithoutPubAck(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var faulty atomic.Bool
	faulty.Store(true)
	h := newHarness(t, withPublisher(func(real jetstream.JetStream) ingest.Publisher {
		return publisherFunc(func(ctx context.Context, m *nats.Msg, o ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
			if !faulty.Load() {
				return real.PublishMsg(ctx, m, o...)
			}
			switch rng.IntN(3) {
			case 0:
				return nil, errors.New("injected: fails before the store")
			case 1:
				_, _ = real.PublishMsg(ctx, m, o...)
				return nil, errors.New("injected: fails after the store")
			}
			return real.PublishMsg(ctx, m, o...)
		})
	}))
	const n = 60
	ok := map[string]bool{}
	var failed []int
	for i := range n {
		resp := h.do(maya(paymentBody(i)))
		if resp.StatusCode == http.StatusOK {
			ok[accepted(t, resp).ID] = true
			continue
		}
		refused(t, resp, http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
		failed = append(failed, i)
	}
	if len(ok) == 0 || len(failed) == 0 {
		t.Fatalf("fault injection did not mix outcomes: %d ok, %d failed", len(ok), len(failed))
	}
	stored := h.storedIDs()
	for id := range ok {
		if !stored[id] {
			t.Errorf("answered 200 for %s, which is not in the stream", id)
		}
	}
	faulty.Store(false)
	for _, i := range failed {
		accepted(t, h.do(maya(paymentBody(i))))
	}
	if got := len(h.storedIDs()); got != n {
		t.Errorf("after retries the stream holds %d distinct events, want %d", got, n)
	}
	if got := h.streamMsgs(h.nats.Topo.EventsStream()); got != n {
		t.Errorf("after retries the stream holds %d messages, want %d (no duplicates)", got, n)
	}
}

// storedIDs reads every event id in the events stream.
func (h *harness) storedIDs() map[string]bool {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.nats.JS.Stream(ctx, h.nats.Topo.EventsStream())
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	ids := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		ids[m.Header.Get("Nats-Msg-Id")] = true
	}
	return ids
}

// TestRedisDown: the seen marker is an optimisation; with Redis unreachable callbacks
// are still stored and answered, and JetStream's window still dedupes retries.
func TestRedisDown(t *testing.T) {
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { dead.Close() })
	marker := ingest.NewRedisMarker(dead, rkeys.Keyspace{})
	t.Cleanup(marker.Close)
	h := newHarness(t, withMarker(marker))
	first := accepted(t, h.do(maya(successBody)))
	again := accepted(t, h.do(maya(successBody)))
	if first.Duplicate || !again.Duplicate || again.ID != first.ID {
		t.Fatalf("answers %+v then %+v, want new then duplicate", first, again)
	}
	if n := h.streamMsgs(h.nats.Topo.EventsStream()); n != 1 {
		t.Errorf("events stream holds %d, want 1", n)
	}
}
