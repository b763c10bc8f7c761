package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

// TestRedisAppendOnce: the key is looked up, the events appended and the receipt written in one
// step; a repeat of the key appends nothing and gets the receipt, without any Claim (so an append
// whose answer was lost can be retried at once); a key claimed by a request in flight is left
// alone.
func TestRedisAppendOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, _, prefix := redistest.Client(t)
	log := store.NewRedis(client, nil, prefix+"events", 10, store.RedisOptions{})
	r := store.NewRedisReceipts(client, prefix)
	ids, prior, ok, err := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 3), time.Hour)
	if !ok || err != nil || len(ids) != 3 || prior != nil {
		t.Fatalf("AppendOnce: %v %q %v %v", ids, prior, ok, err)
	}
	page, err := log.Read(ctx, event.ID{}, 10)
	if err != nil || len(page.Events) != 3 || page.Events[2].ID != ids[2] {
		t.Fatalf("log holds %d events (%v), want the 3 appended", len(page.Events), err)
	}
	// The retry of a publish whose answer was lost: the receipt, nothing appended.
	again, prior, ok, err := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 3), time.Hour)
	if !ok || err != nil || again != nil || string(prior) != string(streams.ReceiptBody(ids)) {
		t.Fatalf("repeat: ids %v prior %q ok %v err %v, want the receipt %s", again, prior, ok, err, streams.ReceiptBody(ids))
	}
	if n := client.XLen(ctx, prefix+"events").Val(); n != 3 {
		t.Fatalf("stream holds %d entries after the repeat, want 3", n)
	}
	// Claim sees the receipt too.
	prior, claimed, err := r.Claim(ctx, "k", time.Minute)
	if claimed || err != nil || string(prior) != string(streams.ReceiptBody(ids)) {
		t.Fatalf("claim: %q claimed %v err %v, want the receipt %s", prior, claimed, err, streams.ReceiptBody(ids))
	}
	if ttl := client.PTTL(ctx, prefix+"idem:k").Val(); ttl < 50*time.Minute {
		t.Fatalf("receipt TTL %s, want about an hour", ttl)
	}
	// A key claimed by a request in flight: nothing appended.
	if _, claimed, err := r.Claim(ctx, "busy", time.Minute); !claimed || err != nil {
		t.Fatalf("claim busy: %v %v", claimed, err)
	}
	if ids, prior, ok, err := r.AppendOnce(ctx, log, "busy", storetest.Drafts(t, 1), time.Hour); !ok || !errors.Is(err, streams.ErrKeyInFlight) || ids != nil || prior != nil {
		t.Fatalf("claimed key: ids %v prior %q ok %v err %v, want ErrKeyInFlight", ids, prior, ok, err)
	}
	// The log's retention still applies.
	for i := range 5 {
		if _, _, _, err := r.AppendOnce(ctx, log, fmt.Sprint("k2-", i), storetest.Drafts(t, 100), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if n := client.XLen(ctx, prefix+"events").Val(); n > 200 {
		t.Fatalf("stream holds %d entries, want it trimmed near 10", n)
	}
	// Another kind of log cannot be combined: nothing is done.
	if _, _, ok, err := r.AppendOnce(ctx, store.NewMemory(10), "k3", storetest.Drafts(t, 1), time.Hour); ok || err != nil {
		t.Fatalf("memory log: ok %v err %v, want not combined", ok, err)
	}
}
