package ingest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookrelay/hookrelay/ingest"
)

type fieldErr struct{ Field, Error string }

// TestBadRequests: each kind of bad request gets its own status and code in the error
// envelope. Authenticated bodies that fail to parse are kept, raw, in
// HOOKRELAY_REJECTED; everything refused before that stores nothing at all.
func TestBadRequests(t *testing.T) {
	twoMiB := `{"id":"x","status":"PAYMENT_SUCCESS","pad":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name   string
		req    request
		status int
		code   string
		fields []fieldErr // expected fieldErrors, when given
		kept   bool       // raw request kept in HOOKRELAY_REJECTED
	}{
		{name: "malformed JSON", req: maya(`{"id": "x", "status": `), status: 400, code: "INGEST_MALFORMED_BODY", kept: true},
		{name: "JSON array", req: maya(`[{"id":"x","status":"PAYMENT_SUCCESS"}]`), status: 400, code: "INGEST_MALFORMED_BODY", kept: true},
		{name: "missing PayMaya status", req: maya(`{"id":"5f1e","amount":"100","currency":"PHP"}`), status: 400, code: "INGEST_INVALID_FIELD",
			fields: []fieldErr{{"status", "missing"}}, kept: true},
		{name: "missing PayMaya id and status", req: maya(`{"amount":"100"}`), status: 400, code: "INGEST_INVALID_FIELD",
			fields: []fieldErr{{"id", "missing"}, {"status", "missing"}}, kept: true},
		{name: "missing Paytia reference_id", req: paytia("success=0&callhangup=customer"), status: 400, code: "INGEST_INVALID_FIELD",
			fields: []fieldErr{{"reference_id", "missing"}}, kept: true},
		{name: "invalid UTF-8 in JSON", req: maya("{\"id\":\"x\xff\",\"status\":\"PAYMENT_SUCCESS\"}"), status: 400, code: "INGEST_INVALID_ENCODING", kept: true},
		{name: "invalid UTF-8 in form", req: paytia("success=1&reference_id=r%FF"), status: 400, code: "INGEST_INVALID_ENCODING", kept: true},
		{name: "repeated form keys", req: paytia("success=1&reference_id=a&reference_id=b"), status: 400, code: "INGEST_REPEATED_FIELD",
			fields: []fieldErr{{"reference_id", "repeated"}}, kept: true},
		{name: "bad percent escape", req: paytia("success=1&reference_id=%zz"), status: 400, code: "INGEST_MALFORMED_BODY", kept: true},
		{name: "wrong content type", req: func() request { r := maya(successBody); r.contentType = "text/plain"; return r }(), status: 415, code: "INGEST_UNSUPPORTED_MEDIA_TYPE"},
		{name: "JSON to Paytia", req: func() request { r := paytia("success=1&reference_id=r"); r.contentType = "application/json"; return r }(), status: 415, code: "INGEST_UNSUPPORTED_MEDIA_TYPE"},
		{name: "no content type", req: func() request { r := maya(successBody); r.contentType = ""; return r }(), status: 415, code: "INGEST_UNSUPPORTED_MEDIA_TYPE"},
		{name: "2 MiB body", req: maya(twoMiB), status: 413, code: "INGEST_BODY_TOO_LARGE"},
		{name: "unknown provider", req: request{path: "/ingest/stripe/acme-maya", contentType: "application/json", body: successBody, token: mayaToken}, status: 404, code: "INGEST_UNKNOWN_PROVIDER"},
		{name: "unknown source", req: request{path: "/ingest/paymaya/nobody", contentType: "application/json", body: successBody, token: mayaToken}, status: 404, code: "INGEST_UNKNOWN_SOURCE"},
		{name: "source of another provider", req: request{path: "/ingest/paytia/acme-maya", contentType: "application/x-www-form-urlencoded", body: "success=1&reference_id=r", token: mayaToken}, status: 404, code: "INGEST_UNKNOWN_SOURCE"},
		{name: "no token", req: func() request { r := maya(successBody); r.auth = authNone; return r }(), status: 401, code: "INGEST_UNAUTHORIZED"},
		{name: "bad basic token", req: func() request { r := maya(successBody); r.token = "wrong-token-0123456789"; return r }(), status: 401, code: "INGEST_UNAUTHORIZED"},
		{name: "bad bearer token", req: func() request { r := maya(successBody); r.auth, r.token = authBearer, mayaToken+"x"; return r }(), status: 401, code: "INGEST_UNAUTHORIZED"},
		{name: "bad query token", req: func() request { r := paytia("success=1&reference_id=r"); r.auth, r.token = authQuery, "x"; return r }(), status: 401, code: "INGEST_UNAUTHORIZED"},
		{name: "another source's token", req: func() request { r := maya(successBody); r.token = paytiaToken; return r }(), status: 401, code: "INGEST_UNAUTHORIZED"},
		{name: "client outside the CIDRs", req: request{path: "/ingest/paymaya/fenced-maya", contentType: "application/json", body: successBody, token: mayaToken}, status: 403, code: "INGEST_FORBIDDEN_CLIENT"},
		{name: "PUT", req: func() request { r := maya(successBody); r.method = http.MethodPut; return r }(), status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "GET to PayMaya", req: func() request { r := maya(""); r.method = http.MethodGet; return r }(), status: 405, code: "METHOD_NOT_ALLOWED"},
		{name: "no such route", req: request{path: "/ingest/paymaya", token: mayaToken}, status: 404, code: "NOT_FOUND"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			resp := h.do(tc.req)
			e := refused(t, resp, tc.status, tc.code)
			if tc.fields != nil {
				var got []fieldErr
				for _, f := range e.Error.FieldErrors {
					got = append(got, fieldErr{f.Field, f.Error})
				}
				if diff := cmp.Diff(tc.fields, got); diff != "" {
					t.Errorf("fieldErrors (-want +got):\n%s", diff)
				}
				if len(e.Error.Details) != len(tc.fields) {
					t.Errorf("details = %q, want one per bad field", e.Error.Details)
				}
			}
			if tc.status == 405 && resp.Header.Get("Allow") == "" {
				t.Errorf("405 without an Allow header")
			}
			if n := h.streamMsgs(h.nats.Topo.EventsStream()); n != 0 {
				t.Errorf("events stream holds %d messages, want 0", n)
			}
			want := uint64(0)
			if tc.kept {
				want = 1
			}
			if n := h.streamMsgs(h.nats.Topo.RejectedStream()); n != want {
				t.Fatalf("rejected stream holds %d messages, want %d", n, want)
			}
			if tc.kept {
				h.checkKept(t, tc.req, tc.code)
			}
		})
	}
}

// checkKept reads the rejected request back and checks it can be re-ingested: the body
// byte for byte, the source, the error, and no credential anywhere.
func (h *harness) checkKept(t *testing.T, req request, code string) {
	t.Helper()
	provider := strings.Split(req.path, "/")[2]
	source := strings.Split(req.path, "/")[3]
	msg := h.lastMsg(h.nats.Topo.RejectedStream(), h.nats.Topo.RejectedSubject(provider, source))
	if string(msg.Data) != req.body {
		t.Errorf("kept body = %q, want %q", msg.Data, req.body)
	}
	var meta ingest.RejectedRequest
	if err := json.Unmarshal([]byte(msg.Header.Get(ingest.RejectedHeader)), &meta); err != nil {
		t.Fatalf("rejected metadata: %v", err)
	}
	if meta.Source != source || meta.Provider != provider || meta.Merchant != "acme" {
		t.Errorf("kept source = %s/%s/%s", meta.Provider, meta.Source, meta.Merchant)
	}
	if meta.Error == nil || string(meta.Error.Code) != code {
		t.Errorf("kept error = %+v, want code %s", meta.Error, code)
	}
	if !meta.ReceivedAt.Equal(receivedAt) {
		t.Errorf("kept received_at = %v, want %v", meta.ReceivedAt, receivedAt)
	}
	if meta.Method != http.MethodPost || meta.Path != req.path {
		t.Errorf("kept request line = %s %s", meta.Method, meta.Path)
	}
	if meta.Header["Content-Type"] == nil {
		t.Errorf("kept headers lack Content-Type: %v", meta.Header)
	}
	raw := msg.Header.Get(ingest.RejectedHeader)
	for _, secret := range []string{mayaToken, paytiaToken, "Authorization"} {
		if strings.Contains(raw, secret) {
			t.Errorf("kept metadata contains %q: %s", secret, raw)
		}
	}
}

// TestRejectedCredentialsStripped: a Paytia GET with the token in its query and a bad
// body keeps the query without the token; a provider retrying the same bad request is
// kept once.
func TestRejectedCredentialsStripped(t *testing.T) {
	h := newHarness(t)
	q := url.Values{"success": {"0"}, "callhangup": {"customer"}}
	get := request{method: http.MethodGet, path: "/ingest/paytia/acme-paytia", query: q, auth: authQuery, token: paytiaToken}
	for range 3 {
		refused(t, h.do(get), 400, "INGEST_INVALID_FIELD")
	}
	if n := h.streamMsgs(h.nats.Topo.RejectedStream()); n != 1 {
		t.Fatalf("rejected stream holds %d after three identical retries, want 1", n)
	}
	msg := h.lastMsg(h.nats.Topo.RejectedStream(), h.nats.Topo.RejectedSubject("paytia", "acme-paytia"))
	var meta ingest.RejectedRequest
	if err := json.Unmarshal([]byte(msg.Header.Get(ingest.RejectedHeader)), &meta); err != nil {
		t.Fatal(err)
	}
	kept, err := url.ParseQuery(meta.Query)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(q, kept); diff != "" {
		t.Errorf("kept query (-want +got):\n%s", diff)
	}
	if strings.Contains(string(msg.Header.Get(ingest.RejectedHeader)), paytiaToken) {
		t.Errorf("the token was kept")
	}
}

// TestCIDRAllowed: a source fenced to loopback accepts the test client.
func TestCIDRAllowed(t *testing.T) {
	h := newHarness(t)
	r := maya(successBody)
	r.path = "/ingest/paymaya/local-maya"
	accepted(t, h.do(r))
}

// TestTruncatedBody: a client that promises more body than it sends and stops is told
// so (it may still be reading), and nothing is stored or kept: there is no whole
// request to keep.
func TestTruncatedBody(t *testing.T) {
	h := newHarness(t)
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /ingest/paymaya/acme-maya HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+
		"Authorization: Bearer %s\r\nContent-Length: 500\r\n\r\n{\"id\":\"5f1e\"", mayaToken)
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	refused(t, resp, http.StatusBadRequest, "INGEST_READ_FAILED")
	if n := h.streamMsgs(h.nats.Topo.EventsStream()) + h.streamMsgs(h.nats.Topo.RejectedStream()); n != 0 {
		t.Errorf("%d messages stored for a truncated request, want 0", n)
	}
}

// TestPreviousToken: during a rotation a source accepts its token and its previous
// one, in each of the three forms; any other token is still refused, and nothing is
// stored for it. A previous token shorter than 16 characters is a config error.
func TestPreviousToken(t *testing.T) {
	const newToken, oldToken = "new-maya-token-0123456789", "old-maya-token-0123456789"
	h := newHarness(t, withConfig(func(c *ingest.Config) {
		c.Sources[0].Token, c.Sources[0].PreviousToken = newToken, oldToken
	}))
	n := 0
	for _, tok := range []string{newToken, oldToken} {
		for _, a := range []auth{authBasic, authBearer, authQuery} {
			n++
			r := maya(strings.Replace(successBody, `"id":"`, fmt.Sprintf(`"id":"rot%d-`, n), 1))
			r.auth, r.token = a, tok
			accepted(t, h.do(r))
		}
	}
	for _, tok := range []string{mayaToken, oldToken + "x", newToken[:len(newToken)-1]} {
		r := maya(successBody)
		r.auth, r.token = authBearer, tok
		refused(t, h.do(r), http.StatusUnauthorized, "INGEST_UNAUTHORIZED")
	}

	cfg := ingest.Config{Sources: []ingest.Source{{ID: "a", Provider: "paymaya", Merchant: "acme", Token: newToken, PreviousToken: "short"}}}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "sources[0].previous_token") {
		t.Errorf("Validate with a short previous token = %v, want an error naming sources[0].previous_token", err)
	}
}

// TestTrustedProxies: behind a trusted load balancer a source's allow_cidrs are matched
// against the nearest untrusted address in X-Forwarded-For (read from the right, so a
// client cannot pass by writing an allowed address on the left); from an untrusted
// peer, or with no trusted proxies, the header is ignored.
func TestTrustedProxies(t *testing.T) {
	behind := newHarness(t, withConfig(func(c *ingest.Config) {
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
	}))
	direct := newHarness(t)
	n := 0
	post := func(h *harness, xff ...string) *http.Response {
		n++
		r := maya(strings.Replace(successBody, `"id":"`, fmt.Sprintf(`"id":"xff%d-`, n), 1))
		r.path = "/ingest/paymaya/fenced-maya" // allows 10.0.0.0/8 and fd00::/8 only
		if len(xff) > 0 {
			r.header = http.Header{"X-Forwarded-For": xff}
		}
		return h.do(r)
	}
	for _, tc := range []struct {
		name  string
		h     *harness
		xff   []string
		allow bool
	}{
		{"client in the allow-list, through the proxy", behind, []string{"10.1.2.3"}, true},
		{"IPv6 client", behind, []string{"fd00::7"}, true},
		{"through two trusted proxies", behind, []string{"10.1.2.3, 192.168.1.1"}, true},
		{"two header lines", behind, []string{"10.1.2.3", "192.168.1.1"}, true},
		{"client outside the list", behind, []string{"203.0.113.9"}, false},
		{"spoofed allowed address on the left", behind, []string{"10.1.2.3, 203.0.113.9"}, false},
		{"unreadable hop", behind, []string{"10.1.2.3, not-an-ip"}, false},
		{"no header: the proxy itself", behind, nil, false},
		{"header ignored without trusted proxies", direct, []string{"10.1.2.3"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(tc.h, tc.xff...)
			if tc.allow {
				accepted(t, resp)
			} else {
				refused(t, resp, http.StatusForbidden, "INGEST_FORBIDDEN_CLIENT")
			}
		})
	}
}

// recordingObserver keeps what the handler reports to its ingest.Observer.
type recordingObserver struct {
	mu        sync.Mutex
	outcomes  []string
	pubFailed []string
}

func (o *recordingObserver) IngestRequest(_, _, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes = append(o.outcomes, outcome)
}

func (o *recordingObserver) PublishFailed(stream string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.pubFailed = append(o.pubFailed, stream)
}

func (o *recordingObserver) seen() (outcomes, pubFailed []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.outcomes), slices.Clone(o.pubFailed)
}

// TestRejectedProviderHangsUp: a provider that hangs up while its bad request is being
// kept does not cut the keeping short. The request is stored, and the handler
// records the 400 it would have answered, not a storage failure (with the request's
// own context, the wait for the PubAck ended with the connection: a 503, a
// PublishFailed on HOOKRELAY_REJECTED and a "publish failed" warning, for a request
// that was kept).
func TestRejectedProviderHangsUp(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t,
		withConfig(func(c *ingest.Config) { c.Observer = obs }),
		withPublisher(func(real jetstream.JetStream) ingest.Publisher {
			return publisherFunc(func(ctx context.Context, m *nats.Msg, o ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
				time.Sleep(300 * time.Millisecond) // a slow store: the provider gives up first
				return real.PublishMsg(ctx, m, o...)
			})
		}))
	r := maya(`{"id": "5f1e", "amount":`) // malformed: kept in HOOKRELAY_REJECTED
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", r.contentType)
	req.Header.Set("Authorization", "Bearer "+r.token)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the provider got an answer (%s) before it hung up; the store is not slow enough", resp.Status)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		outcomes, _ := obs.seen()
		if len(outcomes) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the handler never finished the request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	outcomes, pubFailed := obs.seen()
	if want := []string{"INGEST_MALFORMED_BODY"}; !slices.Equal(outcomes, want) {
		t.Errorf("outcomes = %q, want %q", outcomes, want)
	}
	if len(pubFailed) != 0 {
		t.Errorf("PublishFailed(%q) for a request that was kept", pubFailed)
	}
	if n := h.streamMsgs(h.nats.Topo.RejectedStream()); n != 1 {
		t.Errorf("rejected stream holds %d messages, want 1", n)
	}
}
