package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

// loseTail replaces the stream with its first n entries plus one new entry, in one transaction: a
// failover to a replica that had received only those n (asynchronous replication), after which a
// publisher appended. It returns the new entry's id, which is above every old one.
func loseTail(t *testing.T, client *redis.Client, log *store.Redis, n int64) event.ID {
	t.Helper()
	ctx := t.Context()
	kept, err := client.XRangeN(ctx, log.Key(), "-", "+", n).Result()
	if err != nil {
		t.Fatal(err)
	}
	last, err := client.XRevRangeN(ctx, log.Key(), "+", "-", 1).Result()
	if err != nil || len(last) != 1 {
		t.Fatalf("XREVRANGE: %v %v", last, err)
	}
	lastID, _ := event.ParseID(last[0].ID)
	for uint64(time.Now().UnixMilli()) <= lastID.MS {
		time.Sleep(time.Millisecond) // the new master's ids pass the lost ones
	}
	var added *redis.StringCmd
	if _, err := client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, log.Key())
		for _, m := range kept {
			p.XAdd(ctx, &redis.XAddArgs{Stream: log.Key(), ID: m.ID, Values: m.Values})
		}
		added = p.XAdd(ctx, &redis.XAddArgs{Stream: log.Key(), ID: "*", Values: []any{"event", storetest.Queue}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	id, err := event.ParseID(added.Val())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRedisReadGone: a position the stream covers but no longer holds (lost in a failover) is
// reported Gone, with the entry before the lost stretch; held positions, trimmed ones, the zero
// position and the one just before the first entry are not.
func TestRedisReadGone(t *testing.T) {
	t.Parallel()
	log, client := newRedisLog(t, 1000, store.RedisOptions{})
	ctx := t.Context()
	ids, err := log.Append(ctx, storetest.Drafts(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	fresh := loseTail(t, client, log, 2) // ids[2], ids[3] lost
	for _, tc := range []struct {
		pos    event.ID
		gone   bool
		before event.ID
	}{
		{event.ID{}, false, event.ID{}},
		{ids[0].Prev(), false, event.ID{}},
		{ids[1], false, event.ID{}},
		{ids[2], true, ids[1]},
		{ids[3], true, ids[1]},
		{fresh, false, event.ID{}},
	} {
		p, err := log.Read(ctx, tc.pos, 10)
		if err != nil || p.Gone != tc.gone || p.Before != tc.before {
			t.Errorf("Read(%s): Gone %v Before %s (%v), want %v %s", tc.pos, p.Gone, p.Before, err, tc.gone, tc.before)
		}
	}
}

// TestRedisHubFailoverResync: the hub's reader was at D when a failover lost C and D; a
// subscriber resuming from C (it had received it from this or another instance) gets a resync
// continuing from B, then the new log's events, not a silent jump over the lost stretch.
func TestRedisHubFailoverResync(t *testing.T) {
	t.Parallel()
	log, client := newRedisLog(t, 1000, store.RedisOptions{})
	hub := streams.NewHub(log, streams.HubOptions{Buffer: 8})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	live, err := hub.Subscribe(ctx, event.Filter{}, streams.Live)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	ids, err := log.Append(ctx, storetest.Drafts(t, 4)) // A B C D
	if err != nil {
		t.Fatal(err)
	}
	next := func(sub *streams.Subscription, n int) []*event.Event {
		var got []*event.Event
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		for len(got) < n {
			select {
			case <-sub.Ready():
			case <-wctx.Done():
				t.Fatalf("got %d events, want %d", len(got), n)
			}
			if got, err = sub.Next(wctx, got); err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	next(live, 4)
	fresh := loseTail(t, client, log, 2)
	if got := next(live, 1); got[0].ID != fresh { // the reader has read past the loss
		t.Fatalf("live got %s, want %s", got[0].ID, fresh)
	}
	sub, err := hub.Subscribe(ctx, event.Filter{}, streams.After(ids[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := next(sub, 2)
	if got[0].Type != streams.TypeResync || got[1].ID != fresh {
		t.Fatalf("resuming from the lost %s: got %s %s then %s, want a resync then %s", ids[2], got[0].Type, got[0].JSON, got[1].ID, fresh)
	}
}
