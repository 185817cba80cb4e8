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
	out := page[deliver.StoredEvent]{Items: evs}
	if out.Items == nil {
		out.Items = []deliver.StoredEvent{}
	}
	if next != 0 {
		out.NextCursor = encodeCursor('v', next)
	}
	writeJSON(w, http.StatusOK, out)
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

// encodeCursor makes an opaque cursor for a sequence; kind tells lists apart.
func encodeCursor(kind byte, seq uint64) string {
	return base64.RawURLEncoding.EncodeToString(append([]byte{kind}, strconv.FormatUint(seq, 10)...))
}

// cursorParam reads ?cursor= made by encodeCursor with kind (0 when absent).
func cursorParam(r *http.Request, kind byte, fe *filterErrors) uint64 {
	c := r.URL.Query().Get("cursor")
	if c == "" {
		return 0
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil && len(b) > 1 && b[0] == kind {
		if n, err := strconv.ParseUint(string(b[1:]), 10, 64); err == nil {
			return n
		}
	}
	fe.add("cursor", "not a cursor this list gave")
	return 0
}
