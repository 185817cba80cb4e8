package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
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

	body, err := os.ReadFile("../../parse/testdata/paymaya/webhook-payment-success.json")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/ingest/paymaya/acme-maya", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("", "dev-maya-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ingest answered %d", resp.StatusCode)
	}
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
