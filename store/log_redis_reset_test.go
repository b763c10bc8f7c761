package store_test

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
)

// TestRedisLogRestartedEmpty: a stream that was lost (a Redis restarted without persistence, or
// the key deleted) and appended to again must not vouch for a position of the old stream, although
// the new ids are larger. Read and Tail both report it.
func TestRedisLogRestartedEmpty(t *testing.T) {
	t.Parallel()
	log, client := newRedisLog(t, 1000, store.RedisOptions{})
	ctx := t.Context()
	old, err := log.Append(ctx, storetest.Drafts(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Del(ctx, log.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	for uint64(time.Now().UnixMilli()) <= old[1].MS {
		time.Sleep(time.Millisecond) // ids of the new stream pass the old ones
	}
	fresh, err := log.Append(ctx, storetest.Drafts(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	p, err := log.Read(ctx, old[0], 10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Bounds.Holds(old[0]) {
		t.Errorf("Read(%s).Bounds %+v hold the old stream's position", old[0], p.Bounds)
	}
	p, err = log.Tail(ctx, old[1], 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || p.Events[0].ID != fresh[0] || p.Bounds.Holds(old[1]) {
		t.Errorf("Tail(%s) = %d events, bounds %+v: want the new event and bounds that do not hold the old position", old[1], len(p.Events), p.Bounds)
	}
}
