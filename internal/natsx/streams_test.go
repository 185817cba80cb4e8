package natsx_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/testenv"
)

// TestEnsureStreams: the four streams of SPEC §4 with their kinds, and start-up run
// again (as every replica does) updates them instead of failing.
func TestEnsureStreams(t *testing.T) {
	n := testenv.NewNATS(t)
	ctx := context.Background()
	if err := natsx.EnsureStreams(ctx, n.JS, n.Topo, natsx.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := natsx.EnsureStreams(ctx, n.JS, n.Topo, natsx.StreamConfig{DuplicateWindow: time.Minute}); err != nil {
		t.Fatalf("second start-up: %v", err)
	}
	for _, tc := range []struct {
		name      string
		subject   string
		retention jetstream.RetentionPolicy
		maxAge    time.Duration
	}{
		{n.Topo.EventsStream(), n.Topo.EventSubject("paymaya", "s", "payment.succeeded"), jetstream.LimitsPolicy, 30 * 24 * time.Hour},
		{n.Topo.DeliveriesStream(), n.Topo.DeliverySubject("e"), jetstream.WorkQueuePolicy, 0},
		{n.Topo.DeadStream(), n.Topo.DeadSubject("e"), jetstream.LimitsPolicy, 90 * 24 * time.Hour},
		{n.Topo.RejectedStream(), n.Topo.RejectedSubject("paytia", "s"), jetstream.LimitsPolicy, 90 * 24 * time.Hour},
	} {
		s, err := n.JS.Stream(ctx, tc.name)
		if err != nil {
			t.Fatalf("stream %s: %v", tc.name, err)
		}
		c := s.CachedInfo().Config
		if c.Retention != tc.retention || c.Storage != jetstream.FileStorage || c.MaxAge != tc.maxAge {
			t.Errorf("%s: retention %v storage %v max age %v", tc.name, c.Retention, c.Storage, c.MaxAge)
		}
		if c.Duplicates != time.Minute {
			t.Errorf("%s: duplicate window %v, want the updated 1m", tc.name, c.Duplicates)
		}
		ack, err := n.JS.Publish(ctx, tc.subject, []byte("x"))
		if err != nil || ack.Stream != tc.name {
			t.Errorf("publish to %s = %+v, %v; want stored in %s", tc.subject, ack, err, tc.name)
		}
	}
}

func TestDefaultTopologyIsTheContract(t *testing.T) {
	var topo natsx.Topology
	if got := topo.EventSubject("paymaya", "acme-maya", "payment.succeeded"); got != "hookrelay.events.paymaya.acme-maya.payment.succeeded" {
		t.Errorf("EventSubject = %s", got)
	}
	if got := topo.RejectedSubject("paytia", "acme-paytia"); got != "hookrelay.rejected.paytia.acme-paytia" {
		t.Errorf("RejectedSubject = %s", got)
	}
	want := []string{"HOOKRELAY_EVENTS", "HOOKRELAY_DELIVERIES", "HOOKRELAY_DEAD", "HOOKRELAY_REJECTED", "KV_HOOKRELAY_ENDPOINTS"}
	for i, s := range topo.Streams() {
		if s != want[i] {
			t.Errorf("Streams()[%d] = %s, want %s", i, s, want[i])
		}
	}
}

// failingCreates fails the first n stream creates with a server-side or client-side
// API error, then passes calls to the real JetStream.
type failingCreates struct {
	jetstream.JetStream
	fail  int
	err   *jetstream.APIError
	calls int
}

func (f *failingCreates) CreateOrUpdateStream(ctx context.Context, c jetstream.StreamConfig) (jetstream.Stream, error) {
	f.calls++
	if f.calls <= f.fail {
		return nil, f.err
	}
	return f.JetStream.CreateOrUpdateStream(ctx, c)
}

// TestEnsureStreamsRetriesServerErrors: a 500 from the stream-create API (seen in CI
// from a standalone nats-server 2.9: "error creating store for stream") is retried and
// the streams are made; a 400 (a configuration the server refuses) is not retried.
func TestEnsureStreamsRetriesServerErrors(t *testing.T) {
	n := testenv.NewNATS(t)
	ctx := context.Background()

	storeFailed := &jetstream.APIError{Code: 500, ErrorCode: 10049, Description: "error creating store for stream"}
	js := &failingCreates{JetStream: n.JS, fail: 2, err: storeFailed}
	if err := natsx.EnsureStreams(ctx, js, n.Topo, natsx.StreamConfig{}); err != nil {
		t.Fatalf("EnsureStreams after two 500s: %v", err)
	}
	streams := natsx.StreamConfigs(n.Topo, natsx.StreamConfig{})
	if want := 2 + len(streams); js.calls != want {
		t.Errorf("%d creates, want %d (two failures, then one per stream)", js.calls, want)
	}
	for _, s := range streams {
		if _, err := n.JS.Stream(ctx, s.Name); err != nil {
			t.Errorf("stream %s: %v", s.Name, err)
		}
	}

	overlap := &jetstream.APIError{Code: 400, ErrorCode: 10065, Description: "subjects overlap with an existing stream"}
	js = &failingCreates{JetStream: n.JS, fail: 1, err: overlap}
	err := natsx.EnsureStreams(ctx, js, n.Topo, natsx.StreamConfig{})
	if !errors.Is(err, overlap) || js.calls != 1 {
		t.Errorf("400: err %v after %d calls; want the API error after 1", err, js.calls)
	}

	js = &failingCreates{JetStream: n.JS, fail: 1 << 30, err: storeFailed}
	if err := natsx.EnsureStreams(ctx, js, n.Topo, natsx.StreamConfig{}); !errors.Is(err, storeFailed) {
		t.Errorf("500 every time: err %v; want the API error", err)
	}
	if js.calls != 6 {
		t.Errorf("500 every time: %d calls, want 6 (one and five retries)", js.calls)
	}
}
