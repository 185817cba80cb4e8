package deliver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/metrics"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
	"github.com/hookrelay/hookrelay/internal/testenv"
	"github.com/hookrelay/hookrelay/parse"
	"github.com/hookrelay/hookrelay/schedule"
)

// BenchmarkDeliveries measures the whole delivery path with the real clock: b.N events
// already on HOOKRELAY_EVENTS (in-process JetStream, file storage) go through fan-out,
// the schedule (miniredis, or the real Redis with HOOKRELAY_TEST_REDIS_URL), dispatch
// and the endpoint's workers to a local sink that answers 204. The figure is
// deliveries/s from the start of fan-out to the last delivery, and the CPU each
// delivery cost this process (hookrelay, the nats-server, the sink) and Redis.
//
//	HOOKRELAY_TEST_REDIS_URL=redis://127.0.0.1:6379 go test ./deliver -run '^$' -bench Deliveries -benchtime 20000x
func BenchmarkDeliveries(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := testenv.NewInProcessNATS(b)
	rd := testenv.NewRedis(b)
	if err := natsx.EnsureStreams(ctx, n.JS, n.Topo, natsx.StreamConfig{}); err != nil {
		b.Fatal(err)
	}
	var got atomic.Int64
	all := make(chan struct{})
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if got.Add(1) == int64(b.N) {
			close(all)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer sink.Close()

	// The events, stored before the clock starts.
	for i := range b.N {
		ev := parse.Event{ID: fmt.Sprintf("evt_bench%021d", i), Type: "payment.succeeded", Provider: "paymaya",
			Source: "acme-maya", Merchant: "acme", ReferenceID: "6319921", ReceivedAt: parse.Timestamp{Time: time.Now()}}
		data, _ := json.Marshal(ev)
		if _, err := n.JS.PublishMsgAsync(&nats.Msg{Subject: n.Topo.EventSubject("paymaya", "acme-maya", ev.Type), Data: data}, jetstream.WithMsgID(ev.ID)); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-n.JS.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("events not stored")
	}

	store, err := schedule.NewStore(rd.Client, schedule.StoreConfig{Keys: rkeys.Keyspace{Prefix: rd.Prefix}})
	if err != nil {
		b.Fatal(err)
	}
	endpoints, err := deliver.OpenEndpointStore(ctx, n.JS, n.Topo.EndpointsBucket(), 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	ep := validEndpoint("acme-orders")
	ep.URL, ep.MaxInFlight = sink.URL+"/hooks", 256
	if _, err := endpoints.Create(ctx, ep); err != nil {
		b.Fatal(err)
	}
	set, err := endpoints.Watch(ctx)
	if err != nil {
		b.Fatal(err)
	}
	obs := metrics.New() // as serve runs it
	disp, err := deliver.NewDispatcher(ctx, deliver.DispatcherConfig{JS: n.JS, Topology: n.Topo, Endpoints: set, Store: store})
	if err != nil {
		b.Fatal(err)
	}
	sched, err := schedule.New(schedule.Config{Store: store, Dispatch: disp, Parallel: 32})
	if err != nil {
		b.Fatal(err)
	}
	sender, err := deliver.NewSender(deliver.SenderConfig{Guard: deliver.NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})})
	if err != nil {
		b.Fatal(err)
	}
	worker, err := deliver.NewWorker(deliver.WorkerConfig{JS: n.JS, Topology: n.Topo, Endpoints: set, Store: store, Sender: sender, Notify: sched, Observer: obs,
		AckWait: 15 * time.Second, KeepAlive: 5 * time.Second}) // as serve runs it
	if err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	cpu := testenv.StartCPU(b, rd)
	fan, err := deliver.NewFanout(ctx, deliver.FanoutConfig{JS: n.JS, Topology: n.Topo, Endpoints: set, Schedule: store, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = fan.Run(ctx) })
	wg.Go(func() { _ = sched.Run(ctx) })
	wg.Go(func() { _ = worker.Run(ctx) })
	if os.Getenv("BENCH_TRACE") != "" {
		go func() {
			for range time.Tick(200 * time.Millisecond) {
				ci, err := n.JS.Consumer(ctx, n.Topo.EventsStream(), "hookrelay-fanout")
				if err != nil {
					return
				}
				info, _ := ci.Info(ctx)
				wi, _ := n.JS.Consumer(ctx, n.Topo.DeliveriesStream(), "hookrelay-deliver-acme-orders")
				var wpend uint64
				var wackp int
				if wi != nil {
					if winfo, _ := wi.Info(ctx); winfo != nil {
						wpend, wackp = winfo.NumPending, winfo.NumAckPending
					}
				}
				if info != nil {
					b.Logf("fanout pending %d ackpending %d; jobs pending %d ackpending %d; delivered %d", info.NumPending, info.NumAckPending, wpend, wackp, got.Load())
				}
			}
		}()
	}
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d delivered in 5 minutes", got.Load(), b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	cpu.Report(b, b.N, "delivery")
	cancel()
	wg.Wait()
	sender.Close()
}
