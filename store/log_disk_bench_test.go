package store_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
)

// BenchmarkDiskAppendBatch100 appends batches of 100 events from one producer, each batch its
// own synced commit (the fsync of every batch included), and reports events per second.
func BenchmarkDiskAppendBatch100(b *testing.B) {
	var syncs atomic.Int64
	var syncTime atomic.Int64
	d := openDisk(b, b.TempDir(), store.DiskOptions{Retention: 100000, OnCommit: func(took time.Duration, _ int) {
		syncs.Add(1)
		syncTime.Add(int64(took))
	}})
	batch := storetest.Drafts(b, 100)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "events/s")
	if n := syncs.Load(); n > 0 {
		b.ReportMetric(float64(syncTime.Load())/float64(n)/1e6, "ms/fsync")
	}
}

// BenchmarkDiskAppendConcurrent16 appends single events from 16 concurrent producers, as 16
// publishing clients do: they share fsyncs through the appender's group commit.
func BenchmarkDiskAppendConcurrent16(b *testing.B) {
	d := openDisk(b, b.TempDir(), store.DiskOptions{Retention: 100000})
	one := storetest.Drafts(b, 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.Append(ctx, one); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// fillDisk appends n events in batches of 1000 and closes the store.
func fillDisk(b *testing.B, dir string, n int) {
	b.Helper()
	d, err := store.OpenDisk(dir, store.DiskOptions{Retention: n})
	if err != nil {
		b.Fatal(err)
	}
	storetest.FillAndClose(b, d, n)
}

// BenchmarkDiskReplay reads a log of 100,000 events from disk in pages of 1000, as a resume from
// the oldest position does, and reports events per second.
func BenchmarkDiskReplay(b *testing.B) {
	const n = 100000
	dir := b.TempDir()
	fillDisk(b, dir, n)
	d := openDisk(b, dir, store.DiskOptions{Retention: n})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		got := 0
		for after := (event.ID{}); ; {
			p, err := d.Read(ctx, after, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Events) == 0 {
				break
			}
			got += len(p.Events)
			after = p.Next
		}
		if got != n {
			b.Fatalf("replayed %d events, want %d", got, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDiskOpen opens (and closes) a store holding 100,000 events: the start-up cost of a
// full log.
func BenchmarkDiskOpen(b *testing.B) {
	const n = 100000
	dir := b.TempDir()
	fillDisk(b, dir, n)
	b.ReportAllocs()
	for b.Loop() {
		d, err := store.OpenDisk(dir, store.DiskOptions{Retention: n})
		if err != nil {
			b.Fatal(err)
		}
		if s := d.Stats(); s.Events != n {
			b.Fatalf("%d events after open, want %d", s.Events, n)
		}
		if err := d.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
