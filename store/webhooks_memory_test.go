package store_test

import (
	"testing"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

func TestMemoryWebhooks(t *testing.T) {
	t.Parallel()
	storetest.RunWebhooks(t, func(*testing.T) streams.Webhooks { return store.NewMemoryWebhooks() })
}
