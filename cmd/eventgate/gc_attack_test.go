package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

// TestGCPercentAttack: whatever the live heap, the target stays within [default, max], is a
// multiple of 25, leaves at least minGCHeadroom unless capped, and never rises as the live heap
// grows (so a heap that grows brings the target back down to the default).
func TestGCPercentAttack(t *testing.T) {
	t.Parallel()
	prev := gcPercent(1)
	for _, live := range []uint64{1, 2, 1 << 10, 1<<20 - 1, 1 << 20, 1<<20 + 1, 2<<20 - 1, 2 << 20, 4<<20 - 1, 4 << 20, 5 << 20, 7<<20 + 123, 8<<20 - 1, 8 << 20, 8<<20 + 1, 1 << 30, 1 << 40, 1 << 62, ^uint64(0) / 200} {
		p := gcPercent(live)
		switch {
		case p < defaultGCPercent || p > maxGCPercent:
			t.Errorf("gcPercent(%d) = %d, outside [%d, %d]", live, p, defaultGCPercent, maxGCPercent)
		case p%25 != 0:
			t.Errorf("gcPercent(%d) = %d, not a multiple of 25", live, p)
		case p < maxGCPercent && uint64(p)*live/100 < minGCHeadroom:
			t.Errorf("gcPercent(%d) = %d leaves %d bytes of headroom, want at least %d", live, p, uint64(p)*live/100, minGCHeadroom)
		case p > prev:
			t.Errorf("gcPercent(%d) = %d rose above %d for a larger live heap", live, p, prev)
		case live >= 8<<20 && p != defaultGCPercent:
			t.Errorf("gcPercent(%d) = %d, want %d for a heap of 8 MiB or more", live, p, defaultGCPercent)
		}
		prev = p
	}
}

// gcAttackKeep holds the tiny objects allocated around the sentinel for as long as the process
// runs, as a long-lived small allocation of the program would.
var gcAttackKeep [16]*int64

// TestGCTunerSentinelNotBatchedAttack: the tuner's sentinel must be collected and finalized even
// when the allocations made just before and after it on the same P (small pointer-free objects,
// batched by the runtime's tiny allocator into the same 16-byte slot) stay alive forever. A
// sentinel batched with one never has its finalizer run: the tuner stops for good, and the
// target set at start (400 % for the empty heap) is kept however large the heap grows.
func TestGCTunerSentinelNotBatchedAttack(t *testing.T) {
	sets := make(chan int, 1)
	set := func(p int) int { // never blocks the finalizer goroutine (the tuner outlives the test)
		select {
		case sets <- p:
		default:
		}
		return 0
	}
	tuner := &gcTuner{set: set, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for i := range 8 {
		gcAttackKeep[i] = new(int64)
	}
	tuner.arm()
	for i := 8; i < len(gcAttackKeep); i++ {
		gcAttackKeep[i] = new(int64)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		runtime.GC()
		select {
		case <-sets:
			return
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the tuner's finalizer never ran: its sentinel shares a tiny-allocator slot with a live object")
		}
	}
}
