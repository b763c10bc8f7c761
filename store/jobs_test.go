package store_test

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

func TestMemoryJobs(t *testing.T) {
	t.Parallel()
	storetest.RunJobs(t, func(t *testing.T, ttl time.Duration) streams.JobStore { return store.NewMemoryJobs(ttl) })
}

func TestRedisJobs(t *testing.T) {
	t.Parallel()
	storetest.RunJobs(t, func(t *testing.T, ttl time.Duration) streams.JobStore {
		client, _, prefix := redistest.Client(t)
		return store.NewRedisJobs(client, prefix, ttl)
	})
}
