package admin_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/schedule"
)

// letterPage is GET /v1/deadletters's answer.
type letterPage struct {
	Items      []deliver.StoredLetter `json:"items"`
	NextCursor string                 `json:"next_cursor"`
}

func isDead(s schedule.StateName) bool { return s == schedule.StateDead }
func isDone(s schedule.StateName) bool { return s == schedule.StateDone }

// killAll publishes n events whose deliveries to acme-orders the merchant answers 410,
// and waits until they are dead letters. It returns the delivery ids.
func (e *env) killAll(m *merchant, prefix string, n int) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range n {
		ev := fmt.Sprintf("%s_%05d", prefix, i)
		ids[i] = deliver.DeliveryID(ev, "acme-orders")
		e.publish(ev, "payment.failed")
	}
	e.waitPublished()
	e.drain(ids, isDead)
	return ids
}

// waitLetters waits until the dead-letter stream holds n letters.
func (e *env) waitLetters(n uint64) {
	e.t.Helper()
	s, err := e.nats.JS.Stream(e.ctx, e.nats.Topo.DeadStream())
	must(e.t, err)
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := s.Info(e.ctx)
		must(e.t, err)
		if info.State.Msgs >= n {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d dead letters after 30 s, want %d", info.State.Msgs, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeadLetterRoutes: list with filters and pages, show, replay one, and the
// refusals.
func TestDeadLetterRoutes(t *testing.T) {
	e := newEnv(t)
	m := newMerchant(t, func(string) int { return http.StatusGone })
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))
	ids := e.killAll(m, "evt", 3)
	e.waitLetters(3)

	var p letterPage
	a := e.do("GET", "/v1/deadletters?state=open&endpoint=acme-orders&type=payment.failed&limit=2", nil)
	a.decode(t, &p)
	if a.status != 200 || len(p.Items) != 2 || p.NextCursor == "" {
		t.Fatalf("first page = %d %s", a.status, a.body)
	}
	l := p.Items[0]
	seen := map[string]bool{p.Items[0].ID: true, p.Items[1].ID: true}
	if l.State != "open" || l.Reason == "" || len(l.Attempts) != 1 || l.Attempts[0].Status != 410 || len(l.Event) == 0 {
		t.Errorf("letter = %+v", l)
	}
	a = e.do("GET", "/v1/deadletters?state=open&limit=2&cursor="+p.NextCursor, nil)
	p = letterPage{}
	a.decode(t, &p)
	if len(p.Items) != 1 || p.NextCursor != "" || p.Items[0].Seq <= l.Seq {
		t.Errorf("second page = %s", a.body)
	}
	for _, it := range p.Items {
		seen[it.ID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("%s on no page", id)
		}
	}
	for q, n := range map[string]int{
		"endpoint=acme-ledger": 0, "type=payment.succeeded": 0, "state=replayed": 0,
		"since=" + t0.Add(-time.Minute).Format(time.RFC3339): 3, "until=" + t0.Format(time.RFC3339): 0,
	} {
		a := e.do("GET", "/v1/deadletters?"+q, nil)
		p = letterPage{}
		a.decode(t, &p)
		if a.status != 200 || len(p.Items) != n {
			t.Errorf("?%s: %d letters (%d), want %d", q, len(p.Items), a.status, n)
		}
	}
	for _, q := range []string{"state=closed", "since=yesterday", "limit=-1", "cursor=zz", "endpoint=Bad%20Id", "type=x",
		"since=2026-11-22T00:00:00Z&until=2026-11-21T00:00:00Z"} {
		e.do("GET", "/v1/deadletters?"+q, nil).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FILTER")
	}

	var got deliver.StoredLetter
	a = e.do("GET", fmt.Sprintf("/v1/deadletters/%d", l.Seq), nil)
	a.decode(t, &got)
	if a.status != 200 || got.ID != l.ID {
		t.Errorf("show = %d %s", a.status, a.body)
	}
	e.do("GET", "/v1/deadletters/999", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	e.do("GET", "/v1/deadletters/abc", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	e.do("POST", "/v1/deadletters/999/replay", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")

	m.setStatus(func(string) int { return 200 })
	e.clock.Advance(time.Hour)
	a = e.do("POST", fmt.Sprintf("/v1/deadletters/%d/replay", l.Seq), nil)
	if a.status != http.StatusAccepted {
		t.Fatalf("replay = %d %s", a.status, a.body)
	}
	e.do("POST", fmt.Sprintf("/v1/deadletters/%d/replay", l.Seq), nil).wantError(t, http.StatusConflict, "ADMIN_ALREADY_REPLAYED")
	e.drain([]string{l.ID}, isDone)
	if got := m.answered(l.EventID); got[200] != 1 || got[410] != 1 {
		t.Errorf("merchant answered %s %v; want one 410, one 200", l.EventID, got)
	}
	a = e.do("GET", "/v1/deadletters?state=replayed", nil)
	p = letterPage{}
	a.decode(t, &p)
	if len(p.Items) != 1 || p.Items[0].Seq != l.Seq {
		t.Errorf("replayed letters = %s", a.body)
	}

	// A deleted endpoint's letters cannot be replayed.
	if a := e.do("DELETE", "/v1/endpoints/acme-orders", nil); a.status != 204 {
		t.Fatal(a.status)
	}
	other := uint64(1)
	if l.Seq == 1 {
		other = 2
	}
	gone := e.do("POST", fmt.Sprintf("/v1/deadletters/%d/replay", other), nil).wantError(t, http.StatusConflict, "ADMIN_CONFLICT")
	if msg := gone.Error.Message; strings.Count(msg, "cannot be replayed") != 1 || !strings.Contains(msg, "acme-orders was deleted") {
		t.Errorf("message %q; want the reason once", msg)
	}
}

// TestBulkReplayLimit: a job stops at MaxBulkReplay and says it was truncated; the
// next job replays the rest.
func TestBulkReplayLimit(t *testing.T) {
	e := newEnvWith(t, func(c *admin.Config) { c.MaxBulkReplay = 2 })
	m := newMerchant(t, func(string) int { return http.StatusGone })
	e.createEndpoint(endpointJSON("acme-orders", m.srv.URL))
	e.killAll(m, "evt", 3)
	e.waitLetters(3)
	e.clock.Advance(time.Hour)
	run := func() admin.ReplayJob {
		t.Helper()
		var j admin.ReplayJob
		e.do("POST", "/v1/deadletters/replay", map[string]any{"endpoint": "acme-orders"}).decode(t, &j)
		for j.State == "running" {
			time.Sleep(5 * time.Millisecond)
			e.do("GET", "/v1/replays/"+j.ID, nil).decode(t, &j)
		}
		return j
	}
	if j := run(); j.State != "done" || j.Replayed != 2 || !j.Truncated {
		t.Errorf("first job = %+v; want 2 replayed, truncated", j)
	}
	if j := run(); j.State != "done" || j.Replayed != 1 || j.Truncated {
		t.Errorf("second job = %+v; want the last one replayed, not truncated", j)
	}
}

// TestBulkReplay: 10,000 dead letters replayed by filter into a merchant that now
// answers 200: a dry run counts them, the same filter replayed twice at once, and
// every letter is delivered exactly once more (counted by webhook-id), with progress.
func TestBulkReplay(t *testing.T) {
	n := 10_000
	if testing.Short() {
		n = 500
	}
	e := newEnv(t)
	m := newMerchant(t, func(string) int { return http.StatusGone })
	body := endpointJSON("acme-orders", m.srv.URL)
	body["max_in_flight"] = 256
	e.createEndpoint(body)
	start := time.Now()
	ids := e.killAll(m, "evt", n)
	e.waitLetters(uint64(n))
	t.Logf("%d dead letters made in %v", n, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	m.setStatus(func(string) int { return 200 })
	e.clock.Advance(time.Hour)

	filter := map[string]any{"endpoint": "acme-orders", "type": "payment.failed"}
	dry := map[string]any{"endpoint": "acme-orders", "type": "payment.failed", "dry_run": true}
	var d admin.DryRun
	a := e.do("POST", "/v1/deadletters/replay", dry)
	a.decode(t, &d)
	if a.status != 200 || d.Matched != n {
		t.Fatalf("dry run = %d %s; want %d matched", a.status, a.body, n)
	}
	e.do("POST", "/v1/deadletters/replay", map[string]any{"state": "open"}).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_BODY")
	e.do("POST", "/v1/deadletters/replay", map[string]any{"endpoint": "Bad Id"}).wantError(t, http.StatusBadRequest, "ADMIN_INVALID_FIELD")

	jobs := make([]admin.ReplayJob, 2)
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Go(func() {
			a := e.do("POST", "/v1/deadletters/replay", filter)
			if a.status != http.StatusAccepted || a.header.Get("Location") == "" {
				t.Errorf("bulk replay = %d %s", a.status, a.body)
			}
			a.decode(t, &jobs[i])
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var progress []int
	final := make([]admin.ReplayJob, 2)
	deadline := time.Now().Add(2 * time.Minute)
	for i, j := range jobs {
		for {
			a := e.do("GET", "/v1/replays/"+j.ID, nil)
			a.decode(t, &final[i])
			progress = append(progress, final[i].Matched)
			if final[i].State != "running" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %s still running after 2 minutes: %s", j.ID, a.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	replayed := final[0].Replayed + final[1].Replayed
	for _, f := range final {
		if f.State != "done" || f.Failed != 0 || f.Replayed+f.AlreadyReplayed != f.Matched || f.FinishedAt == nil {
			t.Errorf("job = %+v", f)
		}
	}
	if replayed != n {
		t.Errorf("the two jobs replayed %d + %d letters, want %d in all", final[0].Replayed, final[1].Replayed, n)
	}
	e.do("GET", "/v1/replays/rpl_nope", nil).wantError(t, http.StatusNotFound, "ADMIN_NOT_FOUND")
	t.Logf("dry run and two bulk replays in %v", time.Since(start).Round(time.Millisecond))
	start = time.Now()
	e.drain(ids, isDone)
	t.Logf("replayed letters delivered in %v", time.Since(start).Round(time.Millisecond))
	for i := range n {
		id := fmt.Sprintf("evt_%05d", i)
		if got := m.answered(id); got[200] != 1 || got[410] != 1 {
			t.Fatalf("%s answered %v; want exactly one 410 and one 200", id, got)
		}
	}
	a = e.do("POST", "/v1/deadletters/replay", dry)
	a.decode(t, &d)
	if d.Matched != 0 {
		t.Errorf("after the replay a dry run matches %d, want 0", d.Matched)
	}
	t.Logf("%d letters; jobs replayed %d and %d (already replayed %d and %d); progress seen %v…",
		n, final[0].Replayed, final[1].Replayed, final[0].AlreadyReplayed, final[1].AlreadyReplayed, progress[:min(len(progress), 8)])
}
