package ingest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// withSlowNATS publishes through the real nats.go client over a link that delivers
// everything the server sends delay late (a PubAck then comes delay after the message
// was stored), with the JetStream context serve uses (ingest.NewJetStream) for a
// 100 ms PublishTimeout.
func withSlowNATS(t *testing.T, delay time.Duration) []option {
	return []option{
		withConfig(func(c *ingest.Config) { c.PublishTimeout = 100 * time.Millisecond }),
		withPublisher(func(real jetstream.JetStream) ingest.Publisher {
			server := strings.TrimPrefix(real.Conn().ConnectedUrl(), "nats://")
			nc, err := nats.Connect("nats://"+testenv.NewLink(t, server, delay).Addr, nats.Timeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			js, err := ingest.NewJetStream(nc, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			return js
		}),
	}
}

// TestLatePubAckRealClient: the late-PubAck path through the real nats.go client, whose
// asynchronous publish timeout drops a PubAck that comes after it. With the JetStream
// context ingest.NewJetStream makes (as serve uses), a PubAck 400 ms late for a
// 100 ms PublishTimeout still marks the event seen after the 503, so the provider's
// retry is a duplicate even past JetStream's duplicate window. (With a context whose
// async timeout is the publish timeout, as serve used to build, the marker never came.)
func TestLatePubAckRealClient(t *testing.T) {
	h := newHarness(t, withSlowNATS(t, 400*time.Millisecond)...)
	refused(t, h.do(maya(successBody)), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")
	h.waitSeenMarkers(1, "after the late PubAck")
	if n := h.streamMsgs(h.nats.Topo.EventsStream()); n != 1 {
		t.Errorf("events stream holds %d, want 1", n)
	}
}

// TestWaitLateAcks: a shutdown's WaitLateAcks returns only once a PubAck that came
// after its request gave up has marked the event seen, so the marker can be closed
// after it; with a context that ends first, it says how many are still waiting.
func TestWaitLateAcks(t *testing.T) {
	h := newHarness(t, withSlowNATS(t, 600*time.Millisecond)...)
	refused(t, h.do(maya(successBody)), http.StatusServiceUnavailable, "INGEST_STORAGE_UNAVAILABLE")

	waitLateAcks(t, h, "the PubAck is 600 ms late")
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

	waitLateAcks(t, h, "during the store")
	accepted(t, <-answered)
}

// waitLateAcks checks a shutdown's wait for one event still to be marked seen: a
// 50 ms wait ends with it still waiting (why says why), a 10 s one ends with none
// waiting and its seen marker written.
func waitLateAcks(t *testing.T, h *harness, why string) {
	t.Helper()
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := h.handler.WaitLateAcks(short); n != 1 {
		t.Errorf("WaitLateAcks(50ms) = %d still waiting, want 1 (%s)", n, why)
	}
	long, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if n := h.handler.WaitLateAcks(long); n != 0 {
		t.Fatalf("WaitLateAcks(10s) = %d still waiting, want 0", n)
	}
	if keys := h.seenMarkers(); len(keys) != 1 {
		t.Errorf("seen markers right after WaitLateAcks: %v, want 1", keys)
	}
}
