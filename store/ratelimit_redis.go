package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	sredis "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/streams"
)

var _ limits.RateLimiter = (*RedisRateLimiter)(nil)

// rateLimiterRetry is how long a failure of the Redis limiter is remembered: meanwhile Allow
// returns it at once, so that an outage costs one slow round trip per second, not one per request.
const rateLimiterRetry = time.Second

// scriptLoadTimeout bounds the library's script loading, which it runs without a deadline.
const scriptLoadTimeout = 2 * time.Second

// RedisRateLimiter counts hits per key in Redis (ulule/limiter's Redis store: one atomic Lua
// INCR + PEXPIRE per hit, a fixed window per key that starts at its first hit), so every instance
// on the same Redis and prefix shares one budget. Safe for concurrent use.
//
// The library loads its Lua scripts when its store is built, which fails while Redis is down; the
// store is therefore built on first use and rebuilt after a failure at most once per second. After
// any Redis failure, Allow returns that failure at once for a second before asking Redis again.
// Errors wrap streams.ErrUnavailable; they never panic.
type RedisRateLimiter struct {
	client sredis.Client
	prefix string
	rate   limiter.Rate

	lim       atomic.Pointer[limiter.Limiter]
	downUntil atomic.Int64 // Unix ns until which the last failure is returned without asking Redis
	lastDown  atomic.Pointer[error]
	build     chan struct{} // a one-slot lock held while building the store; waiters honour ctx
	nextTry   time.Time     // guarded by build
	lastErr   error         // guarded by build
}

// NewRedisRateLimiter returns a limiter of rate (not Off) whose keys are prefix+":"+key. Nothing
// is sent to Redis until the first Allow.
func NewRedisRateLimiter(client redis.UniversalClient, prefix string, rate limits.Rate) *RedisRateLimiter {
	return &RedisRateLimiter{client: boundedScriptLoad{client}, prefix: prefix, rate: toLimiterRate(rate), build: make(chan struct{}, 1)}
}

// Allow charges one hit to key.
func (r *RedisRateLimiter) Allow(ctx context.Context, key string) (limits.RateResult, error) {
	if time.Now().UnixNano() < r.downUntil.Load() {
		if err := r.lastDown.Load(); err != nil {
			return limits.RateResult{}, *err
		}
	}
	lim, err := r.limiter(ctx)
	if err != nil {
		return limits.RateResult{}, err
	}
	res, err := lim.Get(ctx, key)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return limits.RateResult{}, fmt.Errorf("redis rate limiter: %w", ctx.Err()) // the caller gave up
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		err = fmt.Errorf("redis rate limiter: %w: %w", streams.ErrUnavailable, err)
		r.lastDown.Store(&err)
		r.downUntil.Store(time.Now().Add(rateLimiterRetry).UnixNano())
		return limits.RateResult{}, err
	}
	return fromLimiterContext(res), nil
}

// limiter returns the library's limiter, building its store when needed.
func (r *RedisRateLimiter) limiter(ctx context.Context) (*limiter.Limiter, error) {
	if l := r.lim.Load(); l != nil {
		return l, nil
	}
	select {
	case r.build <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("redis rate limiter: starting: %w: %w", streams.ErrUnavailable, ctx.Err())
	}
	defer func() { <-r.build }()
	if l := r.lim.Load(); l != nil {
		return l, nil
	}
	if time.Now().Before(r.nextTry) {
		return nil, r.lastErr
	}
	st, err := sredis.NewStoreWithOptions(r.client, limiter.StoreOptions{Prefix: r.prefix})
	if err != nil {
		r.lastErr = fmt.Errorf("redis rate limiter: %w: %w", streams.ErrUnavailable, err)
		r.nextTry = time.Now().Add(rateLimiterRetry)
		return nil, r.lastErr
	}
	l := limiter.New(st, r.rate)
	r.lim.Store(l)
	return l, nil
}

// boundedScriptLoad gives the library's script loading a deadline.
type boundedScriptLoad struct{ redis.UniversalClient }

func (b boundedScriptLoad) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, scriptLoadTimeout)
		defer cancel()
	}
	return b.UniversalClient.ScriptLoad(ctx, script)
}
