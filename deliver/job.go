package deliver

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DeliveryID is the id of one (event, endpoint) delivery: a redelivered event message
// maps to the same id, so it never creates a second delivery.
func DeliveryID(eventID, endpointID string) string { return eventID + ":" + endpointID }

// splitDeliveryID returns the event and endpoint ids of a delivery id.
func splitDeliveryID(id string) (eventID, endpointID string, ok bool) {
	return strings.Cut(id, ":")
}

// The schedule keeps, per delivery, only where its event is: "e:<sequence in
// HOOKRELAY_EVENTS>". Small payloads keep Redis at a few dozen bytes per pending retry.
func eventPayload(seq uint64) []byte { return []byte("e:" + strconv.FormatUint(seq, 10)) }

func parseEventPayload(p []byte) (uint64, error) {
	rest, ok := strings.CutPrefix(string(p), "e:")
	if !ok {
		return 0, fmt.Errorf("deliver: unknown delivery payload %q", p)
	}
	return strconv.ParseUint(rest, 10, 64)
}

// Job is a HOOKRELAY_DELIVERIES message: one attempt due now. On the stream the body
// is the event exactly as sent to the merchant and the rest rides in headers, so a
// worker never decodes or re-encodes the event.
type Job struct {
	ID       string          // delivery id
	Endpoint string          // the endpoint id (also the message subject's last token)
	Attempt  int             // 1-based
	First    time.Time       // the schedule's first attempt time
	Due      time.Time       // when this attempt was due
	Seq      uint64          // the event's HOOKRELAY_EVENTS sequence; 0 if unknown
	Event    json.RawMessage // the normalized event, the body sent
}

// The headers of a job message.
const (
	hdrDelivery = "Hookrelay-Delivery"
	hdrAttempt  = "Hookrelay-Attempt"
	hdrFirst    = "Hookrelay-First" // unix ms
	hdrDue      = "Hookrelay-Due"   // unix ms
	hdrEventSeq = "Hookrelay-Event-Seq"
)

// msg is j as a message on subject, with its Nats-Msg-Id.
func (j *Job) msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = j.Event
	m.Header[hdrDelivery] = []string{j.ID}
	m.Header[hdrAttempt] = []string{strconv.Itoa(j.Attempt)}
	m.Header[hdrFirst] = []string{strconv.FormatInt(j.First.UnixMilli(), 10)}
	m.Header[hdrDue] = []string{strconv.FormatInt(j.Due.UnixMilli(), 10)}
	if j.Seq > 0 {
		m.Header[hdrEventSeq] = []string{strconv.FormatUint(j.Seq, 10)}
	}
	// Unique per hand-off: a held attempt handed off again gets a new due time, so
	// JetStream's duplicate window does not swallow its job.
	m.Header[nats.MsgIdHdr] = []string{"job:" + attemptKey(j.ID, j.First, j.Attempt) + ":" + strconv.FormatInt(j.Due.UnixMilli(), 10)}
	return m
}

// jobFrom reads a job message.
func jobFrom(h nats.Header, data []byte) (Job, error) {
	j := Job{ID: h.Get(hdrDelivery), Event: data}
	_, endpoint, ok := splitDeliveryID(j.ID)
	if !ok || endpoint == "" {
		return Job{}, fmt.Errorf("deliver: job without a delivery id (%q)", j.ID)
	}
	j.Endpoint = endpoint
	a, err1 := strconv.Atoi(h.Get(hdrAttempt))
	first, err2 := strconv.ParseInt(h.Get(hdrFirst), 10, 64)
	due, err3 := strconv.ParseInt(h.Get(hdrDue), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || a < 1 {
		return Job{}, fmt.Errorf("deliver: job %s: bad headers: %v", j.ID, err)
	}
	j.Attempt, j.First, j.Due = a, time.UnixMilli(first).UTC(), time.UnixMilli(due).UTC()
	if v := h.Get(hdrEventSeq); v != "" { // absent on jobs written before it existed
		j.Seq, _ = strconv.ParseUint(v, 10, 64)
	}
	return j, nil
}

// attemptKey names one attempt of one schedule in Nats-Msg-Ids: fresh for a replay (a
// new First), which JetStream would otherwise drop as a duplicate.
func attemptKey(id string, first time.Time, attempt int) string {
	return id + ":" + strconv.FormatInt(first.UnixMilli(), 10) + ":" + strconv.Itoa(attempt)
}

// AttemptRecord is one entry of a delivery's attempt log (SPEC §6): number, start,
// duration, HTTP status (0 = no response), first 4 KiB of the response, error.
type AttemptRecord struct {
	Attempt    int       `json:"attempt"`
	Start      time.Time `json:"start"`
	DurationMS int64     `json:"duration_ms"`
	Status     int       `json:"status"`
	Body       string    `json:"body,omitempty"`
	Error      string    `json:"error,omitempty"`
	Outcome    string    `json:"outcome"` // delivered, retry, dead
}

func newRecord(n int, a Attempt, o Outcome) AttemptRecord {
	return AttemptRecord{
		Attempt: n, Start: a.Start.UTC(), DurationMS: a.Duration.Milliseconds(),
		Status: a.Status, Body: a.Body, Error: a.Err, Outcome: o.String(),
	}
}

// DeadLetter is a HOOKRELAY_DEAD message: the delivery that will not be attempted
// again, with everything on-call needs to judge and replay it.
type DeadLetter struct {
	ID       string      `json:"id"` // delivery id
	EventID  string      `json:"event_id"`
	Endpoint EndpointRef `json:"endpoint"`
	Reason   string      `json:"reason"`
	DeadAt   time.Time   `json:"dead_at"`
	// First is the first-attempt time of the schedule that died, and FinalAttempt its
	// last attempt's number: together they name this death, so a replay of an older
	// letter of a delivery replayed since is refused.
	First        time.Time `json:"first_attempt_at"`
	FinalAttempt int       `json:"final_attempt"`
	// EventSeq is the event's HOOKRELAY_EVENTS sequence (0 if unknown): a replay after
	// Redis lost the delivery schedules it afresh from there.
	EventSeq uint64          `json:"event_seq,omitempty"`
	Attempts []AttemptRecord `json:"attempts"`
	Event    json.RawMessage `json:"event,omitempty"` // absent only if the event had expired
}

// EndpointRef names an endpoint in a dead letter (never its secret).
type EndpointRef struct {
	ID       string `json:"id"`
	Merchant string `json:"merchant,omitempty"`
	URL      string `json:"url,omitempty"`
}

// errEventGone: the event has left HOOKRELAY_EVENTS (max age) before its delivery ended.
var errEventGone = errors.New("deliver: event no longer in HOOKRELAY_EVENTS")
