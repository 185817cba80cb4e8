package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// served is runServe running in a test.
type served struct {
	listening
	// cancel asks serve to shut down (as SIGTERM does) without waiting.
	cancel context.CancelFunc

	done     chan error
	once     sync.Once
	err      error
	returned bool
}

// runServed runs runServe with cfg and log until the test ends (then it is shut down
// and must return nil within 30 s), and returns once its listeners accept.
func runServed(t *testing.T, cfg *Config, log *zap.Logger) *served {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &served{cancel: cancel, done: make(chan error, 1)}
	ready := make(chan listening, 1)
	go func() { s.done <- runServe(ctx, cfg, log, ready) }()
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.listening = <-ready:
	case err := <-s.done:
		t.Fatalf("serve %v: %v", cfg.Roles, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve %v did not start", cfg.Roles)
	}
	return s
}

// wait waits up to 30 s for serve to return; later calls give the same answer.
func (s *served) wait() (err error, returned bool) {
	s.once.Do(func() {
		select {
		case s.err = <-s.done:
			s.returned = true
		case <-time.After(30 * time.Second):
		}
	})
	return s.err, s.returned
}

// stop shuts serve down and fails the test unless it returns nil within 30 s.
func (s *served) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	err, returned := s.wait()
	switch {
	case !returned:
		t.Error("serve did not stop within 30s of cancel")
	case err != nil:
		t.Errorf("serve returned %v after shutdown", err)
	}
}
