package admin_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/schedule"
)

const secretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// endpointJSON is a valid endpoint body for acme pointing at url.
func endpointJSON(id, url string) map[string]any {
	return map[string]any{"id": id, "merchant": "acme", "url": url, "types": []string{"payment.*"}, "secret": secretA}
}

// TestAuth: every route but the probes wants the bearer token.
func TestAuth(t *testing.T) {
	e := newEnv(t)
	routes := []struct{ method, path string }{
		{"GET", "/v1/endpoints"}, {"POST", "/v1/endpoints"},
		{"GET", "/v1/endpoints/x"}, {"PUT", "/v1/endpoints/x"}, {"DELETE", "/v1/endpoints/x"},
		{"POST", "/v1/endpoints/x/rotate-secret"},
		{"GET", "/v1/deadletters"}, {"GET", "/v1/deadletters/1"}, {"POST", "/v1/deadletters/1/replay"},
		{"POST", "/v1/deadletters/replay"}, {"GET", "/v1/replays/rpl_x"},
		{"GET", "/v1/events"}, {"GET", "/v1/events/evt_x"}, {"GET", "/v1/events/evt_x/deliveries"},
		{"GET", "/v1/rejected"}, {"GET", "/v1/rejected/1"}, {"POST", "/v1/rejected/1/reprocess"},
		{"POST", "/v1/rejected/reprocess"}, {"POST", "/v1/redrive"},
	}
	for _, r := range routes {
		t.Run(r.method+" "+r.path, func(t *testing.T) {
			a := e.doAs("", r.method, r.path, nil)
			a.wantError(t, http.StatusUnauthorized, "ADMIN_UNAUTHORIZED")
			if a.header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
			e.doAs("wrong-token-wrong-token", r.method, r.path, nil).wantError(t, http.StatusUnauthorized, "ADMIN_UNAUTHORIZED")
		})
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if a := e.doAs("", "GET", p, nil); a.status != http.StatusOK {
			t.Errorf("GET %s = %d %s, want 200 without a token", p, a.status, a.body)
		}
	}
	e.do("GET", "/v2/nothing", nil).wantError(t, http.StatusNotFound, "NOT_FOUND")
	a := e.do("PATCH", "/v1/endpoints/x", nil)
	a.wantError(t, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED")
	if got := a.header.Get("Allow"); got != "DELETE, GET, PUT" {
		t.Errorf("Allow = %q, want DELETE, GET, PUT", got)
	}
}

func TestNewNeedsAToken(t *testing.T) {
	if _, err := admin.New(admin.Config{Token: "short"}); err == nil {
		t.Error("New with a 5-character token: no error")
	}
}

// TestEndpoints: create, read, list with pages, update, delete, and each refusal.
func TestEndpoints(t *testing.T) {
	e := newEnv(t)
	a := e.do("POST", "/v1/endpoints", map[string]any{"id": "acme-orders", "merchant": "acme", "url": "https://acme.example/hooks"})
	if a.status != http.StatusCreated || a.header.Get("Location") != "/v1/endpoints/acme-orders" {
		t.Fatalf("create = %d %s (Location %q)", a.status, a.body, a.header.Get("Location"))
	}
	var created admin.EndpointView
	a.decode(t, &created)
	if !strings.HasPrefix(created.Secret, "whsec_") || !created.Enabled || created.MaxInFlight != deliver.DefaultMaxInFlight {
		t.Errorf("created = %+v; want a generated secret, enabled, max in flight %d", created, deliver.DefaultMaxInFlight)
	}
	e.do("POST", "/v1/endpoints", map[string]any{"id": "acme-orders", "merchant": "acme", "url": "https://acme.example/x"}).
		wantError(t, http.StatusConflict, "ADMIN_CONFLICT")

	bad := e.do("POST", "/v1/endpoints", map[string]any{"id": "Bad Id", "merchant": "acme", "url": "ftp://x", "types": []string{"nope"}}).
		wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FIELD")
	fields := map[string]bool{}
	for _, f := range bad.Error.FieldErrors {
		fields[f.Field] = true
	}
	for _, want := range []string{"id", "url", "types[0]"} {
		if !fields[want] {
			t.Errorf("fieldErrors %+v lack %s", bad.Error.FieldErrors, want)
		}
	}
	e.do("POST", "/v1/endpoints", map[string]any{"id": "x", "colour": "red"}).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_BODY")
	e.do("POST", "/v1/endpoints", "{not json").wantError(t, http.StatusBadRequest, "ADMIN_INVALID_BODY")
	e.do("POST", "/v1/endpoints", nil).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_BODY")

	for _, id := range []string{"acme-ledger", "acme-zeta"} {
		body := endpointJSON(id, "https://acme.example/"+id)
		body["headers"] = map[string]string{"X-Api-Key": "merchant-credential"}
		if a := e.do("POST", "/v1/endpoints", body); a.status != http.StatusCreated {
			t.Fatalf("create %s = %d %s", id, a.status, a.body)
		}
	}
	var ids []string
	cursor := ""
	for range 5 {
		a := e.do("GET", "/v1/endpoints?limit=2&cursor="+cursor, nil)
		if a.status != http.StatusOK {
			t.Fatalf("list = %d %s", a.status, a.body)
		}
		if strings.Contains(string(a.body), "whsec_") || strings.Contains(string(a.body), "merchant-credential") {
			t.Fatalf("list shows a secret or header value: %s", a.body)
		}
		var p struct {
			Items      []admin.EndpointView `json:"items"`
			NextCursor string               `json:"next_cursor"`
		}
		a.decode(t, &p)
		for _, v := range p.Items {
			ids = append(ids, v.ID)
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if fmt.Sprint(ids) != "[acme-ledger acme-orders acme-zeta]" {
		t.Errorf("paged list = %v", ids)
	}
	for _, q := range []string{"limit=0", "limit=x", "limit=1001", "cursor=%21%21"} {
		e.do("GET", "/v1/endpoints?"+q, nil).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FILTER")
	}

	var got admin.EndpointView
	a = e.do("GET", "/v1/endpoints/acme-ledger", nil)
	a.decode(t, &got)
	if a.status != 200 || got.Secret != "" || fmt.Sprint(got.Headers) != "[X-Api-Key]" {
		t.Errorf("get = %d %+v; want no secret, header names only", a.status, got)
	}
	e.do("GET", "/v1/endpoints/nobody", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")

	a = e.do("PUT", "/v1/endpoints/acme-ledger", map[string]any{"enabled": false, "max_in_flight": 3})
	a.decode(t, &got)
	if a.status != 200 || got.Enabled || got.MaxInFlight != 3 || got.URL != "https://acme.example/acme-ledger" {
		t.Errorf("update = %d %+v; want disabled, max 3, url kept", a.status, got)
	}
	upd := e.do("PUT", "/v1/endpoints/acme-ledger", map[string]any{"id": "other", "secret": secretA}).
		wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FIELD")
	if len(upd.Error.FieldErrors) != 2 {
		t.Errorf("fieldErrors = %+v, want id and secret", upd.Error.FieldErrors)
	}
	e.do("PUT", "/v1/endpoints/acme-ledger", map[string]any{"url": "not a url"}).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FIELD")
	e.do("PUT", "/v1/endpoints/nobody", map[string]any{"enabled": true}).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")

	if a := e.do("DELETE", "/v1/endpoints/acme-zeta", nil); a.status != http.StatusNoContent {
		t.Errorf("delete = %d %s", a.status, a.body)
	}
	e.do("DELETE", "/v1/endpoints/acme-zeta", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	e.do("GET", "/v1/endpoints/acme-zeta", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
}

// TestRotateSecret: after a rotation each delivery is signed with the new secret and,
// during the grace period, the old one: a merchant on either key accepts it.
func TestRotateSecret(t *testing.T) {
	e := newEnv(t)
	m := newMerchant(t, func(string) int { return 200 })
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))
	e.do("POST", "/v1/endpoints/acme-orders/rotate-secret", map[string]any{"grace": "forever"}).
		wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FIELD")
	e.do("POST", "/v1/endpoints/nobody/rotate-secret", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	a := e.do("POST", "/v1/endpoints/acme-orders/rotate-secret", nil)
	var rotated admin.EndpointView
	a.decode(t, &rotated)
	if a.status != 200 || rotated.Secret == secretA || !strings.HasPrefix(rotated.Secret, "whsec_") ||
		rotated.PreviousSecretUntil == nil || !rotated.PreviousSecretUntil.Equal(t0.Add(admin.DefaultGrace)) {
		t.Fatalf("rotate = %d %+v; want a new secret, the old one until %v", a.status, rotated, t0.Add(admin.DefaultGrace))
	}
	waitFor(t, func() bool { ep, _ := e.set.Get("acme-orders"); return ep.Secret == rotated.Secret })
	e.publish("evt_rot", "payment.succeeded")
	e.waitPublished()
	e.drain([]string{deliver.DeliveryID("evt_rot", "acme-orders")}, func(s schedule.StateName) bool { return s == schedule.StateDone })
	reqs := m.requests()
	if len(reqs) != 1 {
		t.Fatalf("merchant got %d requests", len(reqs))
	}
	h := reqs[0].header
	if n := len(strings.Fields(h.Get("webhook-signature"))); n != 2 {
		t.Errorf("webhook-signature has %d signatures, want 2: %q", n, h.Get("webhook-signature"))
	}
	for name, secret := range map[string]string{"old": secretA, "new": rotated.Secret} {
		wh, err := standardwebhooks.NewWebhook(secret)
		must(t, err)
		if err := wh.VerifyIgnoringTimestamp(reqs[0].body, h); err != nil {
			t.Errorf("a merchant on the %s secret rejects it: %v", name, err)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lagging is a live endpoint set that shows each endpoint only some calls after it
// was stored, like a watch that has not caught up yet.
type lagging struct {
	real  admin.LiveEndpoints
	mu    sync.Mutex
	calls int
}

func (l *lagging) Get(id string) (deliver.Endpoint, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	if l.calls%10 != 0 { // nine calls in ten: the old view
		return deliver.Endpoint{}, false
	}
	return l.real.Get(id)
}

// TestChangesAnsweredWhenLive: create answers only once the live endpoint set (what
// fan-out routes by) has the endpoint, so an event published after the answer reaches it.
func TestChangesAnsweredWhenLive(t *testing.T) {
	var live *lagging
	e := newEnvWith(t, func(c *admin.Config) { live = &lagging{real: c.Live}; c.Live = live })
	e.createEndpoint(endpointJSON("acme-orders", "https://acme.example/hooks"))
	live.mu.Lock()
	calls := live.calls
	live.mu.Unlock()
	if calls < 10 {
		t.Errorf("answered after %d looks at the live set, want it waited for the tenth", calls)
	}
}

// TestDisableHoldsEnableReleases: a delivery for an endpoint disabled through the API
// is held (nothing sent, no attempt counted) and goes out once it is enabled again.
func TestDisableHoldsEnableReleases(t *testing.T) {
	e := newEnv(t)
	m := newMerchant(t, func(string) int { return 200 })
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))
	if a := e.do("PUT", "/v1/endpoints/acme-orders", map[string]any{"enabled": false}); a.status != 200 {
		t.Fatalf("disable = %d %s", a.status, a.body)
	}
	e.publishRef("evt_held", "payment.succeeded", "acme-maya", "r1")
	id := deliver.DeliveryID("evt_held", "acme-orders")
	// Fan-out routes by the live set, which the answer to the PUT waited for: held.
	e.drain([]string{id}, func(s schedule.StateName) bool { return s == schedule.StateHeld })
	if n := len(m.requests()); n != 0 {
		t.Fatalf("disabled endpoint got %d requests", n)
	}
	if d := e.deliveries(t, "evt_held"); d.State != schedule.StateHeld || len(d.Attempts) != 0 {
		t.Errorf("held delivery = %+v; want held, no attempt", d)
	}
	e.clock.Advance(time.Hour) // held for a while (a release in the same millisecond would reuse the job's Nats-Msg-Id)
	if a := e.do("PUT", "/v1/endpoints/acme-orders", map[string]any{"enabled": true}); a.status != 200 {
		t.Fatalf("enable = %d %s", a.status, a.body)
	}
	e.drain([]string{id}, isDone)
	if got := m.answered("evt_held"); got[200] != 1 {
		t.Errorf("after enable the merchant answered %v, want one 200", got)
	}
}
