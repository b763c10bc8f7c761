package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/limits"
)

// NewRateLimiter makes a limiter of rate owned by t. Two calls within one test with the same
// shared name must return limiters that share budgets when the implementation is distributed (the
// same prefix on the same server); in-process implementations ignore shared.
type NewRateLimiter func(t *testing.T, shared string, rate limits.Rate) limits.RateLimiter

// RunRateLimiter runs the RateLimiter contract suite. distributed says whether two limiters made
// with the same shared name must share budgets.
func RunRateLimiter(t *testing.T, distributed bool, newLimiter NewRateLimiter) {
	tests := []struct {
		name string
		run  func(t *testing.T, newLimiter NewRateLimiter)
	}{
		{"Budget", testRateBudget},
		{"KeysAreIndependent", testRateKeys},
		{"Concurrent", testRateConcurrent},
	}
	if distributed {
		tests = append(tests, struct {
			name string
			run  func(t *testing.T, newLimiter NewRateLimiter)
		}{"SharedAcrossInstances", testRateShared})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newLimiter)
		})
	}
}

var perMinute3 = limits.Rate{Limit: 3, Period: time.Minute}

func allow(t *testing.T, l limits.RateLimiter, key string) limits.RateResult {
	t.Helper()
	r, err := l.Allow(ctxFor(t), key)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	return r
}

// testRateBudget: limit hits pass with a falling Remaining, the next is Reached; Reset is within
// one period.
func testRateBudget(t *testing.T, newLimiter NewRateLimiter) {
	l := newLimiter(t, "budget", perMinute3)
	start := time.Now()
	for i, wantRemaining := range []int64{2, 1, 0} {
		r := allow(t, l, "k")
		if r.Reached || r.Limit != 3 || r.Remaining != wantRemaining {
			t.Fatalf("hit %d: %+v, want limit 3, remaining %d, not reached", i+1, r, wantRemaining)
		}
		if r.Reset.Before(start.Add(-time.Second)) || r.Reset.After(time.Now().Add(time.Minute+time.Second)) {
			t.Fatalf("hit %d: reset %s, want within a minute of %s", i+1, r.Reset, start)
		}
	}
	for i := 0; i < 2; i++ {
		if r := allow(t, l, "k"); !r.Reached || r.Remaining != 0 {
			t.Fatalf("hit %d over the budget: %+v, want reached with 0 remaining", 4+i, r)
		}
	}
}

func testRateKeys(t *testing.T, newLimiter NewRateLimiter) {
	l := newLimiter(t, "keys", perMinute3)
	for i := 0; i < 4; i++ {
		allow(t, l, "a")
	}
	if r := allow(t, l, "b"); r.Reached || r.Remaining != 2 {
		t.Fatalf("key b after a's budget ran out: %+v, want its own full budget", r)
	}
	if r := allow(t, l, "a:b"); r.Reached || r.Remaining != 2 {
		t.Fatalf("key a:b: %+v, want its own budget", r)
	}
}

// testRateConcurrent: n concurrent hits on a budget of limit admit exactly limit.
func testRateConcurrent(t *testing.T, newLimiter NewRateLimiter) {
	const limit, n = 20, 50
	l := newLimiter(t, "concurrent", limits.Rate{Limit: limit, Period: time.Minute})
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := l.Allow(ctxFor(t), "hot")
			if err != nil {
				errs <- err
				return
			}
			if !r.Reached {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Allow: %v", err)
	}
	if admitted != limit {
		t.Fatalf("%d of %d concurrent hits admitted, want exactly %d", admitted, n, limit)
	}
}

// testRateShared: two limiters on the same store share one budget (two instances, one Redis).
func testRateShared(t *testing.T, newLimiter NewRateLimiter) {
	a, b := newLimiter(t, "shared", perMinute3), newLimiter(t, "shared", perMinute3)
	other := newLimiter(t, "other", perMinute3)
	for i, l := range []limits.RateLimiter{a, b, a} {
		if r := allow(t, l, "ip"); r.Reached {
			t.Fatalf("hit %d: reached early: %+v", i+1, r)
		}
	}
	for name, l := range map[string]limits.RateLimiter{"a": a, "b": b} {
		if r := allow(t, l, "ip"); !r.Reached {
			t.Fatalf("instance %s after 3 shared hits: %+v, want reached", name, r)
		}
	}
	if r := allow(t, other, "ip"); r.Reached {
		t.Fatal(fmt.Sprintf("a limiter with another prefix shares the budget: %+v", r))
	}
}
