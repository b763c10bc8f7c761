package store_test

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

func TestMemoryLog(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(_ *testing.T, retention int) streams.Log {
		m := store.NewMemory(retention)
		m.SetPoll(200 * time.Millisecond)
		return m
	})
}
