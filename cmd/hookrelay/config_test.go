package main

import (
	"strings"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/configs"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestExpandEnv(t *testing.T) {
	getenv := env(map[string]string{"SET": "value", "EMPTY": ""})
	for _, tc := range []struct{ in, want string }{
		{"${SET}", "value"},
		{"${UNSET}", ""},
		{"${UNSET:-fallback}", "fallback"},
		{"${EMPTY:-fallback}", "fallback"},
		{"${SET:-fallback}", "value"},
		{"a-$SET-${SET}", "a-$SET-value"}, // a bare $ is literal
		{"tok$en", "tok$en"},
	} {
		if got := string(expandEnv([]byte(tc.in), getenv)); got != tc.want {
			t.Errorf("expandEnv(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDevConfig: the built-in demo config loads and validates with no environment.
func TestDevConfig(t *testing.T) {
	c, err := loadConfig("", configs.Dev, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("dev config invalid: %v", err)
	}
	if c.NATS.URL != "" || c.Redis.URL != "" {
		t.Errorf("dev config is not embedded: nats %q redis %q", c.NATS.URL, c.Redis.URL)
	}
	providers := map[string]bool{}
	for _, s := range c.Sources {
		providers[s.Provider] = true
	}
	if !providers["paymaya"] || !providers["paytia"] {
		t.Errorf("dev config sources = %+v, want one per provider", c.Sources)
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour}
	for i, d := range c.Retry.Delays {
		if d.D() != want[i] {
			t.Errorf("retry.delays[%d] = %v, want %v", i, d.D(), want[i])
		}
	}
}

// TestPrecedence: environment over file; flags are applied over both by serve.
func TestPrecedence(t *testing.T) {
	file := []byte(`
listen: ":9999"
nats: {url: "nats://file:4222"}
redis: {url: "redis://file:6379"}
sources:
  - {id: s1, provider: paymaya, merchant: m1, token: "${TOK:-default-token-0123456789}"}
`)
	c, err := parseConfig(file, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c.applyEnv(env(map[string]string{"NATS_URL": "nats://env:4222"}))
	if c.NATS.URL != "nats://env:4222" || c.Redis.URL != "redis://file:6379" || c.Listen != ":9999" {
		t.Errorf("after env: nats %q redis %q listen %q", c.NATS.URL, c.Redis.URL, c.Listen)
	}
	if c.Sources[0].Token != "default-token-0123456789" {
		t.Errorf("token = %q", c.Sources[0].Token)
	}
}

// TestInvalidConfigs: each broken file is refused with an error naming the key.
func TestInvalidConfigs(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "listen: ':1'\nlisten_typo: 1\n", "listen_typo"},
		{"bad duration", "retry: {delays: [1x]}\n", "not a duration"},
		{"unknown provider", "sources: [{id: a, provider: stripe, merchant: m, token: 0123456789abcdefgh}]\n", "sources[0].provider"},
		{"short token", "sources: [{id: a, provider: paymaya, merchant: m, token: '${MISSING}'}]\n", "sources[0].token"},
		{"bad id", "sources: [{id: 'A B', provider: paymaya, merchant: m, token: 0123456789abcdefgh}]\n", "sources[0].id"},
		{"duplicate id", "sources: [{id: a, provider: paymaya, merchant: m, token: 0123456789abcdefgh}, {id: a, provider: paytia, merchant: m, token: 0123456789abcdefgh}]\n", "used twice"},
		{"bad cidr", "sources: [{id: a, provider: paymaya, merchant: m, token: 0123456789abcdefgh, allow_cidrs: [10.0.0.0/33]}]\n", "allow_cidrs[0]"},
		{"bad trusted proxy", "ingest: {trusted_proxies: [10.0.0.1]}\n", "ingest.trusted_proxies[0]"},
		{"short previous token", "sources: [{id: a, provider: paymaya, merchant: m, token: 0123456789abcdefgh, previous_token: short}]\n", "sources[0].previous_token"},
		{"bad role", "roles: [ingest, worker]\n", `roles[1] "worker"`},
		{"short shutdown timeout", "shutdown_timeout: 10ms\n", "shutdown_timeout"},
		{"bad nats url", "nats: {url: '::nope'}\n", "nats.url"},
		{"bad log format", "log: {format: xml}\n", "log.format"},
		{"bad endpoint secret", "endpoints: [{id: e, merchant: m, url: 'https://x.example/h', secret: nope}]\n", "endpoints[0].secret"},
		{"bad endpoint url", "endpoints: [{id: e, merchant: m, url: 'ftp://x', secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}]\n", "endpoints[0].url"},
		{"bad endpoint type", "endpoints: [{id: e, merchant: m, url: 'https://x.example/h', types: ['*'], secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw}]\n", "endpoints[0].types[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig([]byte(tc.yaml), env(nil))
			if err == nil {
				c.applyDefaults()
				err = c.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one naming %q", err, tc.want)
			}
		})
	}
}
