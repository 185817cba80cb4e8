package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/schedule"
)

// Config is the file of SPEC §10. Precedence: flags > environment > file.
type Config struct {
	Listen    string           `yaml:"listen"`
	Admin     AdminConfig      `yaml:"admin"`
	NATS      NATSConfig       `yaml:"nats"`
	Redis     RedisConfig      `yaml:"redis"`
	Log       LogConfig        `yaml:"log"`
	Ingest    IngestConfig     `yaml:"ingest"`
	Sources   []SourceConfig   `yaml:"sources"`
	Endpoints []EndpointConfig `yaml:"endpoints"`
	Retry     RetryConfig      `yaml:"retry"`
	Delivery  DeliveryConfig   `yaml:"delivery"`
	// Roles is what this process runs: ingest, deliver, schedule; empty means all three.
	Roles []string `yaml:"roles"`
	// ShutdownTimeout bounds a shutdown (SIGTERM); default 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// The roles of SPEC §10: receivers, fan-out and workers, the retry loop.
const (
	RoleIngest   = "ingest"
	RoleDeliver  = "deliver"
	RoleSchedule = "schedule"
)

var allRoles = []string{RoleIngest, RoleDeliver, RoleSchedule}

// roleSet is Roles as a set (all three when empty).
func (c *Config) roleSet() map[string]bool {
	set := map[string]bool{}
	for _, r := range c.Roles {
		set[r] = true
	}
	if len(set) == 0 {
		for _, r := range allRoles {
			set[r] = true
		}
	}
	return set
}

// splitRoles reads a comma-separated role list ("ingest, deliver").
func splitRoles(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// AdminConfig is the on-call listener.
type AdminConfig struct {
	Listen string `yaml:"listen"`
	Token  string `yaml:"token"`
}

// NATSConfig: an empty URL runs an embedded JetStream with its store in DataDir.
type NATSConfig struct {
	URL             string   `yaml:"url"`
	DataDir         string   `yaml:"data_dir"`
	DuplicateWindow Duration `yaml:"duplicate_window"` // default 2m
	EventsMaxAge    Duration `yaml:"events_max_age"`   // default 720h
	DeadMaxAge      Duration `yaml:"dead_max_age"`     // default 2160h
	Replicas        int      `yaml:"replicas"`         // default 1
}

// RedisConfig: an empty URL runs an embedded, in-memory Redis.
type RedisConfig struct {
	URL    string `yaml:"url"`
	Prefix string `yaml:"prefix"` // default "hookrelay:"
}

// LogConfig chooses zap's encoder and level.
type LogConfig struct {
	Format string `yaml:"format"` // console (dev) or json (production); default json
	Level  string `yaml:"level"`  // debug, info, warn, error; default info
}

// IngestConfig holds the receivers' limits.
type IngestConfig struct {
	MaxBodyBytes   int64    `yaml:"max_body_bytes"`  // default 1 MiB
	PublishTimeout Duration `yaml:"publish_timeout"` // default 3s
	// TrustedProxies are the load balancers in front, whose X-Forwarded-For is read to
	// find the client address that sources' allow_cidrs are matched against.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// SourceConfig is one provider account of one merchant.
type SourceConfig struct {
	ID       string `yaml:"id"`
	Provider string `yaml:"provider"`
	Merchant string `yaml:"merchant"`
	Token    string `yaml:"token"`
	// PreviousToken is accepted too during a rotation; remove it once the provider
	// sends the new token.
	PreviousToken string   `yaml:"previous_token,omitempty"`
	AllowCIDRs    []string `yaml:"allow_cidrs"`
}

// EndpointConfig is one merchant subscription (SPEC §5).
type EndpointConfig struct {
	ID          string            `yaml:"id"`
	Merchant    string            `yaml:"merchant"`
	URL         string            `yaml:"url"`
	Types       []string          `yaml:"types"`
	Sources     []string          `yaml:"sources"`
	Secret      string            `yaml:"secret"`
	Enabled     *bool             `yaml:"enabled"` // default true
	Headers     map[string]string `yaml:"headers"`
	MaxInFlight int               `yaml:"max_in_flight"` // default 10
	Description string            `yaml:"description"`
}

// RetryConfig is the merchant retry schedule (SPEC §7).
type RetryConfig struct {
	Delays      []Duration `yaml:"delays"`
	ThenEvery   Duration   `yaml:"then_every"`
	GiveUpAfter Duration   `yaml:"give_up_after"`
}

// DeliveryConfig holds the outbound POST's knobs.
type DeliveryConfig struct {
	Timeout    Duration `yaml:"timeout"`
	AllowCIDRs []string `yaml:"allow_cidrs"` // SSRF allow-list
}

// Duration is a time.Duration written as in Go ("90s", "1h30m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 90s or 1h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// envRef matches ${VAR} and ${VAR:-default}.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} with the variable's value (empty when unset) and
// ${VAR:-default} with the value, or the default when the variable is unset or empty.
// A bare $ is left alone, so tokens may contain one.
func expandEnv(b []byte, getenv func(string) string) []byte {
	return envRef.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := envRef.FindSubmatch(m)
		if v := getenv(string(sub[1])); v != "" || len(sub[2]) == 0 {
			return []byte(v)
		}
		return sub[3]
	})
}

// parseConfig reads YAML (after env expansion), rejecting unknown keys.
func parseConfig(raw []byte, getenv func(string) string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(expandEnv(raw, getenv)))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &c, nil
}

// applyEnv overrides file values with the environment (SPEC §10).
func (c *Config) applyEnv(getenv func(string) string) {
	set := func(dst *string, key string) {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	set(&c.NATS.URL, "NATS_URL")
	set(&c.Redis.URL, "REDIS_URL")
	set(&c.Admin.Token, "HOOKRELAY_ADMIN_TOKEN")
	set(&c.Listen, "HOOKRELAY_LISTEN")
	set(&c.Admin.Listen, "HOOKRELAY_ADMIN_LISTEN")
	set(&c.Log.Format, "HOOKRELAY_LOG_FORMAT")
	if v := getenv("HOOKRELAY_ROLES"); v != "" {
		c.Roles = splitRoles(v)
	}
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.Admin.Listen == "" {
		c.Admin.Listen = "127.0.0.1:8081"
	}
	if c.NATS.DataDir == "" {
		c.NATS.DataDir = "./data/nats"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(15 * time.Second)
	}
}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if _, err := c.ingestConfig(); err != nil {
		errs = append(errs, err)
	}
	if len(c.Admin.Token) < admin.MinTokenLength {
		errs = append(errs, fmt.Errorf("admin.token: must be at least %d characters (is HOOKRELAY_ADMIN_TOKEN set?)", admin.MinTokenLength))
	}
	if c.NATS.URL != "" {
		if u, err := url.Parse(c.NATS.URL); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("nats.url %q: not a URL like nats://host:4222", c.NATS.URL))
		}
	}
	if c.Redis.URL != "" {
		if u, err := url.Parse(c.Redis.URL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			errs = append(errs, fmt.Errorf("redis.url: not a redis:// URL"))
		}
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		errs = append(errs, fmt.Errorf("log.format %q: want json or console", c.Log.Format))
	}
	for i, r := range c.Roles {
		if !slices.Contains(allRoles, r) {
			errs = append(errs, fmt.Errorf("roles[%d] %q: want %s", i, r, strings.Join(allRoles, ", ")))
		}
	}
	if c.ShutdownTimeout.D() < time.Second {
		errs = append(errs, fmt.Errorf("shutdown_timeout %v: want at least 1s", c.ShutdownTimeout.D()))
	}
	if _, err := c.endpoints(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.deliveryAllow(); err != nil {
		errs = append(errs, err)
	}
	if err := c.retryPolicy().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("retry: %w", err))
	}
	return errors.Join(errs...)
}

// ingestConfig converts the sources and limits for the ingest package.
func (c *Config) ingestConfig() (ingest.Config, error) {
	ic := ingest.Config{
		MaxBodyBytes:   c.Ingest.MaxBodyBytes,
		PublishTimeout: c.Ingest.PublishTimeout.D(),
	}
	var errs []error
	var perrs []error
	ic.TrustedProxies, perrs = parsePrefixes("ingest.trusted_proxies", c.Ingest.TrustedProxies)
	errs = append(errs, perrs...)
	for i, s := range c.Sources {
		src := ingest.Source{ID: s.ID, Provider: s.Provider, Merchant: s.Merchant, Token: s.Token, PreviousToken: s.PreviousToken}
		src.AllowCIDRs, perrs = parsePrefixes(fmt.Sprintf("sources[%d].allow_cidrs", i), s.AllowCIDRs)
		errs = append(errs, perrs...)
		ic.Sources = append(ic.Sources, src)
	}
	errs = append(errs, ic.Validate())
	return ic, errors.Join(errs...)
}

// endpoints converts the configured endpoints for the endpoint store, validating each
// with the store's own rules.
func (c *Config) endpoints() ([]deliver.Endpoint, error) {
	var out []deliver.Endpoint
	var errs []error
	for i, ec := range c.Endpoints {
		e := deliver.Endpoint{
			ID: ec.ID, Merchant: ec.Merchant, URL: ec.URL, Types: ec.Types, Sources: ec.Sources,
			Secret: ec.Secret, Enabled: ec.Enabled == nil || *ec.Enabled, Headers: ec.Headers,
			MaxInFlight: ec.MaxInFlight, Description: ec.Description,
		}
		if err := e.Validate(); err != nil {
			var ie *deliver.InvalidEndpointError
			if !errors.As(err, &ie) {
				errs = append(errs, fmt.Errorf("endpoints[%d]: %w", i, err))
				continue
			}
			for _, f := range ie.Fields {
				errs = append(errs, fmt.Errorf("endpoints[%d].%s: %s", i, f.Field, f.Problem))
			}
			continue
		}
		out = append(out, e)
	}
	return out, errors.Join(errs...)
}

// retryPolicy converts the retry section; an empty section is SPEC §7's table.
func (c *Config) retryPolicy() schedule.Policy {
	r := c.Retry
	if len(r.Delays) == 0 && r.ThenEvery == 0 && r.GiveUpAfter == 0 {
		return schedule.DefaultPolicy()
	}
	p := schedule.Policy{ThenEvery: r.ThenEvery.D(), GiveUpAfter: r.GiveUpAfter.D()}
	for _, d := range r.Delays {
		p.Delays = append(p.Delays, d.D())
	}
	return p
}

// deliveryAllow parses the SSRF allow-list.
func (c *Config) deliveryAllow() ([]netip.Prefix, error) {
	out, errs := parsePrefixes("delivery.allow_cidrs", c.Delivery.AllowCIDRs)
	return out, errors.Join(errs...)
}

// parsePrefixes parses the CIDRs of config list field, masked; one error per bad entry.
func parsePrefixes(field string, cidrs []string) ([]netip.Prefix, []error) {
	var out []netip.Prefix
	var errs []error
	for i, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d] %q: %v", field, i, s, err))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errs
}

// streamConfig converts the NATS knobs for natsx.
func (c *Config) streamConfig() natsx.StreamConfig {
	return natsx.StreamConfig{
		EventsMaxAge:    c.NATS.EventsMaxAge.D(),
		DeadMaxAge:      c.NATS.DeadMaxAge.D(),
		DuplicateWindow: c.NATS.DuplicateWindow.D(),
		Replicas:        c.NATS.Replicas,
	}
}

// loadConfig reads the file at path (the embedded dev config when path is empty),
// then applies the environment and defaults. Flags are applied by the caller.
func loadConfig(path string, dev []byte, getenv func(string) string) (*Config, error) {
	raw := dev
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		raw = b
	}
	c, err := parseConfig(raw, getenv)
	if err != nil {
		return nil, err
	}
	c.applyEnv(getenv)
	c.applyDefaults()
	return c, nil
}
