package main

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseProcs(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []procSpec
	}{
		{"all=1", []procSpec{{Roles: allRoles, Count: 1}}},
		{"all", []procSpec{{Roles: allRoles, Count: 1}}},
		{"ingest=2,deliver=1,schedule=1", []procSpec{{[]string{"ingest"}, 2}, {[]string{"deliver"}, 1}, {[]string{"schedule"}, 1}}},
		{"deliver+ingest=2, schedule", []procSpec{{[]string{"ingest", "deliver"}, 2}, {[]string{"schedule"}, 1}}},
	} {
		got, err := parseProcs(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("parseProcs(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "ingest=2", "ingest=0,deliver,schedule", "all=x", "web=1,all=1"} {
		if got, err := parseProcs(in); err == nil {
			t.Errorf("parseProcs(%q) = %+v, want an error", in, got)
		}
	}
	if n := (procSpec{Roles: []string{"ingest", "deliver"}}).name(); n != "ingest+deliver" {
		t.Errorf("name = %q", n)
	}
}

func TestScaledRetry(t *testing.T) {
	if got, want := scaledRetry(1), "{delays: [1m0s, 2m0s, 4m0s, 8m0s, 15m0s, 30m0s, 1h0m0s], then_every: 24h0m0s, give_up_after: 168h0m0s}"; got != want {
		t.Errorf("scaledRetry(1) = %s", got)
	}
	if got, want := scaledRetry(60), "{delays: [1s, 2s, 4s, 8s, 15s, 30s, 1m0s], then_every: 24m0s, give_up_after: 2h48m0s}"; got != want {
		t.Errorf("scaledRetry(60) = %s", got)
	}
	// The faults mode's default: SPEC §7's 14 attempts in about 53s, in whole ms.
	p := scaledPolicy(10000)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	offs := p.Offsets()
	if len(offs) != 14 || offs[1] != 6*time.Millisecond || offs[7] != 720*time.Millisecond || offs[13] != 720*time.Millisecond+6*8640*time.Millisecond {
		t.Errorf("scaledPolicy(10000) offsets = %v", offs)
	}
}

// TestRelayConfig: the config is YAML with the keys SPEC §10 names.
func TestRelayConfig(t *testing.T) {
	sec := newSecrets(2)
	raw := relayConfig(sec, "http://127.0.0.1:9999", 256, 60, 15*time.Second, 1500*time.Millisecond)
	var cfg struct {
		Listen    string `yaml:"listen"`
		Sources   []map[string]any
		Endpoints []map[string]any
		Retry     map[string]any
		Delivery  struct {
			Timeout    string   `yaml:"timeout"`
			AllowCIDRs []string `yaml:"allow_cidrs"`
		}
		ShutdownTimeout string `yaml:"shutdown_timeout"`
	}
	if err := yaml.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if len(cfg.Sources) != 2 || len(cfg.Endpoints) != 2 || cfg.Delivery.AllowCIDRs[0] != "127.0.0.0/8" || cfg.ShutdownTimeout != "15s" || cfg.Delivery.Timeout != "1.5s" {
		t.Errorf("config:\n%s", raw)
	}
	ep := cfg.Endpoints[1]
	if ep["url"] != "http://127.0.0.1:9999/hooks/sink-2" || ep["max_in_flight"] != 256 || !strings.HasPrefix(ep["secret"].(string), "whsec_") {
		t.Errorf("endpoint 2: %v", ep)
	}
	if cfg.Retry["then_every"] != "24m0s" {
		t.Errorf("retry: %v", cfg.Retry)
	}
}
