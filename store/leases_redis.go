package store

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/limits"
)

var _ limits.Leases = (*RedisLeases)(nil)

// acquireScript drops expired leases, then adds one if the key holds fewer than max.
// KEYS[1] zset of lease id → expiry (ms); ARGV: id, max, now ms, expiry ms, ttl ms.
var acquireScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// RedisLeases counts connections per key across all instances sharing a Redis. Each key is a
// sorted set of lease ids scored by expiry; a background loop renews the leases this process
// holds every TTL/3, so the leases of a crashed instance lapse within TTL. Safe for concurrent use.
type RedisLeases struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
	logger *slog.Logger

	mu   sync.Mutex
	held map[string]string // lease id → key, for renewal
}

// NewRedisLeases returns leases stored under prefix+"conn:<key>" with the given TTL. Call Run to
// keep the held leases alive.
func NewRedisLeases(client redis.UniversalClient, prefix string, ttl time.Duration, logger *slog.Logger) *RedisLeases {
	if logger == nil {
		logger = slog.Default()
	}
	return &RedisLeases{client: client, prefix: prefix, ttl: ttl, logger: logger, held: make(map[string]string)}
}

func (r *RedisLeases) key(k string) string { return r.prefix + "conn:" + k }

// Acquire takes lease id under key if fewer than max live leases are held there.
func (r *RedisLeases) Acquire(ctx context.Context, key, id string, max int) (bool, error) {
	now := time.Now()
	n, err := acquireScript.Run(ctx, r.client, []string{r.key(key)},
		id, max, now.UnixMilli(), now.Add(r.ttl).UnixMilli(), r.ttl.Milliseconds()).Int()
	if err != nil {
		return false, redisFail(ctx, "lease acquire", err)
	}
	if n == 0 {
		return false, nil
	}
	r.mu.Lock()
	r.held[id] = key
	r.mu.Unlock()
	return true, nil
}

// Release frees lease id under key.
func (r *RedisLeases) Release(ctx context.Context, key, id string) error {
	r.mu.Lock()
	delete(r.held, id)
	r.mu.Unlock()
	if err := r.client.ZRem(ctx, r.key(key), id).Err(); err != nil {
		return redisFail(ctx, "lease release", err)
	}
	return nil
}

// Run renews held leases every TTL/3 until ctx ends. A renewal failure is logged; the leases lapse
// if Redis stays away longer than the TTL, which errs on admitting connections.
func (r *RedisLeases) Run(ctx context.Context) {
	t := time.NewTicker(r.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.renew(ctx); err != nil && ctx.Err() == nil {
				r.logger.Warn("renewing connection leases failed", "err", err)
			}
		}
	}
}

func (r *RedisLeases) renew(ctx context.Context) error {
	r.mu.Lock()
	held := make(map[string]string, len(r.held))
	for id, key := range r.held {
		held[id] = key
	}
	r.mu.Unlock()
	if len(held) == 0 {
		return nil
	}
	expiry := float64(time.Now().Add(r.ttl).UnixMilli())
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for id, key := range held {
			p.ZAddXX(ctx, r.key(key), redis.Z{Score: expiry, Member: id})
			p.PExpire(ctx, r.key(key), r.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("renew %d leases: %w", len(held), err)
	}
	return nil
}
