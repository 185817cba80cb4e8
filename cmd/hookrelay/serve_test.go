package main

import (
	"encoding/json"
	"fmt"
	"go.uber.org/zap"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hookrelay/hookrelay/configs"
)

// startServe runs serve with the demo config and a fresh data dir; it stops when the
// test ends and must stop cleanly.
func startServe(t *testing.T, change func(*Config)) listening {
	t.Helper()
	cfg, err := loadConfig("", configs.Dev, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.NATS.DataDir = t.TempDir()
	if change != nil {
		change(cfg)
	}
	return startProcess(t, cfg)
}

// TestServeDelivers: a PayMaya callback posted to serve reaches the demo endpoint,
// signed, with the stored event as its body.
func TestServeDelivers(t *testing.T) {
	got := make(chan *http.Request, 1)
	bodies := make(chan []byte, 1)
	verifier, err := standardwebhooks.NewWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := verifier.Verify(b, r.Header); err != nil {
			t.Errorf("signature: %v", err)
		}
		select {
		case got <- r:
			bodies <- b
		default:
		}
	}))
	defer merchant.Close()
	addr := startServe(t, func(c *Config) { c.Endpoints[0].URL = merchant.URL + "/hooks" }).Ingest

	postPayMaya(t, addr, samplePayMaya(t))
	select {
	case r := <-got:
		b := <-bodies
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		if r.Header.Get("webhook-id") != "evt_5ng6kxhe4adais5sfeioi2vr7d" || ev["id"] != "evt_5ng6kxhe4adais5sfeioi2vr7d" || ev["type"] != "payment.succeeded" {
			t.Errorf("delivery: webhook-id %q, event %v", r.Header.Get("webhook-id"), ev)
		}
		if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "hookrelay/") {
			t.Errorf("User-Agent = %q", ua)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the merchant got nothing within 10s")
	}
}

// TestShutdownBoundWithSlowUpload: a provider upload still arriving at shutdown holds
// the provider listener's drain; the hand-back of a hanging delivery attempt still
// comes before the bound, and serve returns within it. (The hand-back timer used to
// start only after the drain, which such an upload can stretch to the whole bound.)
func TestShutdownBoundWithSlowUpload(t *testing.T) {
	attempt := make(chan struct{}, 1)
	handedBack := make(chan struct{}, 1)
	merchant := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // then net/http notices the client going away
		attempt <- struct{}{}
		select {
		case <-r.Context().Done():
			handedBack <- struct{}{}
		case <-time.After(30 * time.Second):
		}
	}))
	defer merchant.Close()
	cfg, err := loadConfig("", configs.Dev, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen, cfg.Admin.Listen, cfg.NATS.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Endpoints[0].URL = merchant.URL + "/hooks"
	cfg.Delivery.Timeout = Duration(time.Minute)
	const bound = 3 * time.Second
	cfg.ShutdownTimeout = Duration(bound)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := runServed(t, cfg, zap.NewNop())
	l := srv.listening
	postPayMaya(t, l.Ingest, samplePayMaya(t))
	select {
	case <-attempt:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt reached the merchant")
	}
	// An upload that promises a body and sends one byte of it.
	c, err := net.Dial("tcp", l.Ingest)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /ingest/paymaya/acme-maya HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer dev-maya-token-0123456789\r\nContent-Length: 100000\r\n\r\n{")
	time.Sleep(100 * time.Millisecond) // the server has the request and waits for its body

	start := time.Now()
	srv.cancel()
	select {
	case <-handedBack:
		if d := time.Since(start); d > bound {
			t.Errorf("the hanging attempt was handed back %v after shutdown began, past the %v bound", d, bound)
		}
	case <-time.After(bound + 5*time.Second):
		t.Fatal("the hanging attempt was never handed back")
	}
	err, returned := srv.wait()
	if !returned {
		t.Fatal("serve did not return")
	}
	if err != nil {
		t.Errorf("serve returned %v", err)
	}
	if d := time.Since(start); d > bound+time.Second {
		t.Errorf("serve returned %v after shutdown began, bound %v", d, bound)
	}
}
