package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// defaultGCPercent is the garbage collector's target for a large heap unless GOGC is set.
// eventgate's large heaps are mostly long-lived connection state, allocated slowly (delivery
// allocates nothing per subscriber), while every upgrade leaves a burst of garbage (net/http's
// hijacked buffers, the request). With Go's default of 100 the heap grows to twice the live heap
// plus stacks before a collection, which that garbage fills: resident memory per connection
// about doubles. At 50 it grows by half as much (docs/performance.md: idle-connection memory and
// broadcast latency with both settings).
const defaultGCPercent = 50

// minGCHeadroom is what the heap may grow past the live heap before a collection, whatever its
// size. 50 % of the small heap of a publisher-heavy process with few connections (a few MiB) is
// so little that the collector took about a tenth of the CPU at 12,000 publishes/s; with this
// floor a publish costs 70 instead of 90 µs of CPU (docs/storage.md). Heaps of 8 MiB or more get
// 50 % as before.
const minGCHeadroom = 4 << 20

// maxGCPercent bounds the target raised for small heaps.
const maxGCPercent = 400

// gcPercent is the collector's target for a live heap of live bytes: defaultGCPercent, raised so
// that the heap may grow by at least minGCHeadroom, rounded up to a multiple of 25 so that small
// changes of the live heap do not move it.
func gcPercent(live uint64) int {
	if live == 0 {
		return maxGCPercent
	}
	p := int((minGCHeadroom*100 + live - 1) / live)
	p = (p + 24) / 25 * 25
	return min(max(p, defaultGCPercent), maxGCPercent)
}

// tuneGC keeps the collector's target at gcPercent of the live heap, measured after every
// collection, unless the environment sets GOGC (which then wins, as it does for any Go program).
func tuneGC(logger *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	t := &gcTuner{set: debug.SetGCPercent, logger: logger}
	t.tune(0)
	t.arm()
}

// gcTuner sets the target after each collection: a finalizer on an object dropped at once runs
// after the next collection, and arms the next one. Only the finalizer goroutine runs tune.
type gcTuner struct {
	set    func(int) int
	logger *slog.Logger
	cur    int
}

// gcSentinel is what the finalizer hangs on. It holds a pointer and is larger than 16 bytes, so
// the runtime never batches it with other small objects (the tiny allocator batches pointer-free
// objects under 16 bytes): batched with one that stays alive, it would never be finalized, and
// the tuner would stop for good, keeping the target set at start (400 %) however large the heap.
type gcSentinel struct {
	_ *gcSentinel
	_ [16]byte
}

func (t *gcTuner) arm() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			t.tune(s[0].Value.Uint64())
		}
		t.arm()
	})
}

func (t *gcTuner) tune(live uint64) {
	if p := gcPercent(live); p != t.cur {
		t.set(p)
		t.cur = p
		t.logger.Debug("garbage collector target set", "gogc", p, "live_heap_bytes", live)
	}
}
