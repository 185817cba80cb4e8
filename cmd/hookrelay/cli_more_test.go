package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/parse"
)

// flakySink is a merchant endpoint that answers the first delivery of each event 500
// with a long, two-line body, and every later one 200.
type flakySink struct {
	*httptest.Server
	mu   sync.Mutex
	seen map[string]int // webhook-id → deliveries received
}

const flakyBody = "upstream\nbusy: " // then 100 x's: longer than a table cell

func newFlakySink(t *testing.T) *flakySink {
	s := &flakySink{seen: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.seen[r.Header.Get("webhook-id")]++
		n := s.seen[r.Header.Get("webhook-id")]
		s.mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, flakyBody+strings.Repeat("x", 100))
			return
		}
		_, _ = io.WriteString(w, "ok thanks")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *flakySink) received(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen[id]
}

// sampleReference is the reference_id the parser gives the PayMaya sample.
func sampleReference(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../parse/testdata/paymaya/webhook-payment-success.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev parse.Event
	if err := json.Unmarshal(b, &ev); err != nil || ev.ReferenceID == "" {
		t.Fatalf("golden event: %v, reference %q", err, ev.ReferenceID)
	}
	return ev.ReferenceID
}

type eventPage struct {
	Items      []deliver.StoredEvent `json:"items"`
	NextCursor string                `json:"next_cursor"`
}

type deliveriesAnswer struct {
	EventID    string                 `json:"event_id"`
	Deliveries []deliver.DeliveryView `json:"deliveries"`
}

// deliveryTo is the delivery to endpoint among ds (nil when there is none).
func deliveryTo(ds []deliver.DeliveryView, endpoint string) *deliver.DeliveryView {
	for i := range ds {
		if ds[i].Endpoint == endpoint {
			return &ds[i]
		}
	}
	return nil
}

const timeRE = `\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ`

func TestCLIEventsAndRedrive(t *testing.T) {
	merchant := newFlakySink(t)
	addr := startServe(t, func(c *Config) {
		allowLoopback(c)
		// The retry after the sink's 500 comes at once, not a minute later.
		c.Retry = RetryConfig{Delays: []Duration{Duration(200 * time.Millisecond)}, ThenEvery: Duration(time.Hour), GiveUpAfter: Duration(24 * time.Hour)}
	})
	t.Setenv(envAdminToken, demoAdminToken)
	c := cli{t, addr.Admin}
	c.ok("endpoints", "create", "--id", "cli-events", "--merchant", "acme", "--url", merchant.URL+"/hooks", "--types", "payment.*")
	postSamplePair(t, addr.Ingest)
	ref := sampleReference(t)

	var evs []deliver.StoredEvent
	eventually(t, "two events of reference "+ref, func() bool {
		evs = decodeJSON[eventPage](t, c.ok("events", "find", "--reference-id", ref, "--json")).Items
		return len(evs) == 2
	})
	var ids []string
	for _, se := range evs {
		ev, err := decodeEvent(se.Event)
		if err != nil || ev.ReferenceID != ref || ev.Type != "payment.succeeded" {
			t.Fatalf("event %d: %v %+v", se.Seq, err, ev)
		}
		ids = append(ids, ev.ID)
	}
	if ids[0] == ids[1] || evs[0].Seq >= evs[1].Seq {
		t.Fatalf("events %v, seqs %d %d", ids, evs[0].Seq, evs[1].Seq)
	}
	one := ids[0]

	out := c.ok("events", "find", "--reference-id", ref)
	row := `\s+payment\.succeeded\s+acme-maya\s+succeeded\s+100\.00 PHP\s+` + timeRE + `$`
	wantLines(t, out,
		`^SEQ\s+EVENT\s+TYPE\s+SOURCE\s+STATUS\s+AMOUNT\s+RECEIVED AT$`,
		`^`+strconv.FormatUint(evs[0].Seq, 10)+`\s+`+ids[0]+row,
		`^`+strconv.FormatUint(evs[1].Seq, 10)+`\s+`+ids[1]+row)
	if strings.Contains(out, "more may match") {
		t.Errorf("all events shown, yet:\n%s", out)
	}
	// --limit stops early and says how to go on; the cursor it gives does.
	out = c.ok("events", "find", "--reference-id", ref, "--limit", "1", "--type", "payment.succeeded")
	m := regexp.MustCompile(`more may match: hookrelay events find --reference-id ` + ref + ` --type payment\.succeeded --cursor (\S+)`).FindStringSubmatch(out)
	if m == nil || strings.Contains(out, ids[1]) {
		t.Fatalf("--limit 1:\n%s", out)
	}
	if out = c.ok("events", "find", "--reference-id", ref, "--cursor", m[1]); !strings.Contains(out, ids[1]) || strings.Contains(out, ids[0]) {
		t.Fatalf("--cursor:\n%s", out)
	}
	// Without a reference the stream is walked; filters still apply.
	if all := decodeJSON[eventPage](t, c.ok("events", "find", "--source", "acme-maya", "--since", "1h", "--json")); len(all.Items) != 2 {
		t.Fatalf("find --source: %+v", all)
	}
	wantLines(t, c.ok("events", "find", "--reference-id", "no-such-order"), `^no events match$`)
	wantLines(t, c.ok("events", "find", "--type", "payment.failed"), `^no events match$`)

	// Each event reaches the sink twice: the 500, then the retry's 200.
	var ds []deliver.DeliveryView
	for _, id := range ids {
		eventually(t, "event "+id+" delivered on the retry", func() bool {
			ds = decodeJSON[deliveriesAnswer](t, c.ok("deliveries", "show", id, "--json")).Deliveries
			d := deliveryTo(ds, "cli-events")
			return d != nil && d.State == "done" && len(d.Attempts) == 2
		})
		if n := merchant.received(id); n != 2 {
			t.Fatalf("the sink received event %s %d times", id, n)
		}
	}
	d := deliveryTo(ds, "cli-events")
	if d.Attempt != 2 || d.Attempts[0].Status != 500 || d.Attempts[0].Outcome != "retry" || d.Attempts[1].Status != 200 || d.Attempts[1].Outcome != "delivered" {
		t.Fatalf("delivery %+v", d)
	}

	// The text shows each endpoint's delivery; ours is the one the sink answered.
	out = c.ok("deliveries", "show", one)
	wantLines(t, out,
		`^event `+one+`$`,
		`^deliveries \(\d\):$`,
		`^endpoint:\s+cli-events$`,
		`^delivery:\s+\S+$`,
		`^state:\s+done$`,
		`^attempt:\s+2$`,
		`^first attempt:\s+`+timeRE+`$`,
		`^next due:\s+-$`,
		`^\s+#\s+START\s+DURATION\s+STATUS\s+OUTCOME\s+ERROR\s+RESPONSE$`,
		// The body is on one line and clipped to 60 characters.
		`^\s+1\s+`+timeRE+`\s+\d+ms\s+500\s+retry\s+deliver: endpoint answered 500 Internal Server Error\s+upstream busy: x{44}…$`,
		`^\s+2\s+`+timeRE+`\s+\d+ms\s+200\s+delivered\s+-\s+ok thanks$`)
	if dj := decodeJSON[deliveriesAnswer](t, c.ok("deliveries", "show", "--json", one)); dj.EventID != one {
		t.Fatalf("deliveries --json event_id %q", dj.EventID)
	}

	out = c.ok("events", "show", one)
	wantLines(t, out,
		`^id:\s+`+one+`$`,
		`^seq:\s+`+strconv.FormatUint(evs[0].Seq, 10)+`$`,
		`^type:\s+payment\.succeeded$`,
		`^reference:\s+`+ref+`$`,
		`^merchant:\s+acme$`,
		`^source:\s+acme-maya \(paymaya\)$`,
		`^payment status:\s+succeeded$`,
		`^amount:\s+100\.00 PHP$`,
		`^occurred at:\s+2018-09-26 08:39:17Z$`,
		`^received at:\s+`+timeRE+`$`,
		`^deliveries \(\d\):$`,
		`^endpoint:\s+cli-events$`,
		`^state:\s+done$`,
		`^\s+2\s+`+timeRE+`\s+\d+ms\s+200\s+delivered\s+`)
	shown := decodeJSON[struct {
		Seq        uint64                 `json:"seq"`
		Event      json.RawMessage        `json:"event"`
		Deliveries []deliver.DeliveryView `json:"deliveries"`
	}](t, c.ok("events", "show", one, "--json"))
	if ev, err := decodeEvent(shown.Event); err != nil || ev.ID != one || shown.Seq != evs[0].Seq || deliveryTo(shown.Deliveries, "cli-events") == nil {
		t.Fatalf("events show --json: %v %+v", err, shown)
	}

	c.fails("ADMIN_NOT_FOUND: no event evt_nope", "events", "show", "evt_nope")
	c.fails("ADMIN_NOT_FOUND: no event evt_nope", "deliveries", "show", "evt_nope")
	c.fails("ADMIN_INVALID_FILTER", "events", "find", "--type", "payment")
	c.misused("events")
	c.misused("events", "frobnicate")
	c.misused("events", "show")
	c.misused("events", "show", "a", "b")
	c.misused("events", "find", "--limit", "0")
	c.misused("events", "find", "--since", "yesterday")
	c.misused("deliveries")
	c.misused("deliveries", "show")

	// Redrive: every delivery is known (done, or pending for the demo endpoint nobody
	// listens on), so nothing is scheduled again and nothing is sent twice.
	known := 0
	for _, id := range ids {
		known += len(decodeJSON[deliveriesAnswer](t, c.ok("deliveries", "show", id, "--json")).Deliveries)
	}
	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	wantLines(t, c.ok("redrive", "--since", since, "--yes"),
		`^2 events read, 0 deliveries scheduled again, `+strconv.Itoa(known)+` already known$`)
	wantLines(t, c.ok("redrive", "--yes", "--since", since, "--endpoint", "cli-events"),
		`^2 events read, 0 deliveries scheduled again, 2 already known$`)
	res := decodeJSON[deliver.RedriveResult](t, c.ok("redrive", "--since", "1h", "--yes", "--json"))
	if res.Events != 2 || res.Scheduled != 0 || res.Known != known || res.Truncated {
		t.Fatalf("redrive --json = %+v", res)
	}
	for _, id := range ids {
		if n := merchant.received(id); n != 2 {
			t.Fatalf("after redrive the sink received event %s %d times", id, n)
		}
	}

	c.misused("redrive")
	c.misused("redrive", "--yes")
	c.misused("redrive", "--since", "yesterday", "--yes")
	c.misused("redrive", "extra", "--since", "1h", "--yes")
	c.fails("ADMIN_INVALID_FIELD", "redrive", "--since", "1h", "--yes", "--endpoint", "Not An Id")
	// Without --yes and no terminal to ask it refuses; asked and not confirmed, it stops.
	confirmInput = func() (io.Reader, bool) { return strings.NewReader(""), false }
	t.Cleanup(func() { confirmInput = func() (io.Reader, bool) { return os.Stdin, isCharDevice(os.Stdin) } })
	c.misused("redrive", "--since", since)
	confirmInput = func() (io.Reader, bool) { return strings.NewReader("n\n"), true }
	stdout, stderr, err := c.run("redrive", "--since", since)
	if err == nil || !strings.Contains(err.Error(), "not confirmed") || exitCode(err) != 1 || stdout != "" {
		t.Fatalf("redrive answered n: %v (exit %d), stdout %q", err, exitCode(err), stdout)
	}
	if !strings.Contains(stderr, "since "+since) || !strings.Contains(stderr, "[y/N]") {
		t.Errorf("question: %q", stderr)
	}
	confirmInput = func() (io.Reader, bool) { return strings.NewReader("y\n"), true }
	wantLines(t, c.ok("redrive", "--since", since), `^2 events read, 0 deliveries scheduled again, \d+ already known$`)

	// Every command has help.
	for _, cmd := range []string{"events", "deliveries", "rejected", "redrive"} {
		if out := c.ok(cmd, "help"); !strings.HasPrefix(out, "usage: hookrelay "+cmd) {
			t.Errorf("%s help:\n%s", cmd, out)
		}
	}
	if out := c.ok("help"); !strings.Contains(out, "redrive") || !strings.Contains(out, "rejected") {
		t.Errorf("usage lacks the new commands:\n%s", out)
	}
}

type rejectedPage struct {
	Items      []ingest.Rejection `json:"items"`
	NextCursor string             `json:"next_cursor"`
}

func TestCLIRejected(t *testing.T) {
	addr := startServe(t, nil)
	t.Setenv(envAdminToken, demoAdminToken)
	c := cli{t, addr.Admin}

	wantLines(t, c.ok("rejected", "list"), `^no rejected requests$`)
	const noID = `{"status":"PAYMENT_SUCCESS"}`
	if status, answer := postIngest(t, addr.Ingest, noID); status != http.StatusBadRequest || !strings.Contains(answer, "INGEST_INVALID_FIELD") {
		t.Fatalf("ingest of a callback without id: %d %s", status, answer)
	}

	var kept []ingest.Rejection
	eventually(t, "the rejected request", func() bool {
		kept = decodeJSON[rejectedPage](t, c.ok("rejected", "list", "--json")).Items
		return len(kept) == 1
	})
	r := kept[0]
	if r.Body != noID || r.Source != "acme-maya" || r.Provider != "paymaya" || r.Error == nil || r.Error.Code != "INGEST_INVALID_FIELD" {
		t.Fatalf("rejection %+v", r)
	}
	seq := strconv.FormatUint(r.Seq, 10)

	out := c.ok("rejected", "list", "--source", "acme-maya")
	wantLines(t, out,
		`^SEQ\s+RECEIVED AT\s+PROVIDER\s+SOURCE\s+CODE\s+MESSAGE$`,
		`^`+seq+`\s+`+timeRE+`\s+paymaya\s+acme-maya\s+INGEST_INVALID_FIELD\s+\S.*\bid\b`)
	wantLines(t, c.ok("rejected", "list", "--source", "acme-paytia"), `^no rejected requests$`)

	out = c.ok("rejected", "show", seq)
	wantLines(t, out,
		`^seq:\s+`+seq+`$`,
		`^received at:\s+`+timeRE+`$`,
		`^provider:\s+paymaya$`,
		`^source:\s+acme-maya \(merchant acme\)$`,
		`^request:\s+POST /ingest/paymaya/acme-maya$`,
		`^rejected:\s+INGEST_INVALID_FIELD: `,
		`^\s+id:\s+\S`,
		`^headers \(credentials removed\):$`,
		`^  Content-Type: application/json$`,
		`^body \(28 bytes, as sent\):$`,
		`^`+regexp.QuoteMeta(noID)+`$`)
	if strings.Contains(out, "dev-maya-token") {
		t.Errorf("the source's token is shown:\n%s", out)
	}
	if got := decodeJSON[ingest.Rejection](t, c.ok("rejected", "show", seq, "--json")); got.Seq != r.Seq || got.Body != noID {
		t.Fatalf("show --json = %+v", got)
	}
	c.fails("ADMIN_NOT_FOUND: no rejected request 99999", "rejected", "show", "99999")

	// Today's parser refuses it too: exit 1 with the parser's reason.
	stdout, _, err := c.run("rejected", "reprocess", seq)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "still rejected: INGEST_INVALID_FIELD: ") || !strings.Contains(err.Error(), "\n  id: ") {
		t.Fatalf("reprocess: %v (exit %d)", err, exitCode(err))
	}
	wantLines(t, stdout, `^rejected request `+seq+` is still rejected by today's parser$`)
	stdout, _, err = c.run("rejected", "reprocess", seq, "--json")
	if res := decodeJSON[ingest.ReprocessResult](t, stdout); err == nil || exitCode(err) != 1 || res.Outcome != "still_rejected" || res.Error == nil || res.Seq != r.Seq {
		t.Fatalf("reprocess --json: %v, %+v", err, res)
	}
	c.fails("ADMIN_NOT_FOUND", "rejected", "reprocess", "99999")

	// A second one; all of the source's are reprocessed at once.
	if status, _ := postIngest(t, addr.Ingest, `{"status":"PAYMENT_FAILED","amount":"1"}`); status != http.StatusBadRequest {
		t.Fatalf("second bad callback: %d", status)
	}
	eventually(t, "two rejected requests", func() bool {
		kept = decodeJSON[rejectedPage](t, c.ok("rejected", "list", "--json")).Items
		return len(kept) == 2
	})
	seq2 := strconv.FormatUint(kept[1].Seq, 10)
	out = c.ok("rejected", "list", "--limit", "1")
	m := regexp.MustCompile(`more may be kept: hookrelay rejected list --cursor (\S+)`).FindStringSubmatch(out)
	if m == nil || !regexp.MustCompile(`(?m)^`+seq+`\s`).MatchString(out) || regexp.MustCompile(`(?m)^`+seq2+`\s`).MatchString(out) {
		t.Fatalf("--limit 1:\n%s", out)
	}
	if out = c.ok("rejected", "list", "--cursor", m[1]); !regexp.MustCompile(`(?m)^` + seq2 + `\s`).MatchString(out) {
		t.Fatalf("--cursor:\n%s", out)
	}

	stdout, _, err = c.run("rejected", "reprocess", "--all", "--source", "acme-maya")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "source acme-maya: 2 of 2 requests still rejected") {
		t.Fatalf("reprocess --all: %v (exit %d)", err, exitCode(err))
	}
	wantLines(t, stdout,
		`^source acme-maya: 2 requests reprocessed: 0 stored, 0 duplicate, 2 still rejected$`,
		`^  `+seq+` still rejected: INGEST_INVALID_FIELD: `,
		`^  `+seq2+` still rejected: INGEST_INVALID_FIELD: `)
	stdout, _, err = c.run("rejected", "reprocess", "--all", "--source", "acme-maya", "--json")
	sum := decodeJSON[admin.ReprocessSummary](t, stdout)
	if err == nil || sum.Source != "acme-maya" || sum.StillRejected != 2 || sum.Stored != 0 || len(sum.Results) != 2 {
		t.Fatalf("reprocess --all --json: %v, %+v", err, sum)
	}
	// Nothing kept for a source: nothing to do, and no error.
	wantLines(t, c.ok("rejected", "reprocess", "--all", "--source", "acme-paytia"), `^no rejected requests of source acme-paytia: nothing to reprocess$`)

	c.misused("rejected")
	c.misused("rejected", "frobnicate")
	c.misused("rejected", "show")
	c.misused("rejected", "show", "abc")
	c.misused("rejected", "reprocess")
	c.misused("rejected", "reprocess", "--all")
	c.misused("rejected", "reprocess", seq, "--source", "acme-maya")
	c.misused("rejected", "reprocess", seq, "--all", "--source", "acme-maya")
	c.misused("rejected", "list", "--limit", "0")
}
