// Package backoff is eventgate's one exponential back-off: a wait that starts at a base and
// doubles with each consecutive failure up to a cap. The hub's log reader, the job projector,
// webhook workers and the CLI's publish and tail retries all pace themselves with it; jitter and
// a server's Retry-After stay with the caller, which knows whether it wants them.
package backoff

import (
	"context"
	"time"
)

// Policy is an exponential back-off: Base after the first failure, doubled after each further
// one, up to Max (a Max below Base means Base). A Policy is a value with no state: the caller
// counts its failures, so one Policy serves any number of goroutines.
type Policy struct {
	Base, Max time.Duration
}

// Store paces a failed store call retried in the background (the hub's log reader, the job
// projector, webhook workers): 100 ms, doubling to 5 s. Nothing is lost by waiting, and a Redis
// that comes back is found within 5 s.
var Store = Policy{Base: 100 * time.Millisecond, Max: 5 * time.Second}

// Delay returns the wait after n earlier consecutive failures: Base for n = 0 (or less), doubled
// n times, at most max(Max, Base). A Base of 0 or less waits 0.
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	if d <= 0 {
		return 0
	}
	for ; n > 0 && d < p.Max; n-- {
		d *= 2
	}
	return max(min(d, p.Max), p.Base)
}

// Wait sleeps for d or until ctx ends, whichever comes first; it reports whether the whole wait
// passed (false: ctx ended). The timer is released either way.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
