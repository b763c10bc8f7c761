package store_test

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

// The streams.AtomicReceipts contract on every store that has them.

func TestRedisAppendOnceContract(t *testing.T) {
	t.Parallel()
	storetest.RunAppendOnce(t, func(t *testing.T, retention int) (streams.Log, streams.AtomicReceipts) {
		client, _, prefix := redistest.Client(t)
		return store.NewRedis(client, nil, prefix+"events", int64(retention), store.RedisOptions{}), store.NewRedisReceipts(client, prefix)
	})
}

func TestDiskAppendOnce(t *testing.T) {
	t.Parallel()
	storetest.RunAppendOnce(t, func(t *testing.T, retention int) (streams.Log, streams.AtomicReceipts) {
		d := openDisk(t, t.TempDir(), store.DiskOptions{Retention: retention})
		return d, store.NewDiskReceipts(d)
	})
	// Another log is not combined with.
	d := openDisk(t, t.TempDir(), store.DiskOptions{})
	other := openDisk(t, t.TempDir(), store.DiskOptions{})
	for _, log := range []streams.Log{store.NewMemory(10), other} {
		if _, _, ok, err := store.NewDiskReceipts(d).AppendOnce(t.Context(), log, "k", storetest.Drafts(t, 1), time.Hour); ok || err != nil {
			t.Fatalf("%T: ok %v err %v, want not combined", log, ok, err)
		}
	}
}
