package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// client calls the admin API (SPEC §8) for the on-call commands.
type client struct {
	base    string // scheme://host[:port], no trailing slash
	token   string
	timeout time.Duration // per request
	hc      *http.Client
}

// apiError is an error answer of the admin API: its envelope (SPEC §9), or what could
// be made of an answer that was not one (a proxy's error page).
type apiError struct {
	Status      int          `json:"-"`
	Code        string       `json:"code"`
	Message     string       `json:"message"`
	Details     []string     `json:"details"`
	FieldErrors []fieldError `json:"fieldErrors"`
}

type fieldError struct {
	Field string `json:"field"`
	Error string `json:"error"`
}

// Error is "CODE: message", then each detail and field error on a line of its own.
func (e *apiError) Error() string {
	var b strings.Builder
	b.WriteString(e.Code + ": " + e.Message)
	for _, d := range e.Details {
		b.WriteString("\n  " + d)
	}
	for _, f := range e.FieldErrors {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Error)
	}
	if e.Code == "ADMIN_UNAUTHORIZED" {
		b.WriteString("\n  check HOOKRELAY_ADMIN_TOKEN: it must be the server's admin.token")
	}
	return b.String()
}

// maxAnswer bounds an answer's size; a page of 1,000 dead letters with their events
// and attempt logs stays well under it.
const maxAnswer = 256 << 20

// do sends method path with body (JSON, when not nil) and decodes a 2xx answer into
// out (when not nil; a *json.RawMessage keeps the answer as sent). An error answer
// is returned as an *apiError.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("admin URL %q: %w", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "hookrelay-cli/"+version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		case errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("the admin API at %s did not answer %s %s within %s (--timeout)", c.base, method, path, c.timeout)
		}
		return fmt.Errorf("could not reach the admin API at %s (set --admin-url or HOOKRELAY_ADMIN_URL): %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return answerError(resp, raw)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s answered %d with something other than the JSON expected: %w", method, path, resp.StatusCode, err)
	}
	return nil
}

// answerError makes an *apiError of an error answer.
func answerError(resp *http.Response, raw []byte) *apiError {
	var env struct {
		Error *apiError `json:"error"`
	}
	if json.Unmarshal(raw, &env) == nil && env.Error != nil && env.Error.Code != "" {
		env.Error.Status = resp.StatusCode
		return env.Error
	}
	// Not the envelope: something in front of the admin API answered.
	code := resp.Header.Get("X-Application-Error-Code")
	if code == "" {
		code = fmt.Sprintf("HTTP_%d", resp.StatusCode)
	}
	msg := strings.TrimSpace(string(raw))
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	if msg == "" {
		msg = resp.Status
	}
	return &apiError{Status: resp.StatusCode, Code: code, Message: msg}
}
