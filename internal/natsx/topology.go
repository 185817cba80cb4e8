// Package natsx is hookrelay's NATS plumbing: the names of streams and subjects
// (SPEC §4), their creation at start-up, the embedded JetStream server for dev mode and
// tests.
package natsx

import "regexp"

// idPattern keeps ids usable as NATS subject tokens (and Redis key parts).
var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidID reports whether s may be a source, merchant or endpoint id: 1-64 lower-case
// letters, digits, '-' or '_', not starting with '-' or '_'.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// Topology names hookrelay's streams and subjects. The zero value is the production
// contract of SPEC §4 (HOOKRELAY_EVENTS on hookrelay.events.>, …). Tests that share a
// real server set both prefixes so their streams and subjects never collide.
type Topology struct {
	StreamPrefix  string // prepended to stream names, e.g. "T42_"
	SubjectPrefix string // prepended to subjects, e.g. "t42."
}

// Stream names.
func (t Topology) EventsStream() string     { return t.StreamPrefix + "HOOKRELAY_EVENTS" }
func (t Topology) DeliveriesStream() string { return t.StreamPrefix + "HOOKRELAY_DELIVERIES" }
func (t Topology) DeadStream() string       { return t.StreamPrefix + "HOOKRELAY_DEAD" }
func (t Topology) RejectedStream() string   { return t.StreamPrefix + "HOOKRELAY_REJECTED" }

// EndpointsBucket is the JetStream key-value bucket of merchant endpoints.
func (t Topology) EndpointsBucket() string { return t.StreamPrefix + "HOOKRELAY_ENDPOINTS" }

// Streams lists every stream name (a key-value bucket is stream KV_<bucket>), for
// clean-up and health checks.
func (t Topology) Streams() []string {
	return []string{t.EventsStream(), t.DeliveriesStream(), t.DeadStream(), t.RejectedStream(), "KV_" + t.EndpointsBucket()}
}

// EventSubject is hookrelay.events.{provider}.{source}.{type}. The type contains a dot
// ("payment.succeeded"), so it is the last two tokens.
func (t Topology) EventSubject(provider, source, typ string) string {
	return t.SubjectPrefix + "hookrelay.events." + provider + "." + source + "." + typ
}

// RejectedSubject is hookrelay.rejected.{provider}.{source}.
func (t Topology) RejectedSubject(provider, source string) string {
	return t.SubjectPrefix + "hookrelay.rejected." + provider + "." + source
}

// DeliverySubject is hookrelay.deliveries.{endpoint}.
func (t Topology) DeliverySubject(endpoint string) string {
	return t.SubjectPrefix + "hookrelay.deliveries." + endpoint
}

// DeadSubject is hookrelay.dead.{endpoint}.
func (t Topology) DeadSubject(endpoint string) string {
	return t.SubjectPrefix + "hookrelay.dead." + endpoint
}

// ScheduleWakeSubject is a core NATS subject (no stream): a process that made a retry
// due within schedule.WakeHorizon publishes on it, and every schedule loop listening
// looks at once.
func (t Topology) ScheduleWakeSubject() string { return t.SubjectPrefix + "hookrelay.schedule.wake" }

func (t Topology) eventsWildcard() string     { return t.SubjectPrefix + "hookrelay.events.>" }
func (t Topology) deliveriesWildcard() string { return t.SubjectPrefix + "hookrelay.deliveries.>" }
func (t Topology) deadWildcard() string       { return t.SubjectPrefix + "hookrelay.dead.>" }
func (t Topology) rejectedWildcard() string   { return t.SubjectPrefix + "hookrelay.rejected.>" }
