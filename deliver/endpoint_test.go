package deliver_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/parse"
)

const testSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

func validEndpoint(id string) deliver.Endpoint {
	return deliver.Endpoint{ID: id, Merchant: "acme", URL: "https://acme.example/hooks", Types: []string{"payment.*"}, Secret: testSecret, Enabled: true}
}

func TestEndpointValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*deliver.Endpoint)
		field  string // the one field named, "" for valid
	}{
		{"valid", func(*deliver.Endpoint) {}, ""},
		{"no types means all", func(e *deliver.Endpoint) { e.Types = nil }, ""},
		{"bad id", func(e *deliver.Endpoint) { e.ID = "Acme Orders" }, "id"},
		{"bad merchant", func(e *deliver.Endpoint) { e.Merchant = "" }, "merchant"},
		{"ftp url", func(e *deliver.Endpoint) { e.URL = "ftp://acme.example/x" }, "url"},
		{"relative url", func(e *deliver.Endpoint) { e.URL = "/hooks" }, "url"},
		{"url with credentials", func(e *deliver.Endpoint) { e.URL = "https://u:p@acme.example/" }, "url"},
		{"bad type filter", func(e *deliver.Endpoint) { e.Types = []string{"payment.*.x"} }, "types[0]"},
		{"bare wildcard", func(e *deliver.Endpoint) { e.Types = []string{"*"} }, "types[0]"},
		{"bad source", func(e *deliver.Endpoint) { e.Sources = []string{"A B"} }, "sources[0]"},
		{"secret without prefix", func(e *deliver.Endpoint) { e.Secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" }, "secret"},
		{"short secret", func(e *deliver.Endpoint) { e.Secret = "whsec_c2hvcnQ=" }, "secret"},
		{"secret not base64", func(e *deliver.Endpoint) { e.Secret = "whsec_!!!!" }, "secret"},
		{"reserved header", func(e *deliver.Endpoint) { e.Headers = map[string]string{"Webhook-Signature": "x"} }, "headers.Webhook-Signature"},
		{"any webhook- header", func(e *deliver.Endpoint) { e.Headers = map[string]string{"Webhook-Foo": "x"} }, "headers.Webhook-Foo"},
		{"custom header ok", func(e *deliver.Endpoint) { e.Headers = map[string]string{"X-Merchant-Key": "x"} }, ""},
		{"in-flight too high", func(e *deliver.Endpoint) { e.MaxInFlight = 5000 }, "max_in_flight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := validEndpoint("acme-orders")
			tc.change(&e)
			err := e.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ie *deliver.InvalidEndpointError
			if !errors.As(err, &ie) || len(ie.Fields) != 1 || ie.Fields[0].Field != tc.field {
				t.Fatalf("Validate() = %v, want one problem with %s", err, tc.field)
			}
		})
	}
}

func TestEndpointMatches(t *testing.T) {
	ev := &parse.Event{Type: "payment.failed", Source: "acme-paytia", Merchant: "acme"}
	for _, tc := range []struct {
		name    string
		types   []string
		sources []string
		merch   string
		want    bool
	}{
		{"all types", nil, nil, "acme", true},
		{"family", []string{"payment.*"}, nil, "acme", true},
		{"exact", []string{"payment.succeeded", "payment.failed"}, nil, "acme", true},
		{"other exact", []string{"payment.succeeded"}, nil, "acme", false},
		{"other family", []string{"refund.*"}, nil, "acme", false},
		{"prefix is not a family", []string{"payment.fail"}, nil, "acme", false},
		{"source allowed", nil, []string{"acme-maya", "acme-paytia"}, "acme", true},
		{"source filtered out", nil, []string{"acme-maya"}, "acme", false},
		{"other merchant", nil, nil, "globex", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := deliver.Endpoint{Merchant: tc.merch, Types: tc.types, Sources: tc.sources}
			if got := e.Matches(ev); got != tc.want {
				t.Errorf("Matches(%s from %s) = %v, want %v", ev.Type, ev.Source, got, tc.want)
			}
		})
	}
}

func openStore(t *testing.T, js jetstream.JetStream, bucket string, c clock.Clock) *deliver.EndpointStore {
	t.Helper()
	s, err := deliver.OpenEndpointStore(context.Background(), js, bucket, 1, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEndpointStore runs on the in-process JetStream and, with
// HOOKRELAY_TEST_NATS_URL, on the real one.
func TestEndpointStore(t *testing.T) {
	n := testenv.NewNATS(t)
	fake := clock.NewFake(time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC))
	s := openStore(t, n.JS, n.Topo.EndpointsBucket(), fake)
	ctx := context.Background()

	created, err := s.Create(ctx, validEndpoint("acme-orders"))
	if err != nil {
		t.Fatal(err)
	}
	if created.MaxInFlight != deliver.DefaultMaxInFlight || !created.CreatedAt.Equal(fake.Now()) {
		t.Errorf("created = %+v, want defaults and times stamped", created)
	}
	if _, err := s.Create(ctx, validEndpoint("acme-orders")); !errors.Is(err, deliver.ErrEndpointExists) {
		t.Errorf("second Create = %v, want ErrEndpointExists", err)
	}
	if _, err := s.Create(ctx, deliver.Endpoint{ID: "bad"}); err == nil {
		t.Error("Create of an invalid endpoint succeeded")
	}
	got, err := s.Get(ctx, "acme-orders")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, got); diff != "" {
		t.Errorf("Get (-created +got):\n%s", diff)
	}
	if _, err := s.Get(ctx, "nobody"); !errors.Is(err, deliver.ErrEndpointNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrEndpointNotFound", err)
	}

	fake.Advance(time.Minute)
	updated, err := s.Update(ctx, "acme-orders", func(e *deliver.Endpoint) error { e.Enabled = false; e.ID = "renamed"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if updated.Enabled || updated.ID != "acme-orders" || !updated.CreatedAt.Equal(created.CreatedAt) || !updated.UpdatedAt.Equal(fake.Now()) {
		t.Errorf("updated = %+v", updated)
	}

	// Optimistic lock: a write that lands between read and write of another wins,
	// the other gets ErrEndpointChanged and stores nothing.
	_, err = s.Update(ctx, "acme-orders", func(e *deliver.Endpoint) error {
		if _, err := s.Update(ctx, "acme-orders", func(e *deliver.Endpoint) error { e.Description = "inner"; return nil }); err != nil {
			t.Fatal(err)
		}
		e.Description = "outer"
		return nil
	})
	if !errors.Is(err, deliver.ErrEndpointChanged) {
		t.Fatalf("racing Update = %v, want ErrEndpointChanged", err)
	}
	if got, _ := s.Get(ctx, "acme-orders"); got.Description != "inner" {
		t.Errorf("description = %q, want the winner's", got.Description)
	}

	if _, err := s.Create(ctx, validEndpoint("acme-audit")); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "acme-audit" || list[1].ID != "acme-orders" {
		t.Fatalf("List = %v, %v", list, err)
	}
	if err := s.Delete(ctx, "acme-audit"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "acme-audit"); !errors.Is(err, deliver.ErrEndpointNotFound) {
		t.Errorf("second Delete = %v, want ErrEndpointNotFound", err)
	}

	// Seed from config: new ones created, stored ones keep their run-time state.
	kept, err := s.Seed(ctx, []deliver.Endpoint{validEndpoint("acme-orders"), validEndpoint("acme-ledger")})
	if err != nil || len(kept) != 1 || kept[0] != "acme-orders" {
		t.Fatalf("Seed = %v, %v", kept, err)
	}
	if got, _ := s.Get(ctx, "acme-orders"); got.Enabled {
		t.Error("Seed re-enabled an endpoint on-call had disabled")
	}
}

// TestEndpointSetFollowsChanges: the live set sees creates, updates and deletes.
func TestEndpointSetFollowsChanges(t *testing.T) {
	n := testenv.NewNATS(t)
	s := openStore(t, n.JS, n.Topo.EndpointsBucket(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Create(ctx, validEndpoint("before")); err != nil {
		t.Fatal(err)
	}
	set, err := s.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev := &parse.Event{Type: "payment.succeeded", Merchant: "acme", Source: "acme-maya"}
	if got := set.Matching(ev); !cmp.Equal(got, []string{"before"}) {
		t.Fatalf("Matching = %v right after Watch, want [before]", got)
	}
	if _, err := s.Create(ctx, validEndpoint("after")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, "before", func(e *deliver.Endpoint) error { e.Types = []string{"payment.failed"}; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { return cmp.Equal(set.Matching(ev), []string{"after"}) })
	if err := s.Delete(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { _, ok := set.Get("after"); return !ok })
}

// TestEndpointsSurviveRestart: the bucket lives in JetStream's file store.
func TestEndpointsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	start := func() (jetstream.JetStream, func()) {
		ns, err := natsx.StartEmbedded(natsx.EmbeddedOptions{StoreDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		nc, err := natsx.ConnectEmbedded(ns)
		if err != nil {
			t.Fatal(err)
		}
		js, _ := jetstream.New(nc)
		return js, func() { nc.Close(); ns.Shutdown(); ns.WaitForShutdown() }
	}
	js, stop := start()
	s := openStore(t, js, "HOOKRELAY_ENDPOINTS", nil)
	want, err := s.Create(context.Background(), validEndpoint("acme-orders"))
	if err != nil {
		t.Fatal(err)
	}
	stop()

	js, stop = start()
	defer stop()
	got, err := openStore(t, js, "HOOKRELAY_ENDPOINTS", nil).Get(context.Background(), "acme-orders")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
}

// eventually waits until cond holds. The bound is generous: it costs nothing when the condition comes true, and CI runs
// every package's tests at once on two cores (TestThousandEvents's fan-out of 1,000
// events once took more than 5s there).
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 20s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEndpointStoreReplicas: the bucket is created with the replicas asked for, like
// the streams: three on a single server is refused by the server (before the fix the
// bucket silently got one copy).
func TestEndpointStoreReplicas(t *testing.T) {
	n := testenv.NewInProcessNATS(t)
	_, err := deliver.OpenEndpointStore(context.Background(), n.JS, n.Topo.EndpointsBucket(), 3, nil)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "replicas") {
		t.Fatalf("OpenEndpointStore(replicas 3) on one server = %v, want the server's replicas error", err)
	}
	if _, err := deliver.OpenEndpointStore(context.Background(), n.JS, n.Topo.EndpointsBucket(), 1, nil); err != nil {
		t.Fatalf("OpenEndpointStore(replicas 1) = %v", err)
	}
}
