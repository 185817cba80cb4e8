package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/parse"
)

// BenchmarkFindByReference: the merchant's first question, "what happened to payment
// X?", among HOOKRELAY_BENCH_EVENTS stored events (default 100,000; the goal is stated
// at 1,000,000), two events per reference_id. Each op is one lookup: the index in
// Redis, then the events read from JetStream. Reports p50/p99/max latency.
//
//	HOOKRELAY_TEST_REDIS_URL=redis://127.0.0.1:6379 HOOKRELAY_BENCH_EVENTS=1000000 \
//	  go test ./deliver -run '^$' -bench FindByReference -benchtime 2000x -timeout 30m
func BenchmarkFindByReference(b *testing.B) {
	total := 100_000
	if v := os.Getenv("HOOKRELAY_BENCH_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		total = n
	}
	ctx := context.Background()
	nt := testenv.NewInProcessNATS(b)
	rd := testenv.NewRedis(b)
	if err := natsx.EnsureStreams(ctx, nt.JS, nt.Topo, natsx.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	index := deliver.NewEventIndex(rd.Client, rkeys.Keyspace{Prefix: rd.Prefix}, 0)
	refs := total / 2
	start := time.Now()
	const chunk = 1000
	amount, currency := "100.00", "PHP"
	entries := make([]deliver.IndexEntry, 0, chunk)
	futs := make([]jetstream.PubAckFuture, 0, chunk)
	for i := 0; i < total; i += chunk {
		entries, futs = entries[:0], futs[:0]
		for j := i; j < min(i+chunk, total); j++ {
			ev := parse.Event{ID: fmt.Sprintf("evt_%026d", j), Type: "payment.succeeded", Provider: "paymaya", Source: "acme-maya",
				Merchant: "acme", ReferenceID: fmt.Sprintf("ref-%d", j%refs), ReceivedAt: parse.Timestamp{Time: time.Now()},
				Payment: parse.Payment{Status: "succeeded", Amount: &amount, Currency: &currency}}
			data, _ := json.Marshal(ev)
			f, err := nt.JS.PublishMsgAsync(&nats.Msg{Subject: nt.Topo.EventSubject("paymaya", "acme-maya", ev.Type), Data: data})
			if err != nil {
				b.Fatal(err)
			}
			futs = append(futs, f)
			entries = append(entries, deliver.IndexEntry{ID: ev.ID, Reference: ev.ReferenceID})
		}
		for k, f := range futs {
			select {
			case ack := <-f.Ok():
				entries[k].Seq, entries[k].At = ack.Sequence, time.Now()
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		for _, err := range index.IndexMany(ctx, entries) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("%d events stored and indexed in %v", total, time.Since(start).Round(time.Millisecond))
	events, err := deliver.NewEvents(ctx, deliver.EventsConfig{JS: nt.JS, Topology: nt.Topo, Index: index})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		ref := fmt.Sprintf("ref-%d", rng.IntN(refs))
		t := time.Now()
		got, _, err := events.Find(ctx, deliver.EventFilter{Reference: ref}, 0, 50)
		lat = append(lat, time.Since(t))
		if err != nil || len(got) != 2 {
			b.Fatalf("Find(%s) = %d events, %v; want 2", ref, len(got), err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(q(0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(q(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}
