// Package admin is the on-call API of SPEC §8: merchant endpoints, dead letters and
// their replay, behind a bearer token on a listener of its own. Every error answers
// with the envelope of SPEC §9 (internal/apierr); lists page with an opaque cursor.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/ingest"
	"github.com/hookrelay/hookrelay/internal/apierr"
	"github.com/hookrelay/hookrelay/internal/clock"
	"github.com/hookrelay/hookrelay/internal/redisx"
)

// Config configures the admin API. Token is required; the stores are what the routes
// read and change.
type Config struct {
	Token     string
	Endpoints *deliver.EndpointStore
	Letters   *deliver.DeadLetterStore
	Events    *deliver.Events
	// Rejected, when set, serves the quarantined provider requests (/v1/rejected).
	Rejected *ingest.Quarantine
	// Redrive, when set, serves POST /v1/redrive.
	Redrive *deliver.Redriver
	// Live, when set, is this process's live copy of the endpoints (fan-out routes with
	// it): endpoint changes are answered once it shows them (at most a few seconds), so
	// an event published after the answer is routed by the new settings here.
	Live LiveEndpoints
	// Ready reports whether NATS and Redis answer (GET /readyz); nil means ready.
	Ready func(ctx context.Context) error
	// Metrics serves GET /metrics (Prometheus); nil: no such route. Like /healthz and
	// /readyz it needs no token, so a scraper holds none.
	Metrics http.Handler
	// MaxBulkReplay bounds how many letters one bulk replay job may take; default 100,000.
	MaxBulkReplay int
	Clock         clock.Clock
	Logger        *zap.Logger
}

// LiveEndpoints is the live endpoint set: *deliver.EndpointSet.
type LiveEndpoints interface {
	Get(id string) (deliver.Endpoint, bool)
}

var _ LiveEndpoints = (*deliver.EndpointSet)(nil)

// Server is the admin API's http.Handler.
type Server struct {
	cfg       Config
	log       *zap.Logger
	tokenHash [32]byte
	mux       *http.ServeMux
	replays   *replayJobs
}

// maxBody bounds a request body; admin bodies are small JSON objects.
const maxBody = 1 << 20

// MinTokenLength is the shortest admin token accepted.
const MinTokenLength = 16

// New returns the admin API.
func New(cfg Config) (*Server, error) {
	if len(cfg.Token) < MinTokenLength {
		return nil, fmt.Errorf("admin: token must be at least %d characters", MinTokenLength)
	}
	if cfg.Endpoints == nil || cfg.Letters == nil || cfg.Events == nil {
		return nil, errors.New("admin: Endpoints, Letters and Events are required")
	}
	if cfg.MaxBulkReplay <= 0 {
		cfg.MaxBulkReplay = 100_000
	}
	cfg.Clock = clock.Or(cfg.Clock)
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{cfg: cfg, log: cfg.Logger.Named("admin"), tokenHash: sha256.Sum256([]byte(cfg.Token)), mux: http.NewServeMux()}
	s.replays = newReplayJobs(s)
	s.routes()
	return s, nil
}

// handlerFunc is a route: it answers, or returns the error to answer with.
type handlerFunc func(w http.ResponseWriter, r *http.Request) *apierr.Error

// routes maps each path to its methods; a path's other methods answer 405.
func (s *Server) routes() {
	table := map[string]map[string]handlerFunc{
		"/v1/endpoints":                    {http.MethodGet: s.listEndpoints, http.MethodPost: s.createEndpoint},
		"/v1/endpoints/{id}":               {http.MethodGet: s.getEndpoint, http.MethodPut: s.updateEndpoint, http.MethodDelete: s.deleteEndpoint},
		"/v1/endpoints/{id}/rotate-secret": {http.MethodPost: s.rotateSecret},
		"/v1/deadletters":                  {http.MethodGet: s.listLetters},
		"/v1/deadletters/{seq}":            {http.MethodGet: s.getLetter},
		"/v1/deadletters/{seq}/replay":     {http.MethodPost: s.replayLetter},
		"/v1/deadletters/replay":           {http.MethodPost: s.bulkReplay},
		"/v1/replays/{job}":                {http.MethodGet: s.getReplay},
		"/v1/events":                       {http.MethodGet: s.listEvents},
		"/v1/events/{id}":                  {http.MethodGet: s.getEvent},
		"/v1/events/{id}/deliveries":       {http.MethodGet: s.getEventDeliveries},
	}
	if s.cfg.Rejected != nil {
		table["/v1/rejected"] = map[string]handlerFunc{http.MethodGet: s.listRejected}
		table["/v1/rejected/{seq}"] = map[string]handlerFunc{http.MethodGet: s.getRejected}
		table["/v1/rejected/{seq}/reprocess"] = map[string]handlerFunc{http.MethodPost: s.reprocessRejected}
		table["/v1/rejected/reprocess"] = map[string]handlerFunc{http.MethodPost: s.reprocessAllRejected}
	}
	if s.cfg.Redrive != nil {
		table["/v1/redrive"] = map[string]handlerFunc{http.MethodPost: s.redrive}
	}
	for path, methods := range table {
		s.mux.Handle(path, s.authed(methods))
	}
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("/readyz", s.readyz)
	if s.cfg.Metrics != nil {
		s.mux.Handle("GET /metrics", s.cfg.Metrics)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apierr.Write(w, apierr.New(apierr.NotFound, "no route "+r.URL.Path))
	})
}

// HTTPServer is the admin listener's http.Server for s. Unlike the provider
// listener it sets no write timeout: a redrive, a reprocess-all or a dry-run count
// works through up to its own limit before it answers, and a write deadline would
// drop that answer after the work was done. Reads are bounded as usual.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// authed checks the bearer token, then the method, then runs the route.
func (s *Server) authed(methods map[string]handlerFunc) http.Handler {
	allowed := make([]string, 0, len(methods))
	for m := range methods {
		allowed = append(allowed, m)
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hookrelay-admin"`)
			apierr.Write(w, apierr.New(apierr.AdminUnauthorized, "send Authorization: Bearer <admin token>"))
			return
		}
		h, ok := methods[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			apierr.Write(w, apierr.New(apierr.MethodNotAllowed, r.Method+" is not accepted here; use "+allow))
			return
		}
		if e := h(w, r); e != nil {
			if e.Code == apierr.Internal || e.Code == apierr.AdminUnavailable {
				s.log.Error("admin request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("error", e.Message))
			}
			apierr.Write(w, e)
		}
	})
}

func (s *Server) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return false
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
	return subtle.ConstantTimeCompare(got[:], s.tokenHash[:]) == 1
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			e := apierr.New(apierr.AdminUnavailable, "not ready: "+err.Error())
			apierr.Write(w, e)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// writeJSON answers v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decodeBody reads r's JSON object body into v, refusing unknown fields, trailing
// data and bodies over maxBody. An empty body leaves v as it is when emptyOK.
func decodeBody(r *http.Request, v any, emptyOK bool) *apierr.Error {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		return apierr.New(apierr.AdminInvalidBody, "the body could not be read or is over 1 MiB")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		if emptyOK {
			return nil
		}
		return apierr.New(apierr.AdminInvalidBody, "a JSON object body is required")
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &apierr.Error{Code: apierr.AdminInvalidBody, Message: "the body is not the JSON object this route takes", Details: []string{err.Error()}}
	}
	if dec.More() {
		return apierr.New(apierr.AdminInvalidBody, "the body has data after its JSON object")
	}
	return nil
}

// internal answers an unexpected store failure: 503 when NATS or Redis did not
// answer in time, else 500.
func internal(what string, err error) *apierr.Error {
	if errors.Is(err, context.DeadlineExceeded) || isUnavailable(err) {
		return apierr.New(apierr.AdminUnavailable, what+": "+err.Error())
	}
	return apierr.New(apierr.Internal, what+": "+err.Error())
}

// isUnavailable reports a failure of NATS or Redis that passes: a connection-level
// one, a pool too busy, a client closed at shutdown, or a Redis that is still
// loading its data after a restart (or just failed over).
func isUnavailable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoServers) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, io.EOF) || errors.As(err, &ne) ||
		errors.Is(err, redis.ErrPoolTimeout) || errors.Is(err, redis.ErrPoolExhausted) || errors.Is(err, redis.ErrClosed) ||
		errors.Is(err, redisx.ErrClosed) ||
		redis.IsLoadingError(err) || redis.IsReadOnlyError(err) || redis.IsMasterDownError(err) || redis.IsTryAgainError(err)
}

// filterErrors collects query-parameter problems for one ADMIN_INVALID_FILTER answer.
type filterErrors []apierr.FieldError

func (f *filterErrors) add(field, problem string) {
	*f = append(*f, apierr.FieldError{Field: field, Error: problem})
}

func (f filterErrors) err() *apierr.Error {
	if len(f) == 0 {
		return nil
	}
	return &apierr.Error{Code: apierr.AdminInvalidFilter, Message: "invalid query parameters", FieldErrors: f}
}

// Page limits.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// limitParam reads ?limit= (default 50, at most 1000).
func limitParam(r *http.Request, fe *filterErrors) int {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultLimit
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		fe.add("limit", fmt.Sprintf("want a whole number from 1 to %d", maxLimit))
		return defaultLimit
	}
	return n
}

// timeParam reads an RFC 3339 time query parameter (zero when absent).
func timeParam(r *http.Request, name string, fe *filterErrors) time.Time {
	v := r.URL.Query().Get(name)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		fe.add(name, "want an RFC 3339 time such as 2026-11-21T10:00:00Z")
	}
	return t
}

// page is a list answer: the items and, when there are more, the cursor for them.
type page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}
