package admin

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/internal/natsx"
)

// eventError maps the event views' errors to answers.
func eventError(id string, err error) *apierr.Error {
	if errors.Is(err, deliver.ErrEventNotFound) {
		return apierr.New(apierr.AdminNotFound, "no event "+id+" (events older than the stream's max age are gone; a lost index comes back with redrive)")
	}
	return internal("event "+id, err)
}

// listEvents finds events: by reference_id through the index, else by walking the
// stream (source and type narrow the subjects read).
func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var fe filterErrors
	q := r.URL.Query()
	f := deliver.EventFilter{Reference: q.Get("reference_id"), Type: q.Get("type"), Source: q.Get("source")}
	f.Since = timeParam(r, "since", &fe)
	f.Until = timeParam(r, "until", &fe)
	limit := limitParam(r, &fe)
	if f.Source != "" && !natsx.ValidID(f.Source) {
		fe.add("source", "not a source id")
	}
	if f.Type != "" && (!strings.Contains(f.Type, ".") || strings.ContainsAny(f.Type, "*> ")) {
		fe.add("type", "want an event type such as payment.failed")
	}
	if len(f.Reference) > 256 {
		fe.add("reference_id", "longer than 256 characters")
	}
	after := cursorParam(r, 'v', &fe)
	if e := fe.err(); e != nil {
		return e
	}
	evs, next, err := s.cfg.Events.Find(r.Context(), f, after, limit)
	if err != nil {
		return internal("find events", err)
	}
	writeJSON(w, http.StatusOK, seqPage(evs, 'v', next))
	return nil
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) *apierr.Error {
	id := r.PathValue("id")
	ev, err := s.cfg.Events.Get(r.Context(), id)
	if err != nil {
		return eventError(id, err)
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}

// eventDeliveries is GET /v1/events/{id}/deliveries: per endpoint, the state, next
// due time and every attempt.
type eventDeliveries struct {
	EventID    string                 `json:"event_id"`
	Deliveries []deliver.DeliveryView `json:"deliveries"`
}

func (s *Server) getEventDeliveries(w http.ResponseWriter, r *http.Request) *apierr.Error {
	id := r.PathValue("id")
	if _, err := s.cfg.Events.Get(r.Context(), id); err != nil {
		return eventError(id, err)
	}
	ds, err := s.cfg.Events.Deliveries(r.Context(), id)
	if err != nil {
		return internal("deliveries of "+id, err)
	}
	writeJSON(w, http.StatusOK, eventDeliveries{EventID: id, Deliveries: ds})
	return nil
}

// Cursors are opaque: base64url of a kind byte (which list) and a position.

// encodeCursor makes a cursor of kind for position at.
func encodeCursor(kind byte, at string) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, at...))
}

// cursorText reads ?cursor= made by encodeCursor with kind ("" when absent).
func cursorText(r *http.Request, kind byte, fe *filterErrors) string {
	c := r.URL.Query().Get("cursor")
	if c == "" {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2 || b[0] != kind {
		fe.add("cursor", "not a cursor this list gave")
		return ""
	}
	return string(b[1:])
}

// cursorParam reads a sequence cursor of kind (0 when absent).
func cursorParam(r *http.Request, kind byte, fe *filterErrors) uint64 {
	t := cursorText(r, kind, fe)
	if t == "" {
		return 0
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		fe.add("cursor", "not a cursor this list gave")
	}
	return n
}

// seqPage is a list answer whose cursor is the stream sequence to go on after
// (0: no more).
func seqPage[T any](items []T, kind byte, next uint64) page[T] {
	out := page[T]{Items: items}
	if out.Items == nil {
		out.Items = []T{}
	}
	if next != 0 {
		out.NextCursor = encodeCursor(kind, strconv.FormatUint(next, 10))
	}
	return out
}
