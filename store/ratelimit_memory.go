package store

import (
	"context"
	"fmt"
	"time"

	"github.com/ulule/limiter/v3"
	"github.com/ulule/limiter/v3/drivers/store/memory"

	"github.com/eventgate/eventgate/limits"
)

var _ limits.RateLimiter = (*MemoryRateLimiter)(nil)

// MemoryRateLimiter counts hits per key in this process (ulule/limiter's memory store, a fixed
// window per key that starts at the key's first hit). Budgets are not shared between instances.
// Safe for concurrent use; a background goroutine of the library sweeps expired keys.
type MemoryRateLimiter struct {
	lim *limiter.Limiter
}

// NewMemoryRateLimiter returns a limiter of rate, which must not be Off. prefix separates the
// budgets of different limiters (e.g. "connect", "publish").
func NewMemoryRateLimiter(prefix string, rate limits.Rate) *MemoryRateLimiter {
	st := memory.NewStoreWithOptions(limiter.StoreOptions{Prefix: prefix, CleanUpInterval: time.Minute})
	return &MemoryRateLimiter{lim: limiter.New(st, toLimiterRate(rate))}
}

// Allow charges one hit to key. It never fails.
func (m *MemoryRateLimiter) Allow(ctx context.Context, key string) (limits.RateResult, error) {
	res, err := m.lim.Get(ctx, key)
	if err != nil {
		return limits.RateResult{}, fmt.Errorf("rate limiter: %w", err)
	}
	return fromLimiterContext(res), nil
}

func toLimiterRate(r limits.Rate) limiter.Rate {
	return limiter.Rate{Formatted: r.String(), Period: r.Period, Limit: r.Limit}
}

// fromLimiterContext converts the library's result; its Reset is a Unix time in seconds.
func fromLimiterContext(c limiter.Context) limits.RateResult {
	return limits.RateResult{Limit: c.Limit, Remaining: c.Remaining, Reset: time.Unix(c.Reset, 0), Reached: c.Reached}
}
