package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/streams"
)

var _ streams.Receipts = (*RedisReceipts)(nil)

// errEmptyResponse is returned by Complete for an empty response, which could not be told apart
// from a request still in flight.
var errEmptyResponse = errors.New("receipts: empty response")

// RedisReceipts keeps idempotency receipts in Redis under <prefix>idem:<key>, shared by every
// instance. A key holding the empty string is a request in flight; any other value is the stored
// response. Safe for concurrent use; it does not own client. Errors wrap streams.ErrUnavailable
// (or the context's error when ctx ended). Needs Redis ≥ 7.0 (SET … NX GET).
type RedisReceipts struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisReceipts returns receipts stored with client under keys starting with prefix (for
// example "eventgate:").
func NewRedisReceipts(client redis.UniversalClient, prefix string) *RedisReceipts {
	return &RedisReceipts{client: client, prefix: prefix}
}

func (r *RedisReceipts) key(k string) string { return r.prefix + "idem:" + k }

// Claim reserves key for ttl with one atomic SET key "" NX GET PX ttl.
func (r *RedisReceipts) Claim(ctx context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	prior, err := r.client.SetArgs(ctx, r.key(key), "", redis.SetArgs{Mode: "NX", Get: true, TTL: ttl}).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, true, nil
	case err != nil:
		return nil, false, redisFail(ctx, "claim", err)
	case prior == "":
		return nil, false, nil // in flight
	}
	return []byte(prior), false, nil
}

// Complete stores response (which must not be empty) for key for ttl.
func (r *RedisReceipts) Complete(ctx context.Context, key string, response []byte, ttl time.Duration) error {
	if len(response) == 0 {
		return errEmptyResponse
	}
	if err := r.client.Set(ctx, r.key(key), response, ttl).Err(); err != nil {
		return redisFail(ctx, "complete", err)
	}
	return nil
}

// Release deletes key so that a retry can claim it.
func (r *RedisReceipts) Release(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.key(key)).Err(); err != nil {
		return redisFail(ctx, "release", err)
	}
	return nil
}

// redisFail wraps a client error: the context's error when ctx ended, else streams.ErrUnavailable.
// A socket timeout at the context's deadline counts as the deadline, even when it is noticed a
// moment before the context's own timer fires (go-redis sets the socket deadline to it).
func redisFail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("redis %s: %w", op, ctxErr)
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return fmt.Errorf("redis %s: %w: %w", op, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("redis %s: %w: %w", op, streams.ErrUnavailable, err)
}
