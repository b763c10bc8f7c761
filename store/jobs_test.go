package store_test

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
)

func TestMemoryJobs(t *testing.T) {
	t.Parallel()
	storetest.RunJobs(t, func(t *testing.T, ttl time.Duration) jobs.Store { return store.NewMemoryJobs(ttl) })
}

func TestRedisJobs(t *testing.T) {
	t.Parallel()
	storetest.RunJobs(t, func(t *testing.T, ttl time.Duration) jobs.Store {
		client, _, prefix := redistest.Client(t)
		return store.NewRedisJobs(client, prefix, ttl)
	})
}
