package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
)

// flushRedis is FLUSHALL on the test's own Redis (miniredis); on the shared real
// Redis, which holds other tests' keys, it deletes every key of the test's prefix.
func (e *env) flushRedis() {
	e.t.Helper()
	if e.redis.Mini != nil {
		e.redis.Mini.FlushAll()
		return
	}
	ctx := context.Background()
	keys, err := e.redis.Client.Keys(ctx, e.redis.Prefix+"*").Result()
	must(e.t, err)
	if len(keys) > 0 {
		must(e.t, e.redis.Client.Del(ctx, keys...).Err())
	}
}

// TestRedriveAfterRedisLost: Redis loses everything (retry state, attempt logs, the
// event index). A redrive from before the events delivers every one of them again,
// with the same webhook-id, and restores the index; a second redrive adds nothing.
func TestRedriveAfterRedisLost(t *testing.T) {
	e := newEnv(t)
	m := newMerchant(t, func(string) int { return 200 })
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))
	const n = 200
	var ids []string
	before := time.Now().Add(-time.Minute) // stored times are the server's clock
	for i := range n {
		ev := fmt.Sprintf("evt_%04d", i)
		e.publishRef(ev, "payment.succeeded", "acme-maya", fmt.Sprintf("ref-%d", i%50))
		ids = append(ids, deliver.DeliveryID(ev, "acme-orders"))
	}
	e.drain(ids, isDone)

	e.flushRedis()
	e.do("GET", "/v1/events/evt_0000", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	e.clock.Advance(time.Hour) // the redriven attempts start later than the first ones

	var res deliver.RedriveResult
	a := e.do("POST", "/v1/redrive", map[string]any{"since": before})
	a.decode(t, &res)
	if a.status != 200 || res.Events != n || res.Scheduled != n || res.Known != 0 {
		t.Fatalf("redrive = %d %s; want %d events, all scheduled", a.status, a.body, n)
	}
	e.drain(ids, isDone)
	for i := range n {
		id := fmt.Sprintf("evt_%04d", i)
		if got := m.answered(id); got[200] != 2 {
			t.Fatalf("%s answered %v; want delivered twice (before and after the loss), same webhook-id", id, got)
		}
	}
	var p eventPage
	e.do("GET", "/v1/events?reference_id=ref-7", nil).decode(t, &p)
	if len(p.Items) != n/50 {
		t.Errorf("after the redrive ref-7 finds %d events, want %d (the index is rebuilt)", len(p.Items), n/50)
	}

	a = e.do("POST", "/v1/redrive", map[string]any{"since": before, "endpoint": "acme-orders"})
	res = deliver.RedriveResult{}
	a.decode(t, &res)
	if res.Scheduled != 0 || res.Known != n {
		t.Errorf("second redrive = %s; want nothing scheduled, %d known", a.body, n)
	}
	a = e.do("POST", "/v1/redrive", map[string]any{"since": time.Now().Add(time.Hour)})
	res = deliver.RedriveResult{}
	a.decode(t, &res)
	if res.Events != 0 {
		t.Errorf("redrive from the future = %s", a.body)
	}
	e.do("POST", "/v1/redrive", map[string]any{"endpoint": "acme-orders"}).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FIELD")
	e.do("POST", "/v1/redrive", map[string]any{"since": "yesterday"}).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_BODY")
}

// TestRedriveTruncated: a redrive stopped at its limit says where to go on, and going
// on from there schedules the rest.
func TestRedriveTruncated(t *testing.T) {
	e := newEnv(t)
	m := newMerchant(t, func(string) int { return 200 })
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))
	before := time.Now().Add(-time.Minute)
	var ids []string
	for i := range 20 {
		e.publishRef(fmt.Sprintf("evt_%04d", i), "payment.succeeded", "acme-maya", "r")
		ids = append(ids, deliver.DeliveryID(fmt.Sprintf("evt_%04d", i), "acme-orders"))
	}
	e.drain(ids, isDone) // fan-out is finished with them before Redis is lost
	e.flushRedis()
	r, err := deliver.NewRedriver(e.ctx, deliver.RedriveConfig{JS: e.nats.JS, Topology: e.nats.Topo, Endpoints: e.set, Schedule: e.store, Clock: e.clock})
	must(t, err)
	first, err := r.Redrive(e.ctx, before, "", 15)
	if err != nil || first.Events != 15 || !first.Truncated || first.NextSince == nil {
		t.Fatalf("first = %+v, %v; want 15 events, truncated, where to go on", first, err)
	}
	rest, err := r.Redrive(e.ctx, *first.NextSince, "", 1000)
	if err != nil || rest.Truncated || first.Scheduled+rest.Scheduled != 20 {
		t.Errorf("rest = %+v, %v; want the other 5 scheduled (20 in all)", rest, err)
	}
}
