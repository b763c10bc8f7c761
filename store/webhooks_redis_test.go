package store_test

import (
	"testing"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/webhooks"
)

func TestRedisWebhooks(t *testing.T) {
	t.Parallel()
	storetest.RunWebhooks(t, func(t *testing.T) webhooks.Store {
		client, _, prefix := redistest.Client(t)
		return store.NewRedisWebhooks(client, prefix)
	})
}

// TestRedisWebhooksKeys: an endpoint's keys share one hash tag and live under the prefix.
func TestRedisWebhooksKeys(t *testing.T) {
	t.Parallel()
	client, _, prefix := redistest.Client(t)
	s := store.NewRedisWebhooks(client, prefix)
	ctx := t.Context()
	if err := s.CreateWebhook(ctx, webhooks.Webhook{ID: "wh_1", URL: "https://x.example/", Secret: "whsec_x", Enabled: true}, event.ID{MS: 7}, 0); err != nil {
		t.Fatal(err)
	}
	if v, err := client.Get(ctx, prefix+"wh:{wh_1}:cursor").Result(); err != nil || v != "7-0" {
		t.Fatalf("cursor key = %q, %v; want 7-0", v, err)
	}
	if v, err := client.HGet(ctx, prefix+"wh:{wh_1}", "secret").Result(); err != nil || v != "whsec_x" {
		t.Fatalf("hash secret = %q, %v", v, err)
	}
}
