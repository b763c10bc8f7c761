package store_test

import (
	"testing"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

func TestMemoryRateLimiter(t *testing.T) {
	t.Parallel()
	storetest.RunRateLimiter(t, false, func(_ *testing.T, shared string, rate streams.Rate) streams.RateLimiter {
		return store.NewMemoryRateLimiter(shared, rate)
	})
}
