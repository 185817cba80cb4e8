package main

// TestLogLeak: SPEC §10 says card numbers, CVC, phone numbers, e-mail addresses,
// names, tokens, secrets and signatures never appear in a log line. It runs the real
// serve wiring with a debug-level logger writing both JSON (production) and console
// (dev) into buffers, pushes fixtures full of planted sensitive values through
// ingest (accepted, duplicate, rejected, refused), delivery (2xx, 5xx echoing the
// body, 410, timeouts, redirect, refused connection, SSRF block, partial body,
// retries, dead letters, a held endpoint) and the admin API (wrong tokens, endpoint
// create/update/rotate, replay, reprocess, redrive), then searches every log line for
// each planted value and for anything shaped like a card number, an e-mail, a
// Philippine mobile number, a webhook secret or signature, or a credential.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/hookrelay/hookrelay/configs"
)

// llPlant is one sensitive value planted in the fixtures.
type llPlant struct {
	cat   string // card number, CVC, e-mail, phone, name, token, secret, signature
	what  string // where it was planted
	value string
	// short values (CVCs) are matched only standing alone, not inside longer numbers.
	short bool
}

// llPlants collects the planted values; add is safe for the merchants' goroutines.
type llPlants struct {
	mu   sync.Mutex
	list []llPlant
}

func (p *llPlants) add(cat, what, value string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, llPlant{cat: cat, what: what, value: value})
	return value
}

func (p *llPlants) addShort(cat, what, value string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, llPlant{cat: cat, what: what, value: value, short: true})
	return value
}

func (p *llPlants) all() []llPlant {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list)
}

// llBuffer is a log sink safe for concurrent writes.
type llBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *llBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *llBuffer) Sync() error { return nil }

func (b *llBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// llLogger logs everything from debug up, as production's JSON into jsonOut and as
// dev's console format (newLogger's encoder settings) into consoleOut.
func llLogger(jsonOut, consoleOut *llBuffer) *zap.Logger {
	cc := zap.NewDevelopmentEncoderConfig()
	cc.EncodeLevel = zapcore.CapitalColorLevelEncoder
	core := zapcore.NewTee(
		zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), jsonOut, zapcore.DebugLevel),
		zapcore.NewCore(zapcore.NewConsoleEncoder(cc), consoleOut, zapcore.DebugLevel),
	)
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(consoleOut))
}

// llMerchant is a merchant endpoint's test server that remembers what it got.
type llMerchant struct {
	srv  *httptest.Server
	mu   sync.Mutex
	ids  map[string]int // webhook-id -> requests
	hits int
	hdrs []http.Header
}

func llNewMerchant(respond func(w http.ResponseWriter, r *http.Request, body []byte)) *llMerchant {
	m := &llMerchant{ids: map[string]int{}}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.hits++
		m.ids[r.Header.Get("webhook-id")]++
		m.hdrs = append(m.hdrs, r.Header.Clone())
		m.mu.Unlock()
		respond(w, r, body)
	}))
	return m
}

func (m *llMerchant) got(id string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ids[id]
}

func (m *llMerchant) headers() []http.Header {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.hdrs)
}

// llLuhnValid reports whether digits passes the Luhn check.
func llLuhnValid(digits string) bool {
	sum, double := 0, false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return len(digits) > 0 && sum%10 == 0
}

// llLuhnComplete appends the check digit that makes prefix Luhn-valid.
func llLuhnComplete(prefix string) string {
	for c := '0'; c <= '9'; c++ {
		if llLuhnValid(prefix + string(c)) {
			return prefix + string(c)
		}
	}
	panic("unreachable")
}

var (
	// llDigitRun is a run of digits, single spaces, '+' (a form-encoded space), "%20"
	// or dashes allowed between them.
	llDigitRun = regexp.MustCompile(`\d(?:(?:[ +\-]|%20)?\d)*`)
	llEmail    = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+(?:@|%40|\\u0040)[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}`)
	// llPhone: Philippine mobile numbers, +63 9xx xxx xxxx or 09xx xxx xxxx.
	llPhone = regexp.MustCompile(`(?:^|[^0-9])((?:\+|%2B|00)?63[ \-]?9\d{2}[ \-]?\d{3}[ \-]?\d{4}|09\d{2}[ \-]?\d{3}[ \-]?\d{4})(?:[^0-9]|$)`)
	// llShapes are credentials recognisable by their shape whatever their value.
	llShapes = map[string]*regexp.Regexp{
		"webhook secret":    regexp.MustCompile(`whsec_[A-Za-z0-9+/=_\-]{8,}`),
		"webhook signature": regexp.MustCompile(`v1,[A-Za-z0-9+/]{40,}={0,2}`),
		"bearer credential": regexp.MustCompile(`(?i)bearer\s+[A-Za-z0-9._~+/=\-]{8,}`),
		"basic credential":  regexp.MustCompile(`(?i)basic\s+[A-Za-z0-9+/]{8,}={0,2}`),
	}
)

// llVariants are the forms a value may take in a log line: as is, URL-encoded and
// JSON-escaped.
func llVariants(v string) []string {
	out := []string{v}
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(url.QueryEscape(v))
	add(url.PathEscape(v))
	if b, err := json.Marshal(v); err == nil {
		add(strings.Trim(string(b), `"`))
	}
	q := strconv.Quote(v)
	add(q[1 : len(q)-1])
	return out
}

// llFinding is one sensitive thing found in one log line.
type llFinding struct {
	kind string // category and how it was found
	line string
}

// llScan searches text line by line for the planted values and for sensitive shapes.
func llScan(text string, plants []llPlant) []llFinding {
	type matcher struct {
		kind  string
		match func(string) bool
	}
	var ms []matcher
	for _, p := range plants {
		kind := fmt.Sprintf("%s (%s) %q", p.cat, p.what, p.value)
		if p.short {
			re := regexp.MustCompile(`(?:^|[^0-9.])` + regexp.QuoteMeta(p.value) + `(?:[^0-9.a-zA-Zµ]|$)`)
			ms = append(ms, matcher{kind, re.MatchString})
			continue
		}
		vs := llVariants(p.value)
		ms = append(ms, matcher{kind, func(line string) bool {
			for _, v := range vs {
				if strings.Contains(line, v) {
					return true
				}
			}
			return false
		}})
	}
	var out []llFinding
	for line := range strings.SplitSeq(text, "\n") {
		if line == "" {
			continue
		}
		for _, m := range ms {
			if m.match(line) {
				out = append(out, llFinding{"planted " + m.kind, line})
			}
		}
		for _, run := range llDigitRun.FindAllString(line, -1) {
			digits := strings.Map(func(r rune) rune {
				if r >= '0' && r <= '9' {
					return r
				}
				return -1
			}, strings.ReplaceAll(run, "%20", " "))
			if len(digits) >= 13 && len(digits) <= 19 && llLuhnValid(digits) {
				out = append(out, llFinding{fmt.Sprintf("card number (Luhn-valid %d-digit run %q)", len(digits), run), line})
			}
		}
		for _, e := range llEmail.FindAllString(line, -1) {
			out = append(out, llFinding{fmt.Sprintf("e-mail (shape %q)", e), line})
		}
		for _, m := range llPhone.FindAllStringSubmatch(line, -1) {
			out = append(out, llFinding{fmt.Sprintf("phone (shape %q)", m[1]), line})
		}
		for name, re := range llShapes {
			if s := re.FindString(line); s != "" {
				out = append(out, llFinding{fmt.Sprintf("%s (shape %q)", name, s), line})
			}
		}
	}
	return out
}

// llHTTP is the test's client: requests to hookrelay.
type llHTTP struct {
	t *testing.T
	c *http.Client
}

// do sends the request and returns the status and body; setup may add headers.
func (h llHTTP) do(method, rawURL, ctype string, body []byte, setup func(*http.Request)) (int, []byte) {
	h.t.Helper()
	req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if setup != nil {
		setup(req)
	}
	resp, err := h.c.Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func llJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// llSeed reads a parse/testdata PayMaya sample as a generic object.
func llSeed(t *testing.T, name string) map[string]any {
	t.Helper()
	b, err := os.ReadFile("../../parse/testdata/paymaya/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// llSecret is a valid endpoint secret whose key is the 32-byte text seed, planted.
func llSecret(p *llPlants, what, seed string) string {
	key := []byte(fmt.Sprintf("%-32s", seed))
	b64 := base64.StdEncoding.EncodeToString(key)
	p.add("secret", what+" (key bytes)", string(key))
	p.add("secret", what+" (base64 key)", b64)
	return p.add("secret", what, "whsec_"+b64)
}

func TestLogLeak(t *testing.T) {
	began := time.Now()
	plants := &llPlants{}

	// Card numbers: Visa, Mastercard, Amex, Discover, a 13-digit Visa, a 19-digit one,
	// and two formatted with separators.
	pVisa := plants.add("card number", "Visa 16", "4111111111111111")
	pMC := plants.add("card number", "Mastercard 16", "5555555555554444")
	pAmex := plants.add("card number", "Amex 15", "378282246310005")
	pDisc := plants.add("card number", "Discover 16", "6011111111111117")
	pVisa13 := plants.add("card number", "Visa 13", "4222222222222")
	p19 := plants.add("card number", "19-digit", llLuhnComplete("622126123456789012"))
	pVisaSpaced := plants.add("card number", "Visa with spaces", "4111 1111 1111 1111")
	pMCDashed := plants.add("card number", "Mastercard with dashes", "5555-5555-5555-4444")
	for _, pan := range []string{pVisa, pMC, pAmex, pDisc, pVisa13, p19} {
		if !llLuhnValid(pan) || len(pan) < 13 || len(pan) > 19 {
			t.Fatalf("fixture PAN %s is not a Luhn-valid 13-19 digit number", pan)
		}
	}
	cvc1 := plants.addShort("CVC", "Amex CID", "3947")
	cvc2 := plants.addShort("CVC", "CVV", "281")
	email1 := plants.add("e-mail", "buyer", "zebulon.quixtaperez@example.com")
	email2 := plants.add("e-mail", "fund source", "anastacia.v+billing@correo.example.ph")
	email3 := plants.add("e-mail", "seed", "john.doe@paymaya.com")
	email4 := plants.add("e-mail", "merchant", "ops-merchant@acme.example")
	phone1 := plants.add("phone", "+63 mobile", "+639171234568")
	phone2 := plants.add("phone", "09 mobile", "09181234567")
	phone3 := plants.add("phone", "spaced mobile", "+63 917 555 0199")
	phone4 := plants.add("phone", "seed msisdn", "+639191234567")
	plants.add("phone", "09 mobile, digits", "9181234567")
	plants.add("phone", "+63 mobile, digits", "639171234568")
	first1 := plants.add("name", "first name", "Zebulon")
	last1 := plants.add("name", "last name", "Quixtaperez")
	first2 := plants.add("name", "first name", "Anastacia")
	last2 := plants.add("name", "last name", "Villafuerte-Dimaculangan")
	middle := plants.add("name", "middle name", "Perpetua")

	tokMaya := plants.add("token", "PayMaya source token", "ll-maya-tok-7Hq2WcZp9RkV3xYt")
	tokPaytia := plants.add("token", "Paytia source token", "ll-paytia-tok-N4bF8sLm2QdJ6uEa")
	tokLocked := plants.add("token", "CIDR-locked source token", "ll-locked-tok-Pz5Rw8Yc1VbM4nKs")
	tokAdmin := plants.add("token", "admin token", "ll-admin-tok-Xv5Tg9Kc3Lp7Hn2R")
	nearMaya := plants.add("token", "almost-right PayMaya token", tokMaya[:len(tokMaya)-1]+"u")
	nearPaytia := plants.add("token", "almost-right Paytia token", tokPaytia[:len(tokPaytia)-1]+"b")
	nearAdmin := plants.add("token", "almost-right admin token", tokAdmin[:len(tokAdmin)-1]+"S")
	longAdmin := plants.add("token", "admin token with a suffix", tokAdmin+"x")
	for _, v := range []string{":" + tokMaya, ":" + nearMaya, "admin:" + tokAdmin, ":" + tokPaytia} {
		plants.add("token", "Basic credentials", base64.StdEncoding.EncodeToString([]byte(v)))
	}
	pmtTok := plants.add("token", "paymentTokenId", "ll-pmt-tok-GEqjthTla9f5GT7DtW7CmErJR2")
	pmtTok2 := plants.add("token", "paymentTokenId", "ll-pmt-tok-9gcKv3zmqMbhZcYI9D5UO6C3hQ")
	cardTok := plants.add("token", "card token (fundSource.id)", "ll-card-tok-Fx3Jw8Qe5Tn1Lr6Z")
	bodyTok := plants.add("token", "token form field in a Paytia body", "ll-bodytok-Sd4Kf7Hg2Mv9Xc1B")
	cookieTok := plants.add("token", "provider Cookie", "ll-cookie-sess-Wq2Lp6RzTb8Nc4Vy")
	ingestKey := plants.add("token", "provider X-Api-Key", "ll-ingest-apikey-Bt9Hm3KdQ2wE")
	merchKey := plants.add("token", "endpoint header X-Api-Key", "ll-merchant-apikey-Zr8Pq2VwYe5U")
	merchBearer := plants.add("token", "endpoint header Authorization", "ll-merchant-bearer-Mk3Jd7TsHa6Q")
	urlKey := plants.add("token", "endpoint URL query key", "ll-urlkey-Fh6Ns1QbLk9Dz")
	pathSecret := plants.add("token", "endpoint URL path secret", "ll-pathsecret-Ye4Gc8UxJr2P")
	updKey := plants.add("token", "endpoint header set by PUT", "ll-updated-apikey-Cw7Rn3Gv")

	secOK := llSecret(plants, "ep-ok secret", "ll-secret-ep-ok-AbCdEfGhIjKlMn")
	secAPI := llSecret(plants, "ep-api secret (admin POST)", "ll-secret-ep-api-OpQrStUvWxYz")
	secRotated := llSecret(plants, "ep-ok rotated secret", "ll-secret-rotated-0a1b2c3d4e5f")
	secBad := plants.add("secret", "invalid secret sent to admin", "whsec_ll-not-base64-secret!!Q9")

	// Merchants. What they answer echoes the sensitive values back.
	echo := fmt.Sprintf(`{"error":"declined card %s cvc %s for %s %s %s"}`, pVisa, cvc1, email1, phone1, first1+" "+last1)
	release := make(chan struct{})
	hang := func(r *http.Request, d time.Duration) {
		select {
		case <-r.Context().Done():
		case <-release:
		case <-time.After(d):
		}
	}
	merchants := map[string]*llMerchant{
		"ep-ok": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			_, _ = io.WriteString(w, `{"ok":true,"card":"`+pMC+`","email":"`+email2+`"}`)
		}),
		"ep-fail500": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, echo)
			_, _ = w.Write(body) // the event, with every planted value, echoed back
		}),
		"ep-gone": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(http.StatusGone)
			_, _ = io.WriteString(w, echo)
		}),
		"ep-hang": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			hang(r, 5*time.Second) // well past delivery.timeout
		}),
		"ep-slow503": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			hang(r, 250*time.Millisecond) // just short of delivery.timeout
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, echo)
		}),
		"ep-redirect": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.Header().Set("Location", "https://elsewhere.example/steal?pan="+pAmex+"&key="+urlKey+"&email="+url.QueryEscape(email1))
			w.WriteHeader(http.StatusFound)
			_, _ = io.WriteString(w, echo)
		}),
		"ep-partial": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"partial":"`+pDisc+` `+email3+`"`)
			w.(http.Flusher).Flush()
			hang(r, 5*time.Second) // the body never ends
		}),
		"ep-api": llNewMerchant(func(w http.ResponseWriter, r *http.Request, body []byte) {
			w.WriteHeader(http.StatusNoContent)
		}),
	}
	defer func() {
		close(release)
		for _, m := range merchants {
			m.srv.Close()
		}
	}()
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := ln.Addr().String()
	ln.Close()

	secretURL := func(base string) string {
		return base + "/hooks/" + pathSecret + "?key=" + urlKey + "&contact=" + url.QueryEscape(email4)
	}
	cfg, err := loadConfig("", configs.Dev, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.Token = tokAdmin
	cfg.NATS.DataDir = t.TempDir()
	cfg.Log = LogConfig{Format: "console", Level: "debug"}
	cfg.Sources = []SourceConfig{
		{ID: "ll-maya", Provider: "paymaya", Merchant: "acme", Token: tokMaya},
		{ID: "ll-paytia", Provider: "paytia", Merchant: "acme", Token: tokPaytia},
		{ID: "ll-locked", Provider: "paytia", Merchant: "acme", Token: tokLocked, AllowCIDRs: []string{"192.0.2.0/24"}},
	}
	cfg.Endpoints = []EndpointConfig{
		{ID: "ep-ok", Merchant: "acme", URL: merchants["ep-ok"].srv.URL + "/hooks?key=" + urlKey, Types: []string{"payment.*"}, Secret: secOK,
			Headers: map[string]string{"X-Api-Key": merchKey, "Authorization": "Bearer " + merchBearer}},
		{ID: "ep-fail500", Merchant: "acme", URL: secretURL(merchants["ep-fail500"].srv.URL), Secret: llSecret(plants, "ep-fail500 secret", "ll-secret-ep-fail500-aaaa"),
			Headers: map[string]string{"X-Api-Key": merchKey}},
		{ID: "ep-gone", Merchant: "acme", URL: secretURL(merchants["ep-gone"].srv.URL), Secret: llSecret(plants, "ep-gone secret", "ll-secret-ep-gone-bbbbbbbb")},
		{ID: "ep-hang", Merchant: "acme", URL: secretURL(merchants["ep-hang"].srv.URL), Secret: llSecret(plants, "ep-hang secret", "ll-secret-ep-hang-cccccccc")},
		{ID: "ep-slow503", Merchant: "acme", URL: secretURL(merchants["ep-slow503"].srv.URL), Secret: llSecret(plants, "ep-slow503 secret", "ll-secret-ep-slow503-dddd")},
		{ID: "ep-redirect", Merchant: "acme", URL: secretURL(merchants["ep-redirect"].srv.URL), Secret: llSecret(plants, "ep-redirect secret", "ll-secret-ep-redirect-eee")},
		{ID: "ep-partial", Merchant: "acme", URL: secretURL(merchants["ep-partial"].srv.URL), Secret: llSecret(plants, "ep-partial secret", "ll-secret-ep-partial-ffff")},
		{ID: "ep-refused", Merchant: "acme", URL: secretURL("http://" + refusedAddr), Secret: llSecret(plants, "ep-refused secret", "ll-secret-ep-refused-gggg")},
		{ID: "ep-blocked", Merchant: "acme", URL: secretURL("http://169.254.169.254"), Secret: llSecret(plants, "ep-blocked secret", "ll-secret-ep-blocked-hhhh"),
			Headers: map[string]string{"Authorization": "Bearer " + merchBearer}},
	}
	// Three quick attempts, then a dead letter; each attempt bounded at 500ms.
	cfg.Retry = RetryConfig{Delays: []Duration{Duration(300 * time.Millisecond), Duration(300 * time.Millisecond)}, GiveUpAfter: Duration(time.Second)}
	cfg.Delivery = DeliveryConfig{Timeout: Duration(500 * time.Millisecond), AllowCIDRs: []string{"127.0.0.0/8"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	endpointIDs := []string{"ep-ok", "ep-fail500", "ep-gone", "ep-hang", "ep-slow503", "ep-redirect", "ep-partial", "ep-refused", "ep-blocked", "ep-api"}

	jsonLog, consoleLog := &llBuffer{}, &llBuffer{}
	srv := runServed(t, cfg, llLogger(jsonLog, consoleLog))
	addr, stop := srv.listening, func() { srv.stop(t) }
	hc := llHTTP{t, &http.Client{Timeout: 10 * time.Second}}
	ingestBase := "http://" + addr.Ingest
	adminBase := "http://" + addr.Admin

	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	admin := func(method, path, tok string, body any, want int) []byte {
		t.Helper()
		var b []byte
		ctype := ""
		if body != nil {
			b, ctype = llJSON(t, body), "application/json"
		}
		st, resp := hc.do(method, adminBase+path, ctype, b, bearer(tok))
		if st != want && (want != 0 || st < 200 || st > 299) { // want 0: any 2xx
			t.Errorf("admin %s %s answered %d, want %d: %s", method, path, st, want, resp)
		}
		return resp
	}

	// Admin: wrong credentials in every shape, invalid bodies carrying secrets, then
	// an endpoint created with a secret and headers.
	apiEndpoint := map[string]any{
		"id": "ep-api", "merchant": "acme", "url": merchants["ep-api"].srv.URL + "/in?key=" + urlKey,
		"types": []string{"payment.*"}, "secret": secAPI,
		"headers": map[string]string{"X-Api-Key": merchKey, "X-Contact": email4},
	}
	admin(http.MethodGet, "/v1/endpoints", nearAdmin, nil, http.StatusUnauthorized)
	admin(http.MethodGet, "/v1/endpoints", longAdmin, nil, http.StatusUnauthorized)
	admin(http.MethodPost, "/v1/endpoints", nearAdmin, apiEndpoint, http.StatusUnauthorized)
	if st, _ := hc.do(http.MethodGet, adminBase+"/v1/endpoints?token="+tokAdmin, "", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("admin with ?token= answered %d, want 401", st)
	}
	if st, _ := hc.do(http.MethodGet, adminBase+"/v1/deadletters", "", nil, func(r *http.Request) { r.SetBasicAuth("admin", tokAdmin) }); st != http.StatusUnauthorized {
		t.Errorf("admin with Basic answered %d, want 401", st)
	}
	admin(http.MethodPost, "/v1/endpoints", tokAdmin, map[string]any{
		"id": "ep-bad", "merchant": "acme", "url": "https://" + first1 + ":" + urlKey + "@merchant.example/hooks", "secret": secBad,
	}, http.StatusBadRequest)
	admin(http.MethodPost, "/v1/endpoints", tokAdmin, map[string]any{"id": "ep-bad2", "secret": secBad, "card": pVisa}, http.StatusBadRequest)
	admin(http.MethodPost, "/v1/endpoints", tokAdmin, apiEndpoint, http.StatusCreated)
	admin(http.MethodGet, "/v1/endpoints", tokAdmin, nil, http.StatusOK)
	admin(http.MethodGet, "/v1/endpoints/ep-ok", tokAdmin, nil, http.StatusOK)

	// Ingest. Every request also carries sensitive headers a provider might send.
	providerHeaders := func(r *http.Request) {
		r.Header.Set("X-Customer-Email", email1)
		r.Header.Set("X-Customer-Phone", phone1)
		r.Header.Set("Cookie", "session="+cookieTok)
		r.Header.Set("X-Api-Key", ingestKey)
		r.Header.Set("User-Agent", "PayMaya-Webhooks/1.0 ("+email3+")")
	}
	basicAuth := func(tok string) func(*http.Request) {
		return func(r *http.Request) { providerHeaders(r); r.SetBasicAuth("", tok) }
	}
	bearerAuth := func(tok string) func(*http.Request) {
		return func(r *http.Request) { providerHeaders(r); r.Header.Set("Authorization", "Bearer "+tok) }
	}
	var accepted []string
	type ingestAnswer struct {
		ID        string `json:"id"`
		Duplicate bool   `json:"duplicate"`
	}
	post := func(name, method, rawURL, ctype string, body []byte, auth func(*http.Request), want int) ingestAnswer {
		t.Helper()
		if auth == nil {
			auth = providerHeaders
		}
		st, resp := hc.do(method, rawURL, ctype, body, auth)
		if st != want {
			t.Errorf("ingest %s: answered %d, want %d: %s", name, st, want, resp)
		}
		var a ingestAnswer
		if st == http.StatusOK {
			if err := json.Unmarshal(resp, &a); err != nil || !strings.HasPrefix(a.ID, "evt_") {
				t.Errorf("ingest %s: answer %s", name, resp)
			} else if !a.Duplicate && !slices.Contains(accepted, a.ID) {
				accepted = append(accepted, a.ID)
			}
		}
		return a
	}
	const jsonType, formType = "application/json", "application/x-www-form-urlencoded"
	maya := ingestBase + "/ingest/paymaya/ll-maya"
	paytia := ingestBase + "/ingest/paytia/ll-paytia"

	// PayMaya, accepted: buyer, billing, fund source details, metadata all planted.
	a := llSeed(t, "webhook-payment-success.json")
	a["buyer"] = map[string]any{
		"firstName": first1, "middleName": middle, "lastName": last1,
		"contact":        map[string]any{"phone": phone1, "email": email1},
		"billingAddress": map[string]any{"line1": "12 Mabini St", "city": "Makati", "countryCode": "PH", "phone": phone2},
	}
	a["fundSource"] = map[string]any{
		"type": "card", "id": cardTok, "description": "**** **** **** 1111",
		"details": map[string]any{
			"scheme": "visa", "last4": "1111", "first6": "411111", "masked": "411111******1111",
			"cardNumber": pVisa, "cvc": cvc1, "expiryMonth": "12", "expiryYear": "2029", "cardholderName": first1 + " " + last1,
		},
	}
	a["metadata"] = map[string]any{"customer_email": email2, "customer_phone": phone3, "card": pVisaSpaced, "note": "call " + phone4}
	a["paymentTokenId"] = pmtTok
	bodyA := llJSON(t, a)
	post("PayMaya success (Basic)", http.MethodPost, maya, jsonType, bodyA, basicAuth(tokMaya), http.StatusOK)
	if d := post("PayMaya success again (Bearer)", http.MethodPost, maya, jsonType, bodyA, bearerAuth(tokMaya), http.StatusOK); !d.Duplicate {
		t.Errorf("a provider retry was not answered as a duplicate")
	}

	b := llSeed(t, "get-payment-failed.json")
	b["description"] = "Charge for " + first2 + " " + last2
	b["paymentTokenId"] = pmtTok2
	b["fundSource"] = map[string]any{
		"type": "paymaya", "id": phone2, "description": "***** ***4567",
		"details": map[string]any{"firstName": first2, "middleName": middle, "lastName": last2, "msisdn": phone4, "email": email3, "masked": "********4567"},
	}
	b["errorMessage"] = "[PY0122] Issuer system is unavailable for card " + pMC + " of " + email2
	b["metadata"] = map[string]any{"cvv": cvc2, "pan": pMCDashed}
	post("PayMaya failed (Bearer)", http.MethodPost, maya, jsonType, llJSON(t, b), bearerAuth(tokMaya), http.StatusOK)

	c := llSeed(t, "synthetic-checkout-success.json")
	c["requestReferenceNumber"] = email1 // merchants do use e-mails as references
	c["buyer"] = map[string]any{"firstName": first2, "lastName": last2, "contact": map[string]any{"email": email2, "phone": phone1},
		"shippingAddress": map[string]any{"firstName": first1, "lastName": last1, "phone": phone2, "email": email4}}
	c["metadata"] = map[string]any{"pan": pAmex, "cvc": cvc1, "email": email3}
	c["items"] = []any{map[string]any{"name": "Gift card for " + first1, "code": p19}}
	post("PayMaya checkout (?token=)", http.MethodPost, maya+"?token="+url.QueryEscape(tokMaya), jsonType, llJSON(t, c), providerHeaders, http.StatusOK)

	d := llSeed(t, "synthetic-auth-failed.json")
	d["errorMessage"] = "3-D Secure failed for " + p19 + " (" + phone1 + ")"
	d["metadata"] = map[string]any{"card_number": p19, "alt_card": pVisa13, "cvv": cvc2, "contact": email4, "mobile": phone2}
	d["fundSource"] = map[string]any{"type": "card", "id": cardTok, "details": map[string]any{"pan": pDisc, "cvc": cvc1, "name": first2 + " " + last2}}
	post("PayMaya auth failed (Basic)", http.MethodPost, maya, jsonType, llJSON(t, d), basicAuth(tokMaya), http.StatusOK)

	// Paytia, accepted, in each token form, fields planted.
	p1 := url.Values{"success": {"1"}, "reference_id": {"ref_ll_001"}, "first_name": {first1}, "last_name": {last1},
		"email": {email1}, "phone": {phone1}, "card_number": {pVisa}, "cvv": {cvc1}, "expiry": {"12/29"}, "token": {bodyTok}}
	post("Paytia success (?token=)", http.MethodPost, paytia+"?token="+url.QueryEscape(tokPaytia), formType, []byte(p1.Encode()), providerHeaders, http.StatusOK)
	p2 := url.Values{"payment_stage": {"card_number"}, "card_number": {pMCDashed}, "reference_id": {"ref_ll_002"}, "cli": {phone2},
		"merchant_email": {email4}, "agent_name": {first2 + " " + last2}, "call_from": {phone3}}
	post("Paytia progress (Basic)", http.MethodPost, paytia, formType, []byte(p2.Encode()), basicAuth(tokPaytia), http.StatusOK)
	p3 := url.Values{"success": {"0"}, "callhangup": {"customer"}, "reference_id": {"ref_ll_003"}, "pan": {pAmex}, "cvc": {cvc2},
		"call_from": {phone4}, "first_name": {first1}, "card_holder": {first1 + " " + middle + " " + last1}, "token": {tokPaytia}}
	post("Paytia hangup (GET, ?token=)", http.MethodGet, paytia+"?"+p3.Encode(), "", nil, providerHeaders, http.StatusOK)
	p4 := url.Values{"payment_stage": {"pan_digit"}, "pan_digit": {"4"}, "reference_id": {"ref_ll_004"}, "full_pan": {p19},
		"alt": {pVisa13}, "pan_spaced": {pVisaSpaced}, "email": {email2}, "customer_name": {first2 + " " + last2}, "incli": {phone1}}
	post("Paytia pan_digit (Bearer)", http.MethodPost, paytia, formType, []byte(p4.Encode()), bearerAuth(tokPaytia), http.StatusOK)
	if len(accepted) != 8 {
		t.Fatalf("accepted events %v, want 8 distinct", accepted)
	}

	// Rejected: authenticated, but the body does not parse; kept in HOOKRELAY_REJECTED.
	rejected := 0
	reject := func(name, method, rawURL, ctype string, body []byte, auth func(*http.Request)) {
		t.Helper()
		post(name, method, rawURL, ctype, body, auth, http.StatusBadRequest)
		rejected++
	}
	reject("PayMaya malformed JSON", http.MethodPost, maya, jsonType,
		[]byte(`{"id": "ll-x", "cardNumber": "`+pVisa+`", "cvc": "`+cvc1+`", "email": "`+email1+`", "phone": "`+phone1+`",`), basicAuth(tokMaya))
	reject("PayMaya missing id and status", http.MethodPost, maya, jsonType, llJSON(t, map[string]any{
		"buyer": a["buyer"], "fundSource": a["fundSource"], "paymentTokenId": pmtTok, "pan": pMC,
	}), bearerAuth(tokMaya))
	reject("PayMaya invalid UTF-8", http.MethodPost, maya+"?token="+url.QueryEscape(tokMaya), jsonType,
		[]byte(`{"id":"ll-y","status":"PAYMENT_SUCCESS","name":"`+first2+"\xff\xfe"+`","card":"`+pAmex+`","email":"`+email2+`"}`), providerHeaders)
	reject("PayMaya repeated key", http.MethodPost, maya, jsonType,
		[]byte(`{"id":"ll-z","id":"ll-z2","status":"PAYMENT_SUCCESS","cardNumber":"`+p19+`","cvc":"`+cvc2+`","phone":"`+phone2+`"}`), basicAuth(tokMaya))
	reject("PayMaya PAN as amount", http.MethodPost, maya, jsonType, llJSON(t, map[string]any{
		"id": "ll-w", "status": "PAYMENT_SUCCESS", "amount": pVisaSpaced, "currency": email1, "requestReferenceNumber": pDisc,
		"updatedAt": phone1, "buyer": map[string]any{"email": email1},
	}), basicAuth(tokMaya))
	reject("Paytia repeated field", http.MethodPost, paytia+"?token="+url.QueryEscape(tokPaytia), formType,
		[]byte("card_number="+pVisa+"&card_number="+pMC+"&reference_id=ref_ll_rep&email="+url.QueryEscape(email1)+"&cvv="+cvc1), providerHeaders)
	reject("Paytia missing reference_id", http.MethodPost, paytia, formType, []byte(url.Values{
		"success": {"1"}, "card_number": {pAmex}, "email": {email2}, "phone": {phone3}, "first_name": {first2}, "last_name": {last2},
	}.Encode()), basicAuth(tokPaytia))
	reject("Paytia GET missing reference_id", http.MethodGet, paytia+"?"+url.Values{
		"token": {tokPaytia}, "pan": {p19}, "cvc": {cvc2}, "email": {email3}, "call_from": {phone4},
	}.Encode(), "", nil, providerHeaders)
	reject("Paytia invalid UTF-8", http.MethodPost, paytia, formType,
		[]byte("reference_id=ref_ll_utf&name="+first1+"%FF%FE&pan="+pDisc+"&email="+url.QueryEscape(email4)), bearerAuth(tokPaytia))
	reject("Paytia malformed form", http.MethodPost, paytia, formType,
		[]byte("reference_id=ref_ll_bad&pan="+pVisa+"&email="+email1+"&broken=%zz"), bearerAuth(tokPaytia))

	// Refused before parsing: wrong tokens in each form, unknown sources, wrong media,
	// wrong method, a client outside the source's CIDRs, a body over the limit.
	panBody := llJSON(t, map[string]any{"id": "ll-r", "status": "PAYMENT_SUCCESS", "card": pVisa, "email": email1, "phone": phone1, "name": first1})
	post("PayMaya almost-right token (Basic)", http.MethodPost, maya, jsonType, panBody, basicAuth(nearMaya), http.StatusUnauthorized)
	post("PayMaya almost-right token (Bearer)", http.MethodPost, maya, jsonType, panBody, bearerAuth(nearMaya), http.StatusUnauthorized)
	post("PayMaya almost-right token (?token=)", http.MethodPost, maya+"?token="+url.QueryEscape(nearMaya)+"&email="+url.QueryEscape(email1), jsonType, panBody, providerHeaders, http.StatusUnauthorized)
	post("PayMaya no token", http.MethodPost, maya, jsonType, panBody, providerHeaders, http.StatusUnauthorized)
	post("Paytia almost-right token (GET)", http.MethodGet, paytia+"?"+url.Values{"token": {nearPaytia}, "pan": {pMC}, "reference_id": {"ref_ll_x"}, "phone": {phone2}}.Encode(), "", nil, providerHeaders, http.StatusUnauthorized)
	post("Paytia token only in the body", http.MethodPost, paytia, formType, []byte(url.Values{"token": {tokPaytia}, "reference_id": {"ref_ll_y"}, "pan": {pAmex}}.Encode()), providerHeaders, http.StatusUnauthorized)
	post("Paytia with the PayMaya token", http.MethodPost, paytia, formType, []byte(p1.Encode()), basicAuth(tokMaya), http.StatusUnauthorized)
	post("unknown source named by a PAN", http.MethodPost, ingestBase+"/ingest/paymaya/"+pVisa, jsonType, panBody, basicAuth(tokMaya), http.StatusNotFound)
	post("unknown source named by an e-mail", http.MethodPost, ingestBase+"/ingest/paytia/"+url.PathEscape(email1)+"?token="+url.QueryEscape(tokPaytia), formType, []byte(p1.Encode()), providerHeaders, http.StatusNotFound)
	post("unknown provider", http.MethodPost, ingestBase+"/ingest/"+url.PathEscape(email2)+"/ll-maya", jsonType, panBody, basicAuth(tokMaya), http.StatusNotFound)
	post("PayMaya text/plain", http.MethodPost, maya, "text/plain; name="+first1, panBody, basicAuth(tokMaya), http.StatusUnsupportedMediaType)
	post("PayMaya PUT", http.MethodPut, maya, jsonType, panBody, basicAuth(tokMaya), http.StatusMethodNotAllowed)
	post("locked source from outside its CIDRs", http.MethodPost, ingestBase+"/ingest/paytia/ll-locked", formType, []byte(p1.Encode()), basicAuth(tokLocked), http.StatusForbidden)
	big := bytes.Repeat([]byte(pVisa+" "+email1+" "), (1<<20)/40+10)
	post("PayMaya over 1 MiB", http.MethodPost, maya, jsonType, append(append([]byte(`{"pad":"`), big...), `"}`...), basicAuth(tokMaya), http.StatusRequestEntityTooLarge)

	// waitSettled waits until each event's delivery to each endpoint is done or dead
	// (held counts as settled for the endpoints in held).
	type deliveryView struct {
		Endpoint string `json:"endpoint"`
		State    string `json:"state"`
	}
	settledStates := func(id string) (map[string]string, bool) {
		st, resp := hc.do(http.MethodGet, adminBase+"/v1/events/"+id+"/deliveries", "", nil, bearer(tokAdmin))
		if st != http.StatusOK {
			return nil, false
		}
		var v struct {
			Deliveries []deliveryView `json:"deliveries"`
		}
		if json.Unmarshal(resp, &v) != nil {
			return nil, false
		}
		states := map[string]string{}
		for _, d := range v.Deliveries {
			states[d.Endpoint] = d.State
		}
		return states, true
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !cond(); time.Sleep(25 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %v", what, limit)
			}
		}
	}
	waitSettled := func(what string, ids []string, held map[string]bool) {
		t.Helper()
		var last map[string]string
		waitFor(what, 12*time.Second, func() bool {
			for _, id := range ids {
				states, ok := settledStates(id)
				last = states
				if !ok || len(states) != len(endpointIDs) {
					return false
				}
				for ep, s := range states {
					if s != "done" && s != "dead" && !(held[ep] && s == "held") {
						return false
					}
				}
			}
			return true
		})
		t.Logf("%s: settled after %v (last event's deliveries: %v)", what, time.Since(began).Round(time.Millisecond), last)
	}
	waitSettled("first deliveries", accepted, nil)

	// On-call: dead letters, replays, rejected requests, events, endpoint changes.
	var letters struct {
		Items []struct {
			Seq uint64 `json:"seq"`
		} `json:"items"`
	}
	if err := json.Unmarshal(admin(http.MethodGet, "/v1/deadletters?endpoint=ep-gone&state=open", tokAdmin, nil, http.StatusOK), &letters); err != nil || len(letters.Items) == 0 {
		t.Fatalf("no open dead letters for ep-gone (%v)", err)
	}
	seq := strconv.FormatUint(letters.Items[0].Seq, 10)
	admin(http.MethodGet, "/v1/deadletters/"+seq, tokAdmin, nil, http.StatusOK)
	admin(http.MethodPost, "/v1/deadletters/"+seq+"/replay", nearAdmin, nil, http.StatusUnauthorized)
	admin(http.MethodPost, "/v1/deadletters/"+seq+"/replay", tokAdmin, nil, 0)
	var job struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if err := json.Unmarshal(admin(http.MethodPost, "/v1/deadletters/replay", tokAdmin, map[string]any{"endpoint": "ep-fail500"}, http.StatusAccepted), &job); err != nil || job.ID == "" {
		t.Fatalf("bulk replay: no job (%v)", err)
	}
	waitFor("bulk replay job", 10*time.Second, func() bool {
		if err := json.Unmarshal(admin(http.MethodGet, "/v1/replays/"+job.ID, tokAdmin, nil, http.StatusOK), &job); err != nil {
			t.Fatal(err)
		}
		return job.State != "running"
	})
	admin(http.MethodGet, "/v1/rejected?source=ll-maya", tokAdmin, nil, http.StatusOK)
	admin(http.MethodPost, "/v1/rejected/reprocess", tokAdmin, map[string]any{"source": "ll-paytia"}, http.StatusOK)
	admin(http.MethodGet, "/v1/events?reference_id="+url.QueryEscape(email1), tokAdmin, nil, http.StatusOK)
	admin(http.MethodGet, "/v1/events?reference_id="+pVisa, tokAdmin, nil, http.StatusOK)
	admin(http.MethodGet, "/v1/events/"+accepted[0], tokAdmin, nil, http.StatusOK)
	admin(http.MethodPost, "/v1/redrive", tokAdmin, map[string]any{"since": began.Add(-time.Minute).UTC().Format(time.RFC3339), "endpoint": "ep-ok"}, http.StatusOK)
	admin(http.MethodPost, "/v1/endpoints/ep-ok/rotate-secret", tokAdmin, map[string]any{"secret": secRotated, "grace": "1h"}, http.StatusOK)
	admin(http.MethodPut, "/v1/endpoints/ep-partial", tokAdmin, map[string]any{"headers": map[string]string{"X-Api-Key": updKey, "X-Contact": email2}}, http.StatusOK)
	admin(http.MethodPut, "/v1/endpoints/ep-api", tokAdmin, map[string]any{"enabled": false}, http.StatusOK)
	// Held while disabled, released when enabled again.
	ph := url.Values{"success": {"1"}, "reference_id": {"ref_ll_hold"}, "card_number": {pDisc}, "email": {email3}, "phone": {phone4}, "first_name": {first2}}
	held := post("Paytia success while ep-api is disabled (Basic)", http.MethodPost, paytia, formType, []byte(ph.Encode()), basicAuth(tokPaytia), http.StatusOK)
	waitSettled("deliveries with ep-api held", []string{held.ID}, map[string]bool{"ep-api": true})
	if states, _ := settledStates(held.ID); states["ep-api"] != "held" {
		t.Errorf("ep-api's delivery of %s is %q while disabled, want held", held.ID, states["ep-api"])
	}
	admin(http.MethodPut, "/v1/endpoints/ep-api", tokAdmin, map[string]any{"enabled": true}, http.StatusOK)
	accepted = append(accepted, held.ID)
	waitSettled("after the replays and the release", accepted, nil)
	if merchants["ep-api"].got(held.ID) == 0 {
		t.Errorf("ep-api never got the held event %s after it was enabled", held.ID)
	}
	admin(http.MethodDelete, "/v1/endpoints/ep-hang", tokAdmin, nil, http.StatusNoContent)

	// Sanity: the merchants got the planted headers, so they went through the code.
	for _, h := range merchants["ep-ok"].headers() {
		if h.Get("X-Api-Key") != merchKey || h.Get("Authorization") != "Bearer "+merchBearer {
			t.Errorf("ep-ok got headers %v, not the configured ones", h)
			break
		}
	}
	// Every signature sent is planted too: none may be logged.
	sigs := 0
	for _, m := range merchants {
		for _, h := range m.headers() {
			for s := range strings.FieldsSeq(h.Get("webhook-signature")) {
				plants.add("signature", "webhook-signature sent to a merchant", s)
				if _, b64, ok := strings.Cut(s, ","); ok {
					plants.add("signature", "webhook-signature's base64", b64)
				}
				sigs++
			}
		}
	}
	if sigs == 0 {
		t.Error("no merchant got a webhook-signature")
	}

	stop()
	t.Logf("driven and stopped in %v", time.Since(began).Round(time.Millisecond))

	// The detector itself must find what it is looking for.
	for _, p := range plants.all() {
		probe := "probe\t" + p.value + "\n"
		if len(llScan(probe, []llPlant{p})) == 0 {
			t.Fatalf("detector misses planted %s %q", p.cat, p.value)
		}
	}
	for _, shaped := range []string{pVisaSpaced, pMCDashed, p19, pAmex, url.QueryEscape(email2), phone3, "Bearer " + merchBearer, secOK} {
		if len(llScan(`{"msg":"x","v":"`+shaped+`"}`, nil)) == 0 {
			t.Fatalf("shape detector misses %q", shaped)
		}
	}

	// Not vacuous: the logs hold the lines these paths write.
	jsonText, consoleText := jsonLog.String(), consoleLog.String()
	if strings.TrimSpace(jsonText) == "" || strings.TrimSpace(consoleText) == "" {
		t.Fatal("nothing was logged")
	}
	msgs := map[string]int{}
	attempted := map[string]map[string]int{} // endpoint -> outcome -> lines
	for line := range strings.SplitSeq(jsonText, "\n") {
		if line == "" {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("a JSON log line does not parse: %v: %s", err, line)
			continue
		}
		msg, _ := e["msg"].(string)
		msgs[msg]++
		if msg == "delivery.attempted" {
			ep, _ := e["endpoint"].(string)
			outcome, _ := e["outcome"].(string)
			if attempted[ep] == nil {
				attempted[ep] = map[string]int{}
			}
			attempted[ep][outcome]++
		}
	}
	for _, ep := range endpointIDs {
		if len(attempted[ep]) == 0 {
			t.Errorf("no delivery.attempted line for endpoint %s", ep)
		}
	}
	for ep, outcome := range map[string]string{"ep-ok": "delivered", "ep-fail500": "retry", "ep-gone": "dead", "ep-hang": "retry", "ep-api": "delivered"} {
		if attempted[ep][outcome] == 0 {
			t.Errorf("no delivery.attempted line for %s with outcome %s (got %v)", ep, outcome, attempted[ep])
		}
	}
	if msgs["request rejected and kept"] == 0 {
		t.Errorf("no ingest rejection line, though %d requests were rejected", rejected)
	}
	t.Logf("log lines: %d JSON, %d console; messages: %v", strings.Count(jsonText, "\n"), strings.Count(consoleText, "\n"), msgs)
	t.Logf("delivery.attempted by endpoint and outcome: %v", attempted)

	// The search.
	all := plants.all()
	leaks := 0
	for _, log := range []struct{ name, text string }{{"JSON", jsonText}, {"console", consoleText}} {
		perKind := map[string]int{}
		for _, f := range llScan(log.text, all) {
			leaks++
			if perKind[f.kind]++; perKind[f.kind] <= 3 {
				t.Errorf("LEAK in the %s log: %s\n\tline: %s", log.name, f.kind, f.line)
			}
		}
		for kind, n := range perKind {
			if n > 3 {
				t.Errorf("LEAK in the %s log: %s: %d lines in all", log.name, kind, n)
			}
		}
	}
	if os.Getenv("HOOKRELAY_LOGLEAK_DUMP") != "" { // to read what was searched
		t.Logf("JSON log:\n%s\nconsole log:\n%s", jsonText, consoleText)
	}
	t.Logf("searched %d planted values in every line: %d findings; test took %v", len(all), leaks, time.Since(began).Round(time.Millisecond))
}
