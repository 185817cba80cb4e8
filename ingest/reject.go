package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/parse"
)

// RejectedHeader is the NATS header that carries a RejectedRequest (as JSON) on each
// HOOKRELAY_REJECTED message. The message data is the request body, byte for byte.
const RejectedHeader = "Hookrelay-Rejected"

// RejectedRequest is everything about a request that failed to parse except its body:
// enough to re-ingest it through a fixed parser. Credentials are never kept.
type RejectedRequest struct {
	Provider   string              `json:"provider"`
	Source     string              `json:"source"`
	Merchant   string              `json:"merchant"`
	ReceivedAt parse.Timestamp     `json:"received_at"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query,omitempty"` // token removed
	Header     map[string][]string `json:"header"`          // credentials removed
	RemoteAddr string              `json:"remote_addr"`
	Error      *apierr.Error       `json:"error"`
}

// reject keeps the raw request in HOOKRELAY_REJECTED and returns the 400 to answer.
// If it cannot be kept, the answer is 503 instead, so the provider sends it again:
// nothing an authenticated provider sent is ever dropped.
func (h *Handler) reject(r *http.Request, src *source, in input, receivedAt time.Time, perr error) *apierr.Error {
	answer := parseAnswer(perr)
	rec := RejectedRequest{
		Provider:   src.Provider,
		Source:     src.ID,
		Merchant:   src.Merchant,
		ReceivedAt: parse.Timestamp{Time: receivedAt},
		Method:     in.method,
		Path:       r.URL.Path,
		Query:      in.query,
		Header:     withoutCredentials(r.Header),
		RemoteAddr: r.RemoteAddr,
		Error:      answer,
	}
	meta, err := json.Marshal(rec)
	if err != nil {
		return apierr.New(apierr.Internal, "could not encode the rejected request")
	}
	msg := &nats.Msg{
		Subject: h.cfg.Topology.RejectedSubject(src.Provider, src.ID),
		Data:    in.body,
		Header:  nats.Header{RejectedHeader: []string{string(meta)}},
	}
	// A provider retrying the same bad request within the duplicate window is kept once.
	// As for an event, a provider that hangs up does not cut the wait for the PubAck
	// short (PublishTimeout still bounds it).
	sum := sha256.Sum256([]byte(src.ID + "\x00" + in.method + "\x00" + in.query + "\x00" + string(in.body)))
	if _, aerr := h.publish(context.WithoutCancel(r.Context()), msg, h.cfg.Topology.RejectedStream(), "rej_"+hex.EncodeToString(sum[:16]), false); aerr != nil {
		return aerr
	}
	h.log.Info("request rejected and kept",
		zap.String("provider", src.Provider), zap.String("source", src.ID),
		zap.String("code", string(answer.Code)), zap.Int("fields", len(answer.FieldErrors)))
	return answer
}

// parseAnswer turns a parser error into the 400 the provider gets.
func parseAnswer(err error) *apierr.Error {
	pe, ok := parse.AsError(err)
	if !ok {
		return apierr.New(apierr.IngestMalformedBody, err.Error())
	}
	code := apierr.IngestInvalidField
	switch pe.Kind {
	case parse.KindMalformed:
		code = apierr.IngestMalformedBody
	case parse.KindEncoding:
		code = apierr.IngestInvalidEncoding
	case parse.KindRepeatedField:
		code = apierr.IngestRepeatedField
	}
	e := apierr.New(code, pe.Msg)
	for _, f := range pe.Fields {
		e.Details = append(e.Details, f.Error())
		e.FieldErrors = append(e.FieldErrors, apierr.FieldError{Field: f.Field, Error: f.Problem})
	}
	return e
}

// withoutToken removes every token=… pair from a raw query, keeping the rest as sent.
func withoutToken(rawQuery string) string {
	if !strings.Contains(rawQuery, "token") {
		return rawQuery
	}
	parts := strings.Split(rawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == "token" {
			continue
		}
		kept = append(kept, p)
	}
	return strings.Join(kept, "&")
}

// withoutCredentials copies h without any header that may carry a credential.
func withoutCredentials(h http.Header) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		lk := strings.ToLower(k)
		switch {
		case lk == "authorization", lk == "proxy-authorization", lk == "cookie",
			strings.Contains(lk, "token"), strings.Contains(lk, "secret"),
			strings.Contains(lk, "password"), strings.Contains(lk, "api-key"), strings.Contains(lk, "apikey"):
			continue
		}
		out[k] = v
	}
	return out
}
