package admin

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/hookrelay/hookrelay/internal/redisx"
)

// TestIsUnavailable: connection-level failures are 503s; a decoding error that merely
// mentions "EOF" or "timeout" is not.
func TestIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nats timeout", fmt.Errorf("get: %w", nats.ErrTimeout), true},
		{"no responders", nats.ErrNoResponders, true},
		{"connection closed", nats.ErrConnectionClosed, true},
		{"no servers", fmt.Errorf("connect: %w", nats.ErrNoServers), true},
		{"batcher closed at shutdown", fmt.Errorf("get: %w", redisx.ErrClosed), true},
		{"redis refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"connection EOF", fmt.Errorf("read: %w", io.EOF), true},
		{"truncated JSON", fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), false},
		{"text mentioning timeout", errors.New("decode endpoint: field timeout: bad value"), false},
	} {
		if got := isUnavailable(tc.err); got != tc.want {
			t.Errorf("%s: isUnavailable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
