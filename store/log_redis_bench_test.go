package store_test

import (
	"context"
	"testing"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
)

// BenchmarkRedisAppendBatch100 publishes batches of 100 events (one MULTI/EXEC of 100 XADDs) to a
// local Redis from parallel producers and reports events per second.
func BenchmarkRedisAppendBatch100(b *testing.B) {
	client, _, prefix := redistest.Client(b)
	log := store.NewRedis(client, nil, prefix+"events", 100000, store.RedisOptions{})
	batch := storetest.Drafts(b, 100)
	b.ReportAllocs()
	b.SetParallelism(4) // several producers per core: Redis round trips overlap
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := log.Append(context.Background(), batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkRedisAppendBatch100Serial is the same from a single producer.
func BenchmarkRedisAppendBatch100Serial(b *testing.B) {
	client, _, prefix := redistest.Client(b)
	log := store.NewRedis(client, nil, prefix+"events", 100000, store.RedisOptions{})
	batch := storetest.Drafts(b, 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := log.Append(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
}
