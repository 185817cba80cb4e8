package deliver

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/internal/natsx"
	"github.com/hookrelay/hookrelay/parse"
)

// DefaultMaxInFlight is an endpoint's concurrent attempt limit when none is set.
const DefaultMaxInFlight = 10

// Endpoint is one merchant subscription (SPEC §5).
type Endpoint struct {
	ID       string `json:"id"`
	Merchant string `json:"merchant"`
	URL      string `json:"url"`
	// Types filters event types: exact names ("payment.failed") or a family
	// ("payment.*"); empty means every type.
	Types []string `json:"types,omitempty"`
	// Sources, when not empty, are the only sources whose events match.
	Sources []string `json:"sources,omitempty"`
	// Secret signs deliveries: "whsec_" + base64 of 24 or more random bytes.
	Secret string `json:"secret"`
	// PreviousSecret also signs until PreviousSecretUntil, after a rotation, so the
	// merchant can switch keys without rejecting deliveries.
	PreviousSecret      string     `json:"previous_secret,omitempty"`
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
	// Enabled false holds deliveries (they wait, they are not dropped).
	Enabled     bool              `json:"enabled"`
	Headers     map[string]string `json:"headers,omitempty"`
	MaxInFlight int               `json:"max_in_flight"`
	Description string            `json:"description,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
}

var (
	typeFilter = regexp.MustCompile(`^[a-z]+(\.[a-z_]+|\.\*)$`)
)

// FieldError names one bad endpoint field (the admin API answers them as fieldErrors).
type FieldError struct{ Field, Problem string }

// InvalidEndpointError lists every problem with an endpoint.
type InvalidEndpointError struct{ Fields []FieldError }

func (e *InvalidEndpointError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Problem
	}
	return "deliver: invalid endpoint: " + strings.Join(parts, "; ")
}

// Validate reports every problem with e as an *InvalidEndpointError.
func (e Endpoint) Validate() error {
	var fs []FieldError
	bad := func(field, problem string) { fs = append(fs, FieldError{field, problem}) }
	if !natsx.ValidID(e.ID) {
		bad("id", "want 1-64 lower-case letters, digits, '-' or '_'")
	}
	if !natsx.ValidID(e.Merchant) {
		bad("merchant", "want 1-64 lower-case letters, digits, '-' or '_'")
	}
	if u, err := url.Parse(e.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		bad("url", "want an absolute http(s) URL without credentials")
	}
	for i, t := range e.Types {
		if !typeFilter.MatchString(t) {
			bad(fmt.Sprintf("types[%d]", i), `want an event type like "payment.failed" or a family like "payment.*"`)
		}
	}
	for i, s := range e.Sources {
		if !natsx.ValidID(s) {
			bad(fmt.Sprintf("sources[%d]", i), "not a source id")
		}
	}
	if _, err := ParseSecret(e.Secret); err != nil {
		bad("secret", err.Error())
	}
	if e.PreviousSecret != "" {
		if _, err := ParseSecret(e.PreviousSecret); err != nil {
			bad("previous_secret", err.Error())
		}
	}
	for name := range e.Headers {
		if reservedHeader(name) { // Send would drop it
			bad("headers."+name, "set by hookrelay; cannot be overridden")
		}
	}
	if e.MaxInFlight < 0 || e.MaxInFlight > 1000 {
		bad("max_in_flight", "want 1-1000 (0 means the default, 10)")
	}
	if len(fs) > 0 {
		return &InvalidEndpointError{Fields: fs}
	}
	return nil
}

// Matches reports whether ev goes to this endpoint: same merchant, a type the filter
// lets through, a source the filter lets through. Disabled endpoints still match; their
// deliveries are held, not skipped.
func (e *Endpoint) Matches(ev *parse.Event) bool {
	if ev.Merchant != e.Merchant {
		return false
	}
	if len(e.Sources) > 0 && !slices.Contains(e.Sources, ev.Source) {
		return false
	}
	if len(e.Types) == 0 {
		return true
	}
	for _, t := range e.Types {
		if family, ok := strings.CutSuffix(t, ".*"); ok {
			if strings.HasPrefix(ev.Type, family+".") {
				return true
			}
		} else if t == ev.Type {
			return true
		}
	}
	return false
}
