package store_test

import (
	"testing"

	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
)

func TestMemoryRateLimiter(t *testing.T) {
	t.Parallel()
	storetest.RunRateLimiter(t, false, func(_ *testing.T, shared string, rate limits.Rate) limits.RateLimiter {
		return store.NewMemoryRateLimiter(shared, rate)
	})
}
