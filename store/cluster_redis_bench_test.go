package store_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
)

// BenchmarkClusterPublish is the ceiling of the one log on Redis Cluster: batches of 100 events
// appended from parallel producers to the master of the log's slot, plain, with an
// Idempotency-Key (the script that also writes the receipt), and with WAIT 1; and single events. Every master holds
// slots, but the log lives in one: its rate is one shard's, however many masters there are.
func BenchmarkClusterPublish(b *testing.B) {
	for _, bc := range []struct {
		name  string
		size  int
		keyed bool
		wait  int
	}{{"Batch100", 100, false, 0}, {"Batch100Keyed", 100, true, 0}, {"Batch100Wait1", 100, false, 1}, {"Single", 1, false, 0}} {
		b.Run(bc.name, func(b *testing.B) {
			client, _, prefix := redistest.ClusterClient(b)
			keys := store.NewRedisKeys(prefix+"events", true)
			log := store.NewRedis(client, nil, keys.Log, 100000, store.RedisOptions{WaitReplicas: bc.wait, WaitTimeout: time.Second})
			receipts := store.NewRedisReceipts(client, keys.LogPrefix)
			batch := storetest.Drafts(b, bc.size)
			var seq atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4) // several producers per core: round trips overlap
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					var err error
					if bc.keyed {
						_, _, _, err = receipts.AppendOnce(ctx, log, "k"+strconv.FormatInt(seq.Add(1), 10), batch, time.Minute)
					} else {
						_, err = log.Append(ctx, batch)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
		})
	}
}
