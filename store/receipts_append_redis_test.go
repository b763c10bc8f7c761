package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

// TestRedisAppendOnce: the events and the receipt are written together; a later claim of the key
// finds the receipt, so a retry appends nothing.
func TestRedisAppendOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, _, prefix := redistest.Client(t)
	log := store.NewRedis(client, nil, prefix+"events", 10, store.RedisOptions{})
	r := store.NewRedisReceipts(client, prefix)
	if _, claimed, err := r.Claim(ctx, "k", time.Minute); !claimed || err != nil {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	ids, ok, err := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 3), time.Hour)
	if !ok || err != nil || len(ids) != 3 {
		t.Fatalf("AppendOnce: %v %v %v", ids, ok, err)
	}
	page, err := log.Read(ctx, streams.ID{}, 10)
	if err != nil || len(page.Events) != 3 || page.Events[2].ID != ids[2] {
		t.Fatalf("log holds %d events (%v), want the 3 appended", len(page.Events), err)
	}
	prior, claimed, err := r.Claim(ctx, "k", time.Minute)
	if claimed || err != nil || string(prior) != string(streams.ReceiptBody(ids)) {
		t.Fatalf("second claim: %q claimed %v err %v, want the receipt %s", prior, claimed, err, streams.ReceiptBody(ids))
	}
	if ttl := client.PTTL(ctx, prefix+"idem:k").Val(); ttl < 50*time.Minute {
		t.Fatalf("receipt TTL %s, want about an hour", ttl)
	}
	// The log's retention still applies.
	for range 5 {
		if _, _, err := r.AppendOnce(ctx, log, "k2", storetest.Drafts(t, 100), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := client.XLen(ctx, prefix+"events").Val(); n > 200 {
		t.Fatalf("stream holds %d entries, want it trimmed near 10", n)
	}
	// Another kind of log cannot be combined: nothing is done.
	if _, ok, err := r.AppendOnce(ctx, store.NewMemory(10), "k3", storetest.Drafts(t, 1), time.Hour); ok || err != nil {
		t.Fatalf("memory log: ok %v err %v, want not combined", ok, err)
	}
}
