package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"time"

	"go.uber.org/zap"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/internal/apierr"
)

// EndpointView is an endpoint as the admin API shows it. The signing secret appears
// only in the answers to create and rotate-secret (the merchant needs it once); extra
// header values, which may be credentials, are never shown.
type EndpointView struct {
	ID                  string     `json:"id"`
	Merchant            string     `json:"merchant"`
	URL                 string     `json:"url"`
	Types               []string   `json:"types"`
	Sources             []string   `json:"sources"`
	Enabled             bool       `json:"enabled"`
	MaxInFlight         int        `json:"max_in_flight"`
	Description         string     `json:"description,omitempty"`
	Headers             []string   `json:"headers"` // names only
	Secret              string     `json:"secret,omitempty"`
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
}

func viewEndpoint(e deliver.Endpoint, withSecret bool) EndpointView {
	v := EndpointView{
		ID: e.ID, Merchant: e.Merchant, URL: e.URL, Types: e.Types, Sources: e.Sources,
		Enabled: e.Enabled, MaxInFlight: e.MaxInFlight, Description: e.Description,
		Headers: []string{}, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
	if v.Types == nil {
		v.Types = []string{}
	}
	if v.Sources == nil {
		v.Sources = []string{}
	}
	for name := range e.Headers {
		v.Headers = append(v.Headers, name)
	}
	sort.Strings(v.Headers)
	if withSecret {
		v.Secret = e.Secret
	}
	if e.PreviousSecret != "" && e.PreviousSecretUntil != nil {
		v.PreviousSecretUntil = e.PreviousSecretUntil
	}
	return v
}

// endpointBody is the body of POST /v1/endpoints and PUT /v1/endpoints/{id}. On PUT an
// absent field keeps its value, so {"enabled": false} disables an endpoint.
type endpointBody struct {
	ID          *string            `json:"id"`
	Merchant    *string            `json:"merchant"`
	URL         *string            `json:"url"`
	Types       *[]string          `json:"types"`
	Sources     *[]string          `json:"sources"`
	Secret      *string            `json:"secret"`
	Enabled     *bool              `json:"enabled"`
	Headers     *map[string]string `json:"headers"`
	MaxInFlight *int               `json:"max_in_flight"`
	Description *string            `json:"description"`
}

func (b *endpointBody) apply(e *deliver.Endpoint) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&e.Merchant, b.Merchant)
	set(&e.URL, b.URL)
	set(&e.Description, b.Description)
	if b.Types != nil {
		e.Types = *b.Types
	}
	if b.Sources != nil {
		e.Sources = *b.Sources
	}
	if b.Enabled != nil {
		e.Enabled = *b.Enabled
	}
	if b.Headers != nil {
		e.Headers = *b.Headers
	}
	if b.MaxInFlight != nil {
		e.MaxInFlight = *b.MaxInFlight
	}
}

// endpointError maps the endpoint store's errors to answers.
func endpointError(id string, err error) *apierr.Error {
	var inv *deliver.InvalidEndpointError
	switch {
	case errors.As(err, &inv):
		e := &apierr.Error{Code: apierr.AdminInvalidField, Message: "the endpoint is invalid"}
		for _, f := range inv.Fields {
			e.FieldErrors = append(e.FieldErrors, apierr.FieldError{Field: f.Field, Error: f.Problem})
		}
		return e
	case errors.Is(err, deliver.ErrEndpointNotFound):
		return apierr.New(apierr.AdminNotFound, "no endpoint "+id)
	case errors.Is(err, deliver.ErrEndpointExists):
		return apierr.New(apierr.AdminConflict, "an endpoint "+id+" exists already")
	case errors.Is(err, deliver.ErrEndpointChanged):
		return apierr.New(apierr.AdminConflict, "endpoint "+id+" changed meanwhile; read it and try again")
	}
	return internal("endpoint "+id, err)
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var fe filterErrors
	limit := limitParam(r, &fe)
	after := cursorText(r, 'e', &fe)
	merchant := r.URL.Query().Get("merchant")
	if e := fe.err(); e != nil {
		return e
	}
	all, err := s.cfg.Endpoints.List(r.Context())
	if err != nil {
		return internal("list endpoints", err)
	}
	out := page[EndpointView]{Items: []EndpointView{}}
	for _, e := range all { // List is ordered by id
		if e.ID <= after || (merchant != "" && e.Merchant != merchant) {
			continue
		}
		if len(out.Items) == limit {
			out.NextCursor = encodeCursor('e', out.Items[limit-1].ID)
			break
		}
		out.Items = append(out.Items, viewEndpoint(e, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) *apierr.Error {
	id := r.PathValue("id")
	e, err := s.cfg.Endpoints.Get(r.Context(), id)
	if err != nil {
		return endpointError(id, err)
	}
	writeJSON(w, http.StatusOK, viewEndpoint(e, false))
	return nil
}

// createEndpoint: id, merchant and url are required; a secret is generated when none
// is given, and the endpoint is enabled unless the body says otherwise.
func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) *apierr.Error {
	var b endpointBody
	if e := decodeBody(r, &b, false); e != nil {
		return e
	}
	e := deliver.Endpoint{Enabled: true}
	if b.ID != nil {
		e.ID = *b.ID
	}
	b.apply(&e)
	if b.Secret != nil {
		e.Secret = *b.Secret
	} else {
		secret, err := deliver.GenerateSecret()
		if err != nil {
			return internal("generate secret", err)
		}
		e.Secret = secret
	}
	created, err := s.cfg.Endpoints.Create(r.Context(), e)
	if err != nil {
		return endpointError(e.ID, err)
	}
	s.awaitLive(r.Context(), created.ID, &created)
	s.log.Info("endpoint created", zap.String("endpoint", created.ID))
	w.Header().Set("Location", "/v1/endpoints/"+created.ID)
	writeJSON(w, http.StatusCreated, viewEndpoint(created, true))
	return nil
}

// updateEndpoint changes the fields the body names. The id cannot change, and the
// secret changes only through rotate-secret (which keeps the old one valid for a while).
func (s *Server) updateEndpoint(w http.ResponseWriter, r *http.Request) *apierr.Error {
	id := r.PathValue("id")
	var b endpointBody
	if e := decodeBody(r, &b, false); e != nil {
		return e
	}
	var fe []apierr.FieldError
	if b.ID != nil && *b.ID != id {
		fe = append(fe, apierr.FieldError{Field: "id", Error: "cannot change; create a new endpoint instead"})
	}
	if b.Secret != nil {
		fe = append(fe, apierr.FieldError{Field: "secret", Error: "cannot be set here; use POST /v1/endpoints/" + id + "/rotate-secret"})
	}
	if len(fe) > 0 {
		return &apierr.Error{Code: apierr.AdminInvalidField, Message: "the update is invalid", FieldErrors: fe}
	}
	updated, err := s.cfg.Endpoints.Update(r.Context(), id, func(e *deliver.Endpoint) error {
		b.apply(e)
		return nil
	})
	if err != nil {
		return endpointError(id, err)
	}
	s.awaitLive(r.Context(), id, &updated)
	s.log.Info("endpoint updated", zap.String("endpoint", id))
	writeJSON(w, http.StatusOK, viewEndpoint(updated, false))
	return nil
}

// deleteEndpoint removes the endpoint. Its deliveries still waiting become dead
// letters (the workers drain them), which can be replayed if it comes back.
func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) *apierr.Error {
	id := r.PathValue("id")
	if err := s.cfg.Endpoints.Delete(r.Context(), id); err != nil {
		return endpointError(id, err)
	}
	s.awaitLive(r.Context(), id, nil)
	s.log.Info("endpoint deleted", zap.String("endpoint", id))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DefaultGrace is how long a rotated-out secret still signs.
const DefaultGrace = 24 * time.Hour

// rotateBody is the optional body of rotate-secret.
type rotateBody struct {
	Secret string `json:"secret"` // the new secret; generated when empty
	Grace  string `json:"grace"`  // how long the old one still signs, e.g. "24h" (default), "0s"
}

// rotateSecret gives the endpoint a new secret; the old one keeps signing (a second
// signature) for the grace period, so the merchant can switch without rejecting.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) *apierr.Error {
	id := r.PathValue("id")
	var b rotateBody
	if e := decodeBody(r, &b, true); e != nil {
		return e
	}
	grace := DefaultGrace
	if b.Grace != "" {
		g, err := time.ParseDuration(b.Grace)
		if err != nil || g < 0 || g > 30*24*time.Hour {
			return &apierr.Error{Code: apierr.AdminInvalidField, Message: "the rotation is invalid",
				FieldErrors: []apierr.FieldError{{Field: "grace", Error: "want a duration from 0s to 720h, such as 24h"}}}
		}
		grace = g
	}
	secret := b.Secret
	if secret == "" {
		var err error
		if secret, err = deliver.GenerateSecret(); err != nil {
			return internal("generate secret", err)
		}
	}
	now := s.cfg.Clock.Now().UTC()
	updated, err := s.cfg.Endpoints.Update(r.Context(), id, func(e *deliver.Endpoint) error {
		if grace > 0 {
			until := now.Add(grace)
			e.PreviousSecret, e.PreviousSecretUntil = e.Secret, &until
		} else {
			e.PreviousSecret, e.PreviousSecretUntil = "", nil
		}
		e.Secret = secret
		return nil
	})
	if err != nil {
		return endpointError(id, err)
	}
	s.awaitLive(r.Context(), id, &updated)
	s.log.Info("endpoint secret rotated", zap.String("endpoint", id))
	writeJSON(w, http.StatusOK, viewEndpoint(updated, true))
	return nil
}

// liveWait bounds how long a change waits to show in the live endpoint set.
const liveWait = 3 * time.Second

// awaitLive waits until the live endpoint set shows endpoint id exactly as stored
// (want; nil: deleted), so the answer means the change is in effect in this process.
// The change is stored either way; after liveWait it is answered regardless (the
// watch applies it moments later).
func (s *Server) awaitLive(ctx context.Context, id string, want *deliver.Endpoint) {
	if s.cfg.Live == nil {
		return
	}
	var wantJSON []byte
	if want != nil {
		wantJSON, _ = json.Marshal(want)
	}
	ctx, cancel := context.WithTimeout(ctx, liveWait)
	defer cancel()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		e, ok := s.cfg.Live.Get(id)
		if want == nil && !ok {
			return
		}
		if want != nil && ok {
			if got, _ := json.Marshal(e); bytes.Equal(got, wantJSON) {
				return
			}
		}
		select {
		case <-ctx.Done():
			s.log.Warn("endpoint change not yet live", zap.String("endpoint", id))
			return
		case <-t.C:
		}
	}
}
