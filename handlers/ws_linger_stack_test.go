package handlers

import (
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
)

// growStack calls itself n deep with 256-byte frames: a delivery's stack, without the network.
//
//go:noinline
func growStack(n int) byte {
	var b [256]byte
	b[n%len(b)] = byte(n)
	if n == 0 {
		return b[0]
	}
	return growStack(n-1) + b[n%len(b)]
}

// TestLingerWaitKeepsStack: writers parked in lingerWait keep the stacks their deliveries grew
// through collections; parked shallow, the collector halves them (and the next delivery copies
// them back). Measured on 2,000 goroutines with 8 KiB stacks, against the same parked in a bare
// select. Not parallel: it reads the process's stack memory.
func TestLingerWaitKeepsStack(t *testing.T) {
	// Only the test's own collections: one between parking and the first reading would shrink the
	// stacks before they are measured.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const n = 2000
	depth := 24
	if raceEnabled() {
		depth = 12 // the race detector's frames are about twice as large
	}
	stackAfterGC := func(park func(kick chan struct{})) (before, after uint64) {
		kick := make(chan struct{})
		parked := make(chan struct{}, n)
		done := make(chan struct{}, n)
		for range n {
			go func() {
				growStack(depth) // about 7 KiB: the stack grows to 8 KiB
				parked <- struct{}{}
				park(kick)
				done <- struct{}{}
			}()
		}
		for range n {
			<-parked
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before = ms.StackInuse
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		after = ms.StackInuse
		close(kick)
		for range n {
			<-done
		}
		return before, after
	}
	bareBefore, bareAfter := stackAfterGC(func(kick chan struct{}) { <-kick })
	before, after := stackAfterGC(lingerWait)
	t.Logf("stacks in use, before and after two collections: bare receive %d → %d KiB, lingerWait %d → %d KiB",
		bareBefore>>10, bareAfter>>10, before>>10, after>>10)
	if bareAfter > bareBefore*3/4 {
		t.Fatalf("parked in a bare receive, the stacks were not halved (%d → %d KiB): the test does not test", bareBefore>>10, bareAfter>>10)
	}
	if after < before*7/8 {
		t.Errorf("parked in lingerWait, the stacks shrank %d → %d KiB", before>>10, after>>10)
	}
}

// raceEnabled reports whether the test runs under the race detector.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"})
}
