package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/deliver"
)

const demoAdminToken = "dev-admin-token-change-me"

// cli runs the hookrelay command line in-process against the admin API at addr.
type cli struct {
	t    *testing.T
	addr string // host:port of the admin listener
}

// run runs hookrelay with args followed by --admin-url; it returns stdout, stderr and
// run's error.
func (c cli) run(args ...string) (string, string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args = append(args, "--admin-url", "http://"+c.addr)
	err := run(ctx, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// ok runs args and fails the test unless they succeed; it returns stdout.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("hookrelay %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// fails runs args, wants an error of exit code 1 whose text has want, and returns it.
func (c cli) fails(want string, args ...string) error {
	c.t.Helper()
	out, _, err := c.run(args...)
	if err == nil {
		c.t.Fatalf("hookrelay %s succeeded, want an error with %q; stdout:\n%s", strings.Join(args, " "), want, out)
	}
	if !strings.Contains(err.Error(), want) || exitCode(err) != 1 {
		c.t.Fatalf("hookrelay %s: error %q (exit %d), want exit 1 and %q", strings.Join(args, " "), err, exitCode(err), want)
	}
	return err
}

// misused runs args and wants a usage error (exit 2).
func (c cli) misused(args ...string) {
	c.t.Helper()
	_, _, err := c.run(args...)
	var ue usageError
	if !errors.As(err, &ue) || exitCode(err) != 2 {
		c.t.Fatalf("hookrelay %s: error %v (exit %d), want a usage error", strings.Join(args, " "), err, exitCode(err))
	}
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, s)
	}
	return v
}

// wantLines checks that out has a line matching each pattern (regexps, in order).
func wantLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for i < len(lines) && !re.MatchString(lines[i]) {
			i++
		}
		if i == len(lines) {
			t.Fatalf("no line matching %q (in order) in:\n%s", p, out)
		}
		i++
	}
}

func TestCLIEndpoints(t *testing.T) {
	addr := startServe(t, nil)
	t.Setenv(envAdminToken, demoAdminToken)
	c := cli{t, addr.Admin}

	out := c.ok("endpoints", "list")
	wantLines(t, out,
		`^ID\s+MERCHANT\s+ENABLED\s+URL\s+TYPES\s+MAX IN FLIGHT$`,
		`^acme-orders\s+acme\s+yes\s+http://127\.0\.0\.1:9000/hooks\s+payment\.\*\s+\d+`)
	list := decodeJSON[struct{ Items []admin.EndpointView }](t, c.ok("endpoints", "list", "--json"))
	if len(list.Items) != 1 || list.Items[0].ID != "acme-orders" || list.Items[0].Secret != "" {
		t.Fatalf("list --json = %+v", list)
	}

	// Flags may come after the action's arguments as well as before.
	out = c.ok("endpoints", "create", "--id", "cli-test", "--merchant", "acme", "--url", "https://merchant.example/hooks",
		"--types", "payment.*, refund.failed", "--max-in-flight", "3", "--description", "made by the CLI test")
	wantLines(t, out, `^endpoint cli-test created$`, `^id:\s+cli-test$`, `^types:\s+payment\.\*,refund\.failed$`,
		`^max in flight:\s+3$`, `^secret:\s+whsec_\S+ \(shown only now`)
	created := decodeJSON[admin.EndpointView](t, c.ok("endpoints", "show", "cli-test", "--json"))
	if !created.Enabled || created.MaxInFlight != 3 || !slices.Equal(created.Types, []string{"payment.*", "refund.failed"}) || created.Secret != "" {
		t.Fatalf("created = %+v", created)
	}

	c.ok("endpoints", "disable", "cli-test")
	if e := decodeJSON[admin.EndpointView](t, c.ok("endpoints", "show", "--json", "cli-test")); e.Enabled {
		t.Fatal("still enabled after disable")
	}
	wantLines(t, c.ok("endpoints", "show", "cli-test"), `^enabled:\s+no `)
	c.ok("endpoints", "enable", "cli-test")
	if e := decodeJSON[admin.EndpointView](t, c.ok("endpoints", "show", "cli-test", "--json")); !e.Enabled {
		t.Fatal("still disabled after enable")
	}

	out = c.ok("endpoints", "rotate-secret", "cli-test", "--grace", "1h")
	wantLines(t, out, `^endpoint:\s+cli-test$`, `^new secret:\s+whsec_\S+ `, `^old secret:\s+also signs until \d{4}-`)
	rotated := decodeJSON[admin.EndpointView](t, c.ok("endpoints", "rotate-secret", "cli-test", "--grace", "0s", "--json"))
	if !strings.HasPrefix(rotated.Secret, "whsec_") || rotated.PreviousSecretUntil != nil {
		t.Fatalf("rotate --grace 0s = %+v", rotated)
	}

	wantLines(t, c.ok("endpoints", "delete", "cli-test"), `^endpoint cli-test deleted`)
	err := c.fails("ADMIN_NOT_FOUND: no endpoint cli-test", "endpoints", "show", "cli-test")
	var ae *apiError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Fatalf("show of a deleted endpoint: %#v", err)
	}

	// The API's field errors come one per line.
	err = c.fails("ADMIN_INVALID_FIELD", "endpoints", "create", "--id", "cli-bad", "--merchant", "acme", "--url", "ftp://x", "--types", "Payment")
	if !strings.Contains(err.Error(), "\n  url: ") || !strings.Contains(err.Error(), "\n  types[0]: ") {
		t.Fatalf("field errors: %q", err)
	}

	// Bad usage is exit 2 and never reaches the API.
	c.misused("endpoints")
	c.misused("endpoints", "frobnicate")
	c.misused("endpoints", "show")
	c.misused("endpoints", "show", "a", "b")
	c.misused("endpoints", "create", "--id", "x", "--merchant", "acme")
	c.misused("endpoints", "list", "--no-such-flag")
	c.misused("dlq", "show", "twelve")
	c.misused("dlq", "replay")
	c.misused("dlq", "replay", "12", "--dry-run")
	c.misused("dlq", "replay", "12", "--all")
	c.misused("dlq", "list", "--state", "dead")
	c.misused("dlq", "list", "--since", "yesterday")

	// Nothing reachable at the URL: say which.
	err = run(context.Background(), []string{"endpoints", "list", "--admin-url", "http://127.0.0.1:1"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "could not reach the admin API at http://127.0.0.1:1") {
		t.Fatalf("unreachable: %v", err)
	}

	t.Setenv(envAdminToken, "not-the-admin-token")
	err = c.fails("ADMIN_UNAUTHORIZED", "endpoints", "list")
	if !strings.Contains(err.Error(), envAdminToken) {
		t.Errorf("unauthorized does not point at %s: %q", envAdminToken, err)
	}
	t.Setenv(envAdminToken, "")
	_, _, err = c.run("dlq", "list")
	if err == nil || !strings.Contains(err.Error(), "set "+envAdminToken) {
		t.Fatalf("no token: %v", err)
	}
}

// sink is a merchant endpoint answering status, recording each delivery's webhook-id.
type sink struct {
	*httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	ids    []string
}

func newSink(t *testing.T, status int) *sink {
	s := &sink{}
	s.status.Store(int32(status))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.ids = append(s.ids, r.Header.Get("webhook-id"))
		s.mu.Unlock()
		w.WriteHeader(int(s.status.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

// received counts the deliveries of event id.
func (s *sink) received(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, got := range s.ids {
		if got == id {
			n++
		}
	}
	return n
}

// eventually polls cond every 20ms until it holds, failing the test after 15s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// allowLoopback lets deliveries reach the test's merchant sinks on 127.0.0.1 (the
// SSRF guard blocks loopback otherwise).
func allowLoopback(c *Config) {
	if !slices.Contains(c.Delivery.AllowCIDRs, "127.0.0.0/8") {
		c.Delivery.AllowCIDRs = append(c.Delivery.AllowCIDRs, "127.0.0.0/8")
	}
}

// postIngest posts body to the PayMaya source acme-maya; it returns the status and
// the answer.
func postIngest(t *testing.T, ingestAddr, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+ingestAddr+"/ingest/paymaya/acme-maya", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("", "dev-maya-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// samplePayMaya is the PayMaya sample callback (the parser's golden input).
func samplePayMaya(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../parse/testdata/paymaya/webhook-payment-success.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postPayMaya posts body as the demo PayMaya source and requires a 200.
func postPayMaya(t *testing.T, ingestAddr string, body []byte) {
	t.Helper()
	if status, answer := postIngest(t, ingestAddr, string(body)); status != http.StatusOK {
		t.Fatalf("ingest answered %d: %s", status, answer)
	}
}

// postSamplePair posts two PayMaya callbacks for acme: the sample, then a later update
// of the same payment.
func postSamplePair(t *testing.T, ingestAddr string) {
	t.Helper()
	first := samplePayMaya(t)
	second := bytes.Replace(first, []byte(`"updatedAt": "2018-09-26T08:39:17Z"`), []byte(`"updatedAt": "2018-09-26T08:41:00Z"`), 1)
	if bytes.Equal(first, second) {
		t.Fatal("the sample changed: no updatedAt to vary")
	}
	postPayMaya(t, ingestAddr, first)
	postPayMaya(t, ingestAddr, second)
}

type letterPage struct {
	Items      []deliver.StoredLetter `json:"items"`
	NextCursor string                 `json:"next_cursor"`
}

func TestCLIDeadLetters(t *testing.T) {
	merchant := newSink(t, http.StatusGone) // 410: a dead letter at the first attempt
	addr := startServe(t, allowLoopback)
	t.Setenv(envAdminToken, demoAdminToken)
	c := cli{t, addr.Admin}
	c.ok("endpoints", "create", "--id", "cli-sink", "--merchant", "acme", "--url", merchant.URL+"/hooks", "--types", "payment.*")
	postSamplePair(t, addr.Ingest)

	var letters []deliver.StoredLetter
	eventually(t, "two dead letters for cli-sink", func() bool {
		letters = decodeJSON[letterPage](t, c.ok("dlq", "list", "--endpoint", "cli-sink", "--json")).Items
		return len(letters) == 2
	})
	if letters[0].EventID == letters[1].EventID {
		t.Fatalf("both letters are of event %s", letters[0].EventID)
	}
	one, two := letters[0], letters[1]
	seq := strconv.FormatUint(one.Seq, 10)
	for _, l := range letters {
		if l.State != "open" || l.Endpoint.ID != "cli-sink" || len(l.Attempts) != 1 || l.Attempts[0].Status != http.StatusGone {
			t.Fatalf("letter %+v", l)
		}
	}

	out := c.ok("dlq", "list", "--endpoint", "cli-sink")
	wantLines(t, out,
		`^SEQ\s+STATE\s+DEAD AT\s+ENDPOINT\s+EVENT\s+TYPE\s+ATTEMPTS\s+REASON$`,
		`^`+seq+`\s+open\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+cli-sink\s+`+one.EventID+`\s+payment\.succeeded\s+1\s+\S`,
		`^`+strconv.FormatUint(two.Seq, 10)+`\s+open\s+.*`+two.EventID)
	if strings.Contains(out, "more may match") {
		t.Errorf("all letters shown, yet:\n%s", out)
	}

	// --limit stops early and says how to go on; the cursor it gives does.
	out = c.ok("dlq", "list", "--endpoint", "cli-sink", "--limit", "1")
	m := regexp.MustCompile(`more may match: hookrelay dlq list --endpoint cli-sink --cursor (\S+)`).FindStringSubmatch(out)
	if m == nil || strings.Contains(out, two.EventID) {
		t.Fatalf("--limit 1:\n%s", out)
	}
	if out = c.ok("dlq", "list", "--endpoint", "cli-sink", "--cursor", m[1]); !strings.Contains(out, two.EventID) || strings.Contains(out, one.EventID) {
		t.Fatalf("--cursor:\n%s", out)
	}

	out = c.ok("dlq", "show", seq)
	wantLines(t, out,
		`^seq:\s+`+seq+`$`,
		`^state:\s+open \(replay it with: hookrelay dlq replay `+seq+`\)$`,
		`^event:\s+`+one.EventID+` \(payment\.succeeded\)$`,
		`^endpoint:\s+cli-sink \(merchant acme\)$`,
		`^reason:\s+\S`,
		`^attempts \(1\):$`,
		`^\s+#\s+START\s+DURATION\s+STATUS\s+OUTCOME\s+ERROR$`,
		`^\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ\s+\d+ms\s+410\s+dead\s+`)
	c.fails("ADMIN_NOT_FOUND: no dead letter 99999", "dlq", "show", "99999")

	out = c.ok("dlq", "replay", "--all", "--endpoint", "cli-sink", "--dry-run")
	wantLines(t, out, `^2 open dead letters match \(endpoint cli-sink\); dry run, nothing replayed$`)
	if dry := decodeJSON[admin.DryRun](t, c.ok("dlq", "replay", "--all", "--endpoint", "cli-sink", "--dry-run", "--json")); !dry.DryRun || dry.Matched != 2 {
		t.Fatalf("dry run --json = %+v", dry)
	}
	// Without --yes and no terminal to ask, a bulk replay refuses (and replays nothing).
	confirmInput = func() (io.Reader, bool) { return strings.NewReader(""), false }
	t.Cleanup(func() { confirmInput = func() (io.Reader, bool) { return os.Stdin, isCharDevice(os.Stdin) } })
	c.misused("dlq", "replay", "--all", "--endpoint", "cli-sink")

	// The merchant is back: replay the first letter; the same event comes again.
	merchant.status.Store(http.StatusOK)
	wantLines(t, c.ok("dlq", "replay", seq), `^dead letter `+seq+` replayed: delivery \S+ of event `+one.EventID)
	eventually(t, "the replayed delivery", func() bool { return merchant.received(one.EventID) == 2 })
	c.fails("ADMIN_ALREADY_REPLAYED", "dlq", "replay", seq)
	if l := decodeJSON[deliver.StoredLetter](t, c.ok("dlq", "show", seq, "--json")); l.State != "replayed" {
		t.Fatalf("state after replay = %q", l.State)
	}

	// A bulk replay of what is still open (the second letter), drawing its progress as
	// on a terminal.
	stderrIsTerminal = func() bool { return true }
	t.Cleanup(func() { stderrIsTerminal = func() bool { return isCharDevice(os.Stderr) } })
	stdout, stderr, err := c.run("dlq", "replay", "--all", "--endpoint", "cli-sink", "--yes")
	if err != nil {
		t.Fatalf("replay --all: %v\n%s\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "\r[") || !strings.Contains(stderr, "] 1/1 replayed 1 already 0 failed 0") {
		t.Errorf("no progress bar on stderr: %q", stderr)
	}
	wantLines(t, stdout,
		`^1 open dead letter matches \(endpoint cli-sink\)$`,
		`^replay rpl_[0-9a-f]+ done in \S+: 1 matched, 1 replayed, 0 already replayed, 0 failed$`)
	eventually(t, "the bulk-replayed delivery", func() bool { return merchant.received(two.EventID) == 2 })

	// Not a terminal: nothing on stderr; --json prints the dry run when nothing matches.
	stderrIsTerminal = func() bool { return false }
	stdout, stderr, err = c.run("dlq", "replay", "--all", "--endpoint", "cli-sink", "--yes", "--json")
	if err != nil || stderr != "" {
		t.Fatalf("replay --all with nothing open: %v, stderr %q", err, stderr)
	}
	if dry := decodeJSON[admin.DryRun](t, stdout); dry.Matched != 0 {
		t.Fatalf("nothing open, yet %+v", dry)
	}
	if open := decodeJSON[letterPage](t, c.ok("dlq", "list", "--endpoint", "cli-sink", "--state", "open", "--json")); len(open.Items) != 0 {
		t.Fatalf("open letters after replaying all: %+v", open.Items)
	}
}

func TestCLIHelpers(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 3120: "3,120", 10000: "10,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := commas(n); got != want {
			t.Errorf("commas(%d) = %q, want %q", n, got, want)
		}
	}
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for in, want := range map[string]string{
		"2026-11-21T12:00:00+02:00": "2026-11-21T10:00:00Z",
		"2026-11-20":                "2026-11-20T00:00:00Z",
		"2h":                        "2026-11-21T08:00:00Z",
		"":                          "",
	} {
		if got, err := timeFlag("since", in, now); err != nil || got != want {
			t.Errorf("timeFlag(%q) = %q, %v; want %q", in, got, err, want)
		}
	}

	defer func(saved func() (io.Reader, bool)) { confirmInput = saved }(confirmInput)
	for _, tc := range []struct {
		input       string
		interactive bool
		want        string // "" = confirmed
	}{
		{"y\n", true, ""},
		{" YES \nmore", true, ""},
		{"n\n", true, "not confirmed"},
		{"\n", true, "not confirmed"},
		{"", true, "add --yes"},
		{"y\n", false, "add --yes"},
	} {
		confirmInput = func() (io.Reader, bool) { return strings.NewReader(tc.input), tc.interactive }
		var question bytes.Buffer
		err := confirm(&question, "Replay 3 dead letters?")
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("confirm with %q (interactive %v) = %v, want %q", tc.input, tc.interactive, err, tc.want)
		}
		if tc.interactive && !strings.HasPrefix(question.String(), "Replay 3 dead letters? [y/N] ") {
			t.Errorf("question = %q", question.String())
		}
	}

	var buf bytes.Buffer
	p := progressBar{w: &buf, on: true, total: 10_000}
	p.draw(admin.ReplayJob{Matched: 3120, Replayed: 3000, AlreadyReplayed: 120})
	p.draw(admin.ReplayJob{Matched: 10_000, Replayed: 9880, AlreadyReplayed: 120})
	p.end()
	want := "\r[######--------------] 3,120/10,000 replayed 3,000 already 120 failed 0" +
		"\r[####################] 10,000/10,000 replayed 9,880 already 120 failed 0\n"
	if buf.String() != want {
		t.Errorf("progress:\n got %q\nwant %q", buf.String(), want)
	}
	buf.Reset()
	off := progressBar{w: &buf, total: 5}
	off.draw(admin.ReplayJob{Matched: 1})
	off.end()
	if buf.Len() != 0 {
		t.Errorf("bar drawn when off: %q", buf.String())
	}
}
