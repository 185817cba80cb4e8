package admin

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/internal/natsx"
)

// maxRedrive bounds the events one redrive request reads; a truncated answer says to
// go on from a later since.
const maxRedrive = 1_000_000

// redriveBody is the body of POST /v1/redrive.
type redriveBody struct {
	Since    *time.Time `json:"since"`    // required: events stored at or after
	Endpoint string     `json:"endpoint"` // only this endpoint's deliveries
}

// redrive is SPEC §8's disaster recovery: every delivery of the events since the time
// that the schedule does not know is scheduled again (same webhook-id).
func (s *Server) redrive(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var b redriveBody
	if e := decodeBody(r, &b, false); e != nil {
		return e
	}
	var fe []apierr.FieldError
	if b.Since == nil {
		fe = append(fe, apierr.FieldError{Field: "since", Error: "required: an RFC 3339 time"})
	}
	if b.Endpoint != "" && !natsx.ValidID(b.Endpoint) {
		fe = append(fe, apierr.FieldError{Field: "endpoint", Error: "not an endpoint id"})
	}
	if len(fe) > 0 {
		return &apierr.Error{Code: apierr.AdminInvalidField, Message: "the redrive is invalid", FieldErrors: fe}
	}
	res, err := s.cfg.Redrive.Redrive(r.Context(), *b.Since, b.Endpoint, maxRedrive)
	if err != nil {
		return internal("redrive", err)
	}
	s.log.Info("redrive", zap.Time("since", *b.Since), zap.String("endpoint", b.Endpoint),
		zap.Int("events", res.Events), zap.Int("scheduled", res.Scheduled), zap.Int("known", res.Known))
	writeJSON(w, http.StatusOK, res)
	return nil
}
