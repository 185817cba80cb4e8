package admin

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
)

// Readiness is the /readyz check of SPEC §8 for a process using nc and rdb: ready when
// the NATS connection is up and Redis answers PING; otherwise the error names which
// one is not.
func Readiness(nc *nats.Conn, rdb redis.UniversalClient) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return fmt.Errorf("nats: connection %s", s)
		}
		if err := rdb.Ping(ctx).Err(); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
		return nil
	}
}
