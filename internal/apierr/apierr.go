// Package apierr is the one table of hookrelay's HTTP error codes and the one writer of
// the error envelope (SPEC §9):
//
//	{"error": {"code": "INGEST_INVALID_FIELD", "message": "…", "details": ["…"],
//	           "fieldErrors": [{"field": "reference_id", "error": "missing"}]}}
//
// with the code repeated in the X-Application-Error-Code header. Codes are stable: add,
// never rename. README.md lists the same table (a test keeps the two in step).
package apierr

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// Code is a stable, upper snake case error code.
type Code string

// Every code hookrelay answers with.
const (
	NotFound         Code = "NOT_FOUND"
	MethodNotAllowed Code = "METHOD_NOT_ALLOWED"
	Internal         Code = "INTERNAL_ERROR"

	IngestUnknownProvider    Code = "INGEST_UNKNOWN_PROVIDER"
	IngestUnknownSource      Code = "INGEST_UNKNOWN_SOURCE"
	IngestUnauthorized       Code = "INGEST_UNAUTHORIZED"
	IngestForbiddenClient    Code = "INGEST_FORBIDDEN_CLIENT"
	IngestUnsupportedMedia   Code = "INGEST_UNSUPPORTED_MEDIA_TYPE"
	IngestBodyTooLarge       Code = "INGEST_BODY_TOO_LARGE"
	IngestReadFailed         Code = "INGEST_READ_FAILED"
	IngestMalformedBody      Code = "INGEST_MALFORMED_BODY"
	IngestInvalidEncoding    Code = "INGEST_INVALID_ENCODING"
	IngestInvalidField       Code = "INGEST_INVALID_FIELD"
	IngestRepeatedField      Code = "INGEST_REPEATED_FIELD"
	IngestStorageUnavailable Code = "INGEST_STORAGE_UNAVAILABLE"

	AdminUnauthorized  Code = "ADMIN_UNAUTHORIZED"
	AdminInvalidBody   Code = "ADMIN_INVALID_BODY"
	AdminInvalidField  Code = "ADMIN_INVALID_FIELD"
	AdminInvalidFilter Code = "ADMIN_INVALID_FILTER"
	AdminNotFound      Code = "ADMIN_NOT_FOUND"
	AdminConflict      Code = "ADMIN_CONFLICT"
	AdminAlreadyDone   Code = "ADMIN_ALREADY_REPLAYED"
	AdminUnavailable   Code = "ADMIN_UNAVAILABLE"
)

// Info describes a code: the HTTP status it always comes with and what it means.
type Info struct {
	Code    Code
	Status  int
	Meaning string
}

// Table lists every code, in the order the README shows them.
var Table = []Info{
	{NotFound, http.StatusNotFound, "no such route"},
	{MethodNotAllowed, http.StatusMethodNotAllowed, "the route exists but not for this method (see the Allow header)"},
	{Internal, http.StatusInternalServerError, "a bug in hookrelay; nothing was stored"},
	{IngestUnknownProvider, http.StatusNotFound, "the provider in the path is not paymaya or paytia; nothing was stored"},
	{IngestUnknownSource, http.StatusNotFound, "no source with this id for this provider; nothing was stored"},
	{IngestUnauthorized, http.StatusUnauthorized, "the source token is missing or wrong; nothing was stored"},
	{IngestForbiddenClient, http.StatusForbidden, "the client address is outside the source's allow_cidrs; nothing was stored"},
	{IngestUnsupportedMedia, http.StatusUnsupportedMediaType, "PayMaya needs application/json, Paytia application/x-www-form-urlencoded; nothing was stored"},
	{IngestBodyTooLarge, http.StatusRequestEntityTooLarge, "the body is over the limit (1 MiB by default); nothing was stored"},
	{IngestReadFailed, http.StatusBadRequest, "the body could not be read (the client went away or sent too slowly); nothing was stored"},
	{IngestMalformedBody, http.StatusBadRequest, "the body is not a JSON object / a valid form; the raw request is kept in HOOKRELAY_REJECTED"},
	{IngestInvalidEncoding, http.StatusBadRequest, "the body is not valid UTF-8; the raw request is kept in HOOKRELAY_REJECTED"},
	{IngestInvalidField, http.StatusBadRequest, "fields are missing or invalid (see fieldErrors); the raw request is kept in HOOKRELAY_REJECTED"},
	{IngestRepeatedField, http.StatusBadRequest, "a field appears more than once (see fieldErrors); the raw request is kept in HOOKRELAY_REJECTED"},
	{IngestStorageUnavailable, http.StatusServiceUnavailable, "JetStream did not confirm the write in time; retry after Retry-After seconds"},
	{AdminUnauthorized, http.StatusUnauthorized, "admin API: the bearer token is missing or wrong"},
	{AdminInvalidBody, http.StatusBadRequest, "admin API: the request body is not the JSON object the route takes (unknown fields are refused); nothing changed"},
	{AdminInvalidField, http.StatusBadRequest, "admin API: fields of the body are invalid (see fieldErrors); nothing changed"},
	{AdminInvalidFilter, http.StatusBadRequest, "admin API: a query parameter (filter, limit or cursor) is invalid (see fieldErrors)"},
	{AdminNotFound, http.StatusNotFound, "admin API: no endpoint, event, dead letter or job with this id"},
	{AdminConflict, http.StatusConflict, "admin API: the change conflicts with the current state (an endpoint with this id exists, or it changed meanwhile: read it and retry); nothing changed"},
	{AdminAlreadyDone, http.StatusConflict, "admin API: this dead letter was already replayed (or is being replayed); nothing was sent again"},
	{AdminUnavailable, http.StatusServiceUnavailable, "admin API: NATS or Redis did not answer; nothing changed, retry"},
}

var statusOf = func() map[Code]int {
	m := make(map[Code]int, len(Table))
	for _, i := range Table {
		m[i.Code] = i.Status
	}
	return m
}()

// Status is the HTTP status that always goes with c (500 for an unlisted code).
func Status(c Code) int {
	if s, ok := statusOf[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// FieldError names one bad field.
type FieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// Error is the envelope's inner object. It is also a Go error, so handlers can build one
// deep down and write it in one place.
type Error struct {
	Code        Code         `json:"code"`
	Message     string       `json:"message"`
	Details     []string     `json:"details,omitempty"`
	FieldErrors []FieldError `json:"fieldErrors,omitempty"`

	// RetryAfter, when set, is sent as the Retry-After header (whole seconds, at least 1).
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// New returns an *Error with code c and message msg.
func New(c Code, msg string) *Error { return &Error{Code: c, Message: msg} }

// Write sends e as the envelope with its status, the X-Application-Error-Code header and,
// when set, Retry-After.
func Write(w http.ResponseWriter, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Application-Error-Code", string(e.Code))
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		secs := int(e.RetryAfter.Round(time.Second) / time.Second)
		if secs < 1 {
			secs = 1
		}
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	w.WriteHeader(Status(e.Code))
	_ = json.NewEncoder(w).Encode(struct {
		Error *Error `json:"error"`
	}{e})
}
