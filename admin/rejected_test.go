package admin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/parse"
	"github.com/hookrelay/hookrelay/schedule"
)

type rejectedPage struct {
	Items      []ingest.Rejection `json:"items"`
	NextCursor string             `json:"next_cursor"`
}

// TestRejected: a body a broken parser refused is reprocessed through today's parser,
// becomes a normal event and is delivered, once; a body still invalid stays rejected.
func TestRejected(t *testing.T) {
	e := newEnv(t)
	m := newMerchant(t, func(string) int { return 200 })
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))

	// What an older, broken parser kept: PayMaya's sample, refused.
	sample, err := os.ReadFile("../parse/testdata/paymaya/webhook-payment-success.json")
	must(t, err)
	meta, _ := json.Marshal(ingest.RejectedRequest{
		Provider: "paymaya", Source: "acme-maya", Merchant: "acme", ReceivedAt: parse.Timestamp{Time: t0},
		Method: "POST", Path: "/ingest/paymaya/acme-maya", Header: map[string][]string{"Content-Type": {"application/json"}},
		Error: apierr.New(apierr.IngestInvalidField, "a parser bug refused this"),
	})
	_, err = e.nats.JS.PublishMsg(e.ctx, &nats.Msg{
		Subject: e.nats.Topo.RejectedSubject("paymaya", "acme-maya"), Data: sample,
		Header: nats.Header{ingest.RejectedHeader: {string(meta)}},
	})
	must(t, err)
	// And a body today's parser refuses too, posted by the provider.
	ing := httptest.NewServer(e.ingest)
	defer ing.Close()
	req, _ := http.NewRequest("POST", ing.URL+"/ingest/paymaya/acme-maya", strings.NewReader(`{"status": "PAYMENT_SUCCESS"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("", mayaToken)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("ingest of a body without id = %d, want 400", resp.StatusCode)
	}

	var p rejectedPage
	a := e.do("GET", "/v1/rejected?source=acme-maya", nil)
	a.decode(t, &p)
	if a.status != 200 || len(p.Items) != 2 || p.Items[0].Body != string(sample) || p.Items[1].Error.Code != apierr.IngestInvalidField {
		t.Fatalf("rejected = %d %s", a.status, a.body)
	}
	good, bad := p.Items[0].Seq, p.Items[1].Seq
	for q, n := range map[string]int{"": 2, "source=other": 0, "limit=1": 1} {
		p = rejectedPage{}
		e.do("GET", "/v1/rejected?"+q, nil).decode(t, &p)
		if len(p.Items) != n {
			t.Errorf("?%s: %d, want %d", q, len(p.Items), n)
		}
	}
	for _, q := range []string{"source=Bad%20Id", "limit=0", "cursor=zz"} {
		e.do("GET", "/v1/rejected?"+q, nil).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FILTER")
	}
	var one ingest.Rejection
	e.do("GET", fmt.Sprintf("/v1/rejected/%d", bad), nil).decode(t, &one)
	if one.Body != `{"status": "PAYMENT_SUCCESS"}` || one.Header["Authorization"] != nil {
		t.Errorf("rejected %d = %+v; want the body, no credentials", bad, one)
	}
	e.do("GET", "/v1/rejected/999", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	e.do("POST", "/v1/rejected/999/reprocess", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")

	var res ingest.ReprocessResult
	a = e.do("POST", fmt.Sprintf("/v1/rejected/%d/reprocess", good), nil)
	a.decode(t, &res)
	if a.status != 200 || res.Outcome != ingest.Reprocessed || !strings.HasPrefix(res.EventID, "evt_") {
		t.Fatalf("reprocess = %d %s", a.status, a.body)
	}
	eventID := res.EventID
	e.drain([]string{deliver.DeliveryID(eventID, "acme-orders")}, isDone)
	if got := m.answered(res.EventID); got[200] != 1 {
		t.Errorf("merchant answered %s %v, want one 200", res.EventID, got)
	}
	var stored struct {
		Event parse.Event `json:"event"`
	}
	e.do("GET", "/v1/events/"+eventID, nil).decode(t, &stored)
	if !stored.Event.ReceivedAt.Time.Equal(t0) {
		t.Errorf("event received_at %v, want the original %v", stored.Event.ReceivedAt.Time, t0)
	}

	a = e.do("POST", fmt.Sprintf("/v1/rejected/%d/reprocess", bad), nil)
	res = ingest.ReprocessResult{}
	a.decode(t, &res)
	if a.status != 200 || res.Outcome != ingest.StillRejected || res.Error == nil || res.Error.Code != apierr.IngestInvalidField {
		t.Errorf("reprocess of the bad one = %d %s", a.status, a.body)
	}

	var sum struct {
		Stored, Duplicate int
		StillRejected     int `json:"still_rejected"`
	}
	a = e.do("POST", "/v1/rejected/reprocess", map[string]any{"source": "acme-maya"})
	a.decode(t, &sum)
	if a.status != 200 || sum.Stored != 0 || sum.Duplicate != 1 || sum.StillRejected != 1 {
		t.Errorf("reprocess all = %d %s; want the good one a duplicate, the bad one still rejected", a.status, a.body)
	}
	e.do("POST", "/v1/rejected/reprocess", map[string]any{}).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FIELD")

	// A reprocess-all stopped at its limit says so, and goes on after its last.
	q, err := ingest.NewQuarantine(e.ctx, e.nats.JS, e.ingest)
	must(t, err)
	part, more, err := q.ReprocessAll(e.ctx, "acme-maya", 0, 1)
	if err != nil || len(part) != 1 || !more {
		t.Fatalf("ReprocessAll(limit 1) = %d results, more %v, %v", len(part), more, err)
	}
	part, more, err = q.ReprocessAll(e.ctx, "acme-maya", part[0].Seq, 1)
	if err != nil || len(part) != 1 || part[0].Seq != bad || more {
		t.Errorf("ReprocessAll(after) = %+v, more %v, %v; want the last one, no more", part, more, err)
	}
	e.drain([]string{deliver.DeliveryID(eventID, "acme-orders")}, func(schedule.StateName) bool { return true })
	if n := len(m.requests()); n != 1 {
		t.Errorf("merchant got %d requests in all, want 1", n)
	}
}
