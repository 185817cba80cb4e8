package natsx

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig holds the knobs of the four streams. Zero values take the defaults noted.
type StreamConfig struct {
	EventsMaxAge    time.Duration // default 30 days
	DeadMaxAge      time.Duration // default 90 days
	RejectedMaxAge  time.Duration // default 90 days
	DuplicateWindow time.Duration // JetStream Nats-Msg-Id window; default 2 minutes
	Replicas        int           // default 1
}

// Defaults for StreamConfig.
const (
	DefaultEventsMaxAge    = 30 * 24 * time.Hour
	DefaultDeadMaxAge      = 90 * 24 * time.Hour
	DefaultRejectedMaxAge  = 90 * 24 * time.Hour
	DefaultDuplicateWindow = 2 * time.Minute
)

// WithDefaults is c with every zero field at its default.
func (c StreamConfig) WithDefaults() StreamConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.EventsMaxAge, DefaultEventsMaxAge)
	def(&c.DeadMaxAge, DefaultDeadMaxAge)
	def(&c.RejectedMaxAge, DefaultRejectedMaxAge)
	def(&c.DuplicateWindow, DefaultDuplicateWindow)
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	return c
}

// StreamConfigs returns the JetStream configuration of each stream of SPEC §4.
func StreamConfigs(t Topology, c StreamConfig) []jetstream.StreamConfig {
	c = c.WithDefaults()
	const storage = jetstream.FileStorage
	// The duplicate window may not exceed a stream's max age.
	window := func(maxAge time.Duration) time.Duration { return min(c.DuplicateWindow, maxAge) }
	return []jetstream.StreamConfig{
		{
			Name:        t.EventsStream(),
			Description: "hookrelay: normalized provider events",
			Subjects:    []string{t.eventsWildcard()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     storage,
			MaxAge:      c.EventsMaxAge,
			Duplicates:  window(c.EventsMaxAge),
			Replicas:    c.Replicas,
		},
		{
			Name:        t.DeliveriesStream(),
			Description: "hookrelay: deliveries due now",
			Subjects:    []string{t.deliveriesWildcard()},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     storage,
			Duplicates:  c.DuplicateWindow,
			Replicas:    c.Replicas,
		},
		{
			Name:        t.DeadStream(),
			Description: "hookrelay: dead letters",
			Subjects:    []string{t.deadWildcard()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     storage,
			MaxAge:      c.DeadMaxAge,
			Duplicates:  window(c.DeadMaxAge),
			Replicas:    c.Replicas,
		},
		{
			Name:        t.RejectedStream(),
			Description: "hookrelay: raw provider requests that failed to parse",
			Subjects:    []string{t.rejectedWildcard()},
			Retention:   jetstream.LimitsPolicy,
			Storage:     storage,
			MaxAge:      c.RejectedMaxAge,
			Duplicates:  window(c.RejectedMaxAge),
			Replicas:    c.Replicas,
		},
	}
}

// EnsureStreams creates each stream, or updates it to the configuration above. A
// server-side failure (an API error with a 5xx code, such as JetStream's "error
// creating store for stream") is retried a few times with backoff, within ctx: the
// server can refuse a create while it is busy or short of a resource for a moment. A
// 4xx answer (a bad or conflicting configuration) fails at once.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, t Topology, c StreamConfig) error {
	for _, sc := range StreamConfigs(t, c) {
		b := backoff.NewExponentialBackOff()
		b.InitialInterval = 100 * time.Millisecond
		b.MaxInterval = 2 * time.Second
		b.MaxElapsedTime = 0 // bounded by the retry count and ctx
		retries := backoff.WithContext(backoff.WithMaxRetries(b, ensureRetries), ctx)
		err := backoff.Retry(func() error {
			_, err := js.CreateOrUpdateStream(ctx, sc)
			var api *jetstream.APIError
			if err != nil && !(errors.As(err, &api) && api.Code >= 500) {
				return backoff.Permanent(err)
			}
			return err
		}, retries)
		if err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// ensureRetries is how often EnsureStreams retries one stream's server-side failure.
const ensureRetries = 5

// NewJetStream returns a JetStream context for nc whose asynchronous publishes give up
// waiting for a PubAck after ackTimeout, so a caller that stops waiting never leaves a
// future pending forever. At most maxPending publishes wait for acks at once.
func NewJetStream(nc *nats.Conn, ackTimeout time.Duration, maxPending int) (jetstream.JetStream, error) {
	return jetstream.New(nc,
		jetstream.WithPublishAsyncTimeout(ackTimeout),
		jetstream.WithPublishAsyncMaxPending(maxPending))
}

// DefaultMaxPendingAcks bounds publishes waiting for a PubAck on one connection.
const DefaultMaxPendingAcks = 16384
