package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs the hookrelay command line and returns stdout, stderr and the error.
func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hookrelay.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validConfig = `
listen: 127.0.0.1:8080
admin: {listen: 127.0.0.1:8081, token: admin-secret-token-planted-1}
nats: {url: "nats://user:nats-password-planted@nats.internal:4222"}
redis: {url: "redis://:redis-password-planted@redis.internal:6379/0"}
sources:
  - {id: acme-maya, provider: paymaya, merchant: acme, token: maya-token-planted-0123456, previous_token: maya-old-token-planted-0123}
endpoints:
  - id: acme-orders
    merchant: acme
    url: https://acme.example/hooks?key=url-token-planted
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    headers: {Authorization: "Bearer header-credential-planted"}
`

// TestConfigValidate: a good file is valid (exit 0); each broken one exits 1 with an
// error naming the key and what is wrong.
func TestConfigValidate(t *testing.T) {
	out, _, err := runCmd(t, "config", "validate", "--config", writeFile(t, validConfig))
	if err != nil || !strings.Contains(out, "is valid: 1 sources, 1 endpoints") {
		t.Fatalf("valid file: %q, %v", out, err)
	}
	if out, _, err := runCmd(t, "config", "validate"); err != nil || !strings.Contains(out, "built-in demo config is valid") {
		t.Errorf("built-in config: %q, %v", out, err)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "listen: ':1'\nlisten_typo: 1\n", "listen_typo"},
		{"not yaml", "listen: [unclosed\n", "yaml"},
		{"bad duration", "retry: {delays: [1x]}\n", "not a duration"},
		{"short source token", "sources: [{id: a, provider: paymaya, merchant: m, token: short}]\n", "sources[0].token"},
		{"unknown provider", "sources: [{id: a, provider: stripe, merchant: m, token: 0123456789abcdefgh}]\n", "sources[0].provider"},
		{"bad endpoint secret", "endpoints: [{id: e, merchant: m, url: 'https://x.example/h', secret: nope}]\n", "endpoints[0].secret"},
		{"bad cidr", "delivery: {allow_cidrs: [300.0.0.0/8]}\n", "delivery.allow_cidrs[0]"},
		{"bad log format", "log: {format: xml}\n", "log.format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, "config", "validate", "--config", writeFile(t, tc.yaml))
			if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v (exit %d), want exit 1 naming %q", err, exitCode(err), tc.want)
			}
		})
	}
	if _, _, err := runCmd(t, "config", "validate", "--config", filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file validated")
	}
	if _, _, err := runCmd(t, "config", "check"); exitCode(err) != 2 {
		t.Errorf("unknown action: %v (exit %d), want a usage error", err, exitCode(err))
	}
}

// TestConfigPrint: the effective config, with every planted credential masked, and the
// environment applied over the file.
func TestConfigPrint(t *testing.T) {
	t.Setenv("HOOKRELAY_LISTEN", "0.0.0.0:9999")
	out, _, err := runCmd(t, "config", "print", "--config", writeFile(t, validConfig))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"admin-secret-token-planted-1", "nats-password-planted", "redis-password-planted",
		"maya-token-planted-0123456", "maya-old-token-planted-0123", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "header-credential-planted", "url-token-planted"} {
		if strings.Contains(out, secret) {
			t.Errorf("config print shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"listen: 0.0.0.0:9999", "nats.internal:4222", "Authorization: '***'", "acme-maya"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
}

// TestProbe: 0 on a 200, an error on anything else or no answer, usage error without a URL.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if _, _, err := runCmd(t, "probe", srv.URL+"/readyz"); err != nil {
		t.Errorf("probe of a 200: %v", err)
	}
	if _, _, err := runCmd(t, "probe", srv.URL+"/other"); err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "503") {
		t.Errorf("probe of a 503: %v", err)
	}
	if _, _, err := runCmd(t, "probe", "--timeout", "200ms", "http://127.0.0.1:1/readyz"); err == nil || exitCode(err) != 1 {
		t.Errorf("probe of nothing: %v", err)
	}
	if _, _, err := runCmd(t, "probe"); exitCode(err) != 2 {
		t.Errorf("probe without a URL: %v", err)
	}
}

// TestProductionConfig: configs/hookrelay.yaml validates once its secrets are set, and
// refuses to start without them.
func TestProductionConfig(t *testing.T) {
	if _, _, err := runCmd(t, "config", "validate", "--config", "../../configs/hookrelay.yaml"); err == nil ||
		!strings.Contains(err.Error(), "admin.token") || !strings.Contains(err.Error(), "sources[0].token") {
		t.Errorf("without its secrets: %v; want admin.token and the source tokens named", err)
	}
	for k, v := range map[string]string{
		"HOOKRELAY_ADMIN_TOKEN": "prod-admin-token-0123456789", "ACME_MAYA_TOKEN": "maya-token-0123456789",
		"ACME_PAYTIA_TOKEN": "paytia-token-0123456789", "ACME_ORDERS_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	} {
		t.Setenv(k, v)
	}
	if out, _, err := runCmd(t, "config", "validate", "--config", "../../configs/hookrelay.yaml"); err != nil {
		t.Errorf("with its secrets: %v\n%s", err, out)
	}
	// docker-compose.yml runs the same file with the compose network opened.
	t.Setenv("HOOKRELAY_DELIVERY_ALLOW_CIDRS", `["172.28.0.0/16"]`)
	cfg, err := loadConfig("../../configs/hookrelay.yaml", nil, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("as docker-compose.yml runs it: %v", err)
	}
	if got := cfg.Delivery.AllowCIDRs; len(got) != 1 || got[0] != "172.28.0.0/16" {
		t.Errorf("as docker-compose.yml runs it: delivery.allow_cidrs %v, want [172.28.0.0/16]", got)
	}
}
