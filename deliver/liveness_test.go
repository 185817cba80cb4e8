package deliver_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hookrelay/hookrelay/internal/testenv"
)

// TestWorkerPullsAgainAfterMissedHeartbeats: when the worker's pull for jobs misses its
// heartbeats (a stalled link here; a pull request the server dropped does the same,
// as nats-server 2.9 does under load), the endpoint's loop pulls again and later jobs
// are delivered. The loop used to end on any error from the iterator, so the endpoint
// got nothing more until a restart.
func TestWorkerPullsAgainAfterMissedHeartbeats(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	var link *testenv.Link
	p := newPipeline(t, pipelineOpts{
		pullExpiry: time.Second, // heartbeats every 500 ms: two missed within about a second
		log:        zap.New(core),
		workerJS: func(real jetstream.JetStream) jetstream.JetStream {
			u, err := url.Parse(real.Conn().ConnectedUrl())
			if err != nil {
				t.Fatal(err)
			}
			link = testenv.NewLink(t, u.Host, 0)
			nc, err := nats.Connect("nats://" + link.Addr)
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

	link.Hold(true)
	eventually(t, func() bool { return logs.FilterMessage("endpoint consumer interrupted; pulling again").Len() > 0 })
	link.Hold(false)

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
	// The job is acked (gone from the work queue) before its consumer is deleted: an
	// ack sent to a consumer deleted under it is lost, and the job comes again to the
	// new consumer as a first delivery, which is POSTed again with the same
	// webhook-id (allowed; not what this test is about).
	jobs, err := p.nats.JS.Stream(p.ctx, p.nats.Topo.DeliveriesStream())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, func() bool { info, err := jobs.Info(p.ctx); return err == nil && info.State.Msgs == 0 })

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
