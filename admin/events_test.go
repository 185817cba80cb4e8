package admin_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/parse"
	"github.com/hookrelay/hookrelay/schedule"
)

// publishRef stores an event of payment reference on HOOKRELAY_EVENTS.
func (e *env) publishRef(id, typ, source, reference string) {
	e.t.Helper()
	ev := parse.Event{ID: id, Type: typ, Provider: "paymaya", Source: source, Merchant: "acme", ReferenceID: reference,
		ReceivedAt: parse.Timestamp{Time: e.clock.Now()}}
	b, _ := json.Marshal(ev)
	msg := &nats.Msg{Subject: e.nats.Topo.EventSubject("paymaya", source, typ), Data: b}
	if _, err := e.nats.JS.PublishMsg(e.ctx, msg, jetstream.WithMsgID(id)); err != nil {
		e.t.Fatal(err)
	}
}

type eventPage struct {
	Items      []deliver.StoredEvent `json:"items"`
	NextCursor string                `json:"next_cursor"`
}

// ids lists the event ids of a page.
func (p eventPage) ids(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, it := range p.Items {
		var ev parse.Event
		if err := json.Unmarshal(it.Event, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.ID)
	}
	return out
}

func (e *env) events(query string) eventPage {
	e.t.Helper()
	a := e.do("GET", "/v1/events?"+query, nil)
	if a.status != http.StatusOK {
		e.t.Fatalf("GET /v1/events?%s = %d %s", query, a.status, a.body)
	}
	var p eventPage
	a.decode(e.t, &p)
	return p
}

// TestEvents: the merchant's question "what happened to payment X?" — events found by
// reference_id, each event's deliveries with every attempt and the next due time.
func TestEvents(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	tries := map[string]int{}
	m := newMerchant(t, func(id string) int {
		mu.Lock()
		defer mu.Unlock()
		tries[id]++
		if tries[id] == 1 {
			return 500
		}
		return 200
	})
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))
	e.publishRef("evt_p1", "payment.pending", "acme-maya", "6319921")
	e.publishRef("evt_other", "payment.succeeded", "acme-maya", "777")
	e.publishRef("evt_p2", "payment.succeeded", "acme-maya", "6319921")
	e.publishRef("evt_tel", "payment.failed", "acme-paytia", "ref/with space")
	// Fan-out indexes each event; wait for the last.
	waitFor(t, func() bool { return e.do("GET", "/v1/events/evt_tel", nil).status == 200 })

	for _, tc := range []struct {
		query string
		want  string
	}{
		{"reference_id=6319921", "[evt_p1 evt_p2]"},
		{"reference_id=6319921&type=payment.succeeded", "[evt_p2]"},
		{"reference_id=6319921&source=acme-paytia", "[]"},
		{"reference_id=" + url.QueryEscape("ref/with space"), "[evt_tel]"},
		{"reference_id=nobody", "[]"},
		{"", "[evt_p1 evt_other evt_p2 evt_tel]"},
		{"source=acme-maya&type=payment.succeeded", "[evt_other evt_p2]"},
		{"source=acme-paytia", "[evt_tel]"},
		{"type=payment.refunded", "[]"},
		{"since=" + url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339)), "[]"},
		{"until=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), "[]"},
		{"since=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), "[evt_p1 evt_other evt_p2 evt_tel]"},
	} {
		if got := fmtIDs(e.events(tc.query).ids(t)); got != tc.want {
			t.Errorf("?%s: %s, want %s", tc.query, got, tc.want)
		}
	}
	for _, base := range []string{"reference_id=6319921&", ""} {
		p := e.events(base + "limit=1")
		if len(p.Items) != 1 || p.NextCursor == "" {
			t.Fatalf("?%slimit=1: %d items, cursor %q", base, len(p.Items), p.NextCursor)
		}
		q := e.events(base + "limit=1&cursor=" + p.NextCursor)
		if len(q.Items) != 1 || q.Items[0].Seq <= p.Items[0].Seq {
			t.Errorf("?%s second page: %+v after seq %d", base, q.ids(t), p.Items[0].Seq)
		}
	}
	for _, q := range []string{"limit=0", "source=Bad%20Id", "type=x", "type=payment.*", "cursor=zz", "since=today"} {
		e.do("GET", "/v1/events?"+q, nil).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FILTER")
	}

	var got deliver.StoredEvent
	a := e.do("GET", "/v1/events/evt_p2", nil)
	a.decode(t, &got)
	var ev parse.Event
	if err := json.Unmarshal(got.Event, &ev); err != nil || ev.ID != "evt_p2" || ev.ReferenceID != "6319921" {
		t.Errorf("GET evt_p2 = %s", a.body)
	}
	e.do("GET", "/v1/events/evt_nope", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	e.do("GET", "/v1/events/evt_nope/deliveries", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")

	// The first attempt fails (500): the deliveries view shows it and the next due time.
	id := deliver.DeliveryID("evt_p2", "acme-orders")
	waitFor(t, func() bool {
		st, err := e.store.Get(e.ctx, id)
		return err == nil && st.Name == schedule.StatePending && st.Attempt == 2
	})
	d := e.deliveries(t, "evt_p2")
	if d.Endpoint != "acme-orders" || d.State != schedule.StatePending || d.Attempt != 2 || len(d.Attempts) != 1 ||
		d.Attempts[0].Status != 500 || d.Attempts[0].Outcome != "retry" || d.NextDue == nil || !d.NextDue.Equal(t0.Add(time.Minute)) {
		t.Errorf("after one failure: %+v; want pending attempt 2 due %v, one 500", d, t0.Add(time.Minute))
	}
	e.drain([]string{id}, isDone)
	d = e.deliveries(t, "evt_p2")
	if d.State != schedule.StateDone || len(d.Attempts) != 2 || d.Attempts[1].Status != 200 || d.NextDue != nil {
		t.Errorf("after the second attempt: %+v; want done, 500 then 200", d)
	}
}

// deliveries reads the one delivery of event id.
func (e *env) deliveries(t *testing.T, id string) deliver.DeliveryView {
	t.Helper()
	var ds struct {
		EventID    string                 `json:"event_id"`
		Deliveries []deliver.DeliveryView `json:"deliveries"`
	}
	a := e.do("GET", "/v1/events/"+id+"/deliveries", nil)
	a.decode(t, &ds)
	if a.status != 200 || ds.EventID != id || len(ds.Deliveries) != 1 {
		t.Fatalf("deliveries of %s = %d %s", id, a.status, a.body)
	}
	return ds.Deliveries[0]
}

func fmtIDs(ids []string) string { return "[" + strings.Join(ids, " ") + "]" }
