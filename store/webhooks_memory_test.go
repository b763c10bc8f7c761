package store_test

import (
	"testing"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/webhooks"
)

func TestMemoryWebhooks(t *testing.T) {
	t.Parallel()
	storetest.RunWebhooks(t, func(*testing.T) webhooks.Store { return store.NewMemoryWebhooks() })
}
