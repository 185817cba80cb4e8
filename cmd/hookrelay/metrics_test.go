package main

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/configs"
)

// scrape is one /metrics answer: series (name plus sorted labels, as printed) → value.
type scrape map[string]float64

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$`)

func getMetrics(t *testing.T, admin string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics = %d: %s", resp.StatusCode, b)
	}
	out := scrape{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		m := sampleLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", sc.Text(), err)
		}
		out[m[1]+m[2]] += v
	}
	return out
}

// sum adds the samples of name whose labels contain every one of want (`k="v"`).
func (s scrape) sum(name string, want ...string) (float64, bool) {
	var total float64
	found := false
	for k, v := range s {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(k, w)
		}
		if ok {
			total, found = total+v, true
		}
	}
	return total, found
}

// TestMetrics drives traffic of every kind through serve and scrapes /metrics: each
// series the README's metrics table documents is present and has moved as the
// traffic says it must.
func TestMetrics(t *testing.T) {
	ns, redisURL, prefix := backends(t)
	answer := func(codes ...int) *httptest.Server {
		var n atomic.Int32
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			i := int(n.Add(1)) - 1
			w.WriteHeader(codes[min(i, len(codes)-1)])
		}))
		t.Cleanup(s.Close)
		return s
	}
	ok, flaky, gone := answer(200), answer(500, 200), answer(410)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})

	cfg, err := loadConfig("", configs.Dev, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Admin.Listen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.NATS.URL, cfg.Redis.URL, cfg.Redis.Prefix = ns.URL, redisURL, prefix
	cfg.Retry = RetryConfig{Delays: []Duration{Duration(2 * time.Second)}, GiveUpAfter: Duration(time.Minute)}
	cfg.Ingest.PublishTimeout = Duration(time.Second)
	base := cfg.Endpoints[0]
	cfg.Endpoints = nil
	for id, s := range map[string]*httptest.Server{"ok": ok, "flaky": flaky, "gone": gone, "slow": slow} {
		e := base
		e.ID, e.URL = id, s.URL
		cfg.Endpoints = append(cfg.Endpoints, e)
	}
	l := startProcess(t, cfg)

	body, err := os.ReadFile("../../parse/testdata/paymaya/webhook-payment-success.json")
	if err != nil {
		t.Fatal(err)
	}
	post := func(token, payload string, want int) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://"+l.Ingest+"/ingest/paymaya/acme-maya", strings.NewReader(payload))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("ingest answered %d, want %d", resp.StatusCode, want)
		}
	}
	const token = "dev-maya-token-0123456789"
	post(token, string(body), 200)
	post(token, string(body), 200) // the provider's retry: a duplicate
	post("wrong-token-0123456789", string(body), 401)
	post(token, `{"id":`, 400)

	until := func(what string, cond func(scrape) bool) scrape {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			s := getMetrics(t, l.Admin)
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen within 15s; last scrape:\n%v", what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	is := func(s scrape, want float64, name string, labels ...string) bool {
		v, found := s.sum(name, labels...)
		return found && v == want
	}
	moved := map[string]bool{}
	check := func(s scrape, want float64, name string, labels ...string) {
		t.Helper()
		if v, found := s.sum(name, labels...); !found || v != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, v, found, want)
			return
		}
		moved[name] = true
	}

	s := until("first attempts made, retry pending, slow in flight", func(s scrape) bool {
		return is(s, 1, "hookrelay_deliveries_total", `endpoint="ok"`, `outcome="delivered"`) &&
			is(s, 1, "hookrelay_deliveries_total", `endpoint="flaky"`, `outcome="retry"`) &&
			is(s, 1, "hookrelay_deliveries_total", `endpoint="gone"`, `outcome="dead"`) &&
			is(s, 1, "hookrelay_deliveries_in_flight", `endpoint="slow"`) &&
			is(s, 1, "hookrelay_pending_retries") && is(s, 1, "hookrelay_dead_letters_open")
	})
	src := []string{`provider="paymaya"`, `source="acme-maya"`}
	check(s, 1, "hookrelay_ingest_requests_total", append(src, `outcome="accepted"`)...)
	check(s, 1, "hookrelay_ingest_requests_total", append(src, `outcome="duplicate"`)...)
	check(s, 1, "hookrelay_ingest_requests_total", append(src, `outcome="INGEST_UNAUTHORIZED"`)...)
	check(s, 1, "hookrelay_ingest_requests_total", append(src, `outcome="INGEST_MALFORMED_BODY"`)...)
	check(s, 4, "hookrelay_ingest_request_duration_seconds_count", src...)
	if v, _ := s.sum("hookrelay_ingest_request_duration_seconds_sum", src...); v <= 0 {
		t.Errorf("ingest duration sum = %v, want > 0", v)
	}
	moved["hookrelay_ingest_request_duration_seconds"] = true
	check(s, 1, "hookrelay_deliveries_total", `endpoint="ok"`, `outcome="delivered"`)
	check(s, 1, "hookrelay_delivery_attempt_duration_seconds_count", `endpoint="gone"`)
	moved["hookrelay_delivery_attempt_duration_seconds"] = true
	check(s, 1, "hookrelay_deliveries_in_flight", `endpoint="slow"`)
	check(s, 1, "hookrelay_pending_retries")
	check(s, 1, "hookrelay_dead_letters_open")
	check(s, 0, "hookrelay_scheduler_lateness_seconds_count")

	// The retry comes due 2 s later: the schedule claims it, the second attempt works.
	s = until("the retry delivered", func(s scrape) bool {
		return is(s, 1, "hookrelay_deliveries_total", `endpoint="flaky"`, `outcome="delivered"`) && is(s, 0, "hookrelay_pending_retries")
	})
	check(s, 1, "hookrelay_scheduler_lateness_seconds_count")
	moved["hookrelay_scheduler_lateness_seconds"] = true
	check(s, 0, "hookrelay_pending_retries")

	close(release)
	until("slow answered", func(s scrape) bool {
		return is(s, 0, "hookrelay_deliveries_in_flight", `endpoint="slow"`) &&
			is(s, 1, "hookrelay_deliveries_total", `endpoint="slow"`, `outcome="delivered"`)
	})

	// JetStream gone: the provider is told to retry, and the failed publish counted.
	ns.Server.Shutdown()
	ns.Server.WaitForShutdown()
	post(token, strings.Replace(string(body), `"id": "`, `"id": "x`, 1), 503)
	s = getMetrics(t, l.Admin)
	check(s, 1, "hookrelay_publish_failures_total", `stream="HOOKRELAY_EVENTS"`)
	check(s, 1, "hookrelay_ingest_requests_total", append(src, `outcome="INGEST_STORAGE_UNAVAILABLE"`)...)
	if _, found := s.sum("go_goroutines"); !found {
		t.Error("no Go runtime metrics")
	}

	// Every series the README documents has been checked to move.
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := regexp.MustCompile("(?m)^\\| `(hookrelay_[a-z_]+)` \\|").FindAllSubmatch(readme, -1)
	if len(documented) < 9 {
		t.Fatalf("README's metrics table lists %d series, want at least 9", len(documented))
	}
	for _, m := range documented {
		if !moved[string(m[1])] {
			t.Errorf("README documents %s; this test never saw it move", m[1])
		}
	}
}
