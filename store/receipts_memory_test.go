package store_test

import (
	"testing"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

func TestMemoryReceipts(t *testing.T) {
	t.Parallel()
	storetest.RunReceipts(t, func(*testing.T) streams.Receipts { return store.NewMemoryReceipts() })
}
