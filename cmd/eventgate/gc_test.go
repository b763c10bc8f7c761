package main

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestGCPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, maxGCPercent},
		{512 << 10, maxGCPercent},   // 800 %, capped
		{2 << 20, 200},              // 4 MiB of headroom on 2 MiB
		{3 << 20, 150},              // 133 % rounded up to a multiple of 25
		{8 << 20, defaultGCPercent}, // 50 % is 4 MiB: as before
		{1 << 30, defaultGCPercent},
	} {
		if got := gcPercent(tc.live); got != tc.want {
			t.Errorf("gcPercent(%d KiB) = %d, want %d", tc.live>>10, got, tc.want)
		}
		if got := gcPercent(tc.live); tc.live > 0 && got < maxGCPercent && uint64(got)*tc.live/100 < minGCHeadroom {
			t.Errorf("gcPercent(%d KiB) = %d leaves less than %d MiB of headroom", tc.live>>10, got, minGCHeadroom>>20)
		}
	}
}

// TestGCTunerFollowsCollections: the tuner sets a target at start and again after a collection
// in which the live heap changed enough to move it.
func TestGCTunerFollowsCollections(t *testing.T) {
	sets := make(chan int, 64)
	// The tuner stays armed after the test: its setter must never block the finalizer goroutine.
	set := func(p int) int {
		select {
		case sets <- p:
		default:
		}
		return 0
	}
	tuner := &gcTuner{set: set, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tuner.tune(0)
	if p := <-sets; p != maxGCPercent {
		t.Fatalf("first target %d, want %d", p, maxGCPercent)
	}
	tuner.arm()
	// Hold about 64 MiB live: after a collection the target must fall to the default.
	held := make([][]byte, 64)
	for i := range held {
		held[i] = make([]byte, 1<<20)
	}
	deadline := time.After(10 * time.Second)
	for {
		runtime.GC()
		select {
		case p := <-sets:
			if p != defaultGCPercent {
				continue // a collection before the heap was held
			}
			runtime.KeepAlive(held)
			return
		case <-deadline:
			t.Fatal("no target set after collections with 64 MiB live")
		case <-time.After(10 * time.Millisecond):
		}
	}
}
