package streams_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// batchCounter counts the hub's dispatches.
type batchCounter struct {
	batches atomic.Int64
}

func (c *batchCounter) Dispatched([]*event.Event) { c.batches.Add(1) }
func (*batchCounter) CatchUp()                    {}
func (*batchCounter) Resync(string)               {}
func (*batchCounter) ReaderError(error)           {}

// With an Interval, a steady stream of single events reaches subscribers in batches of about an
// interval's worth, in order and complete; the first event after a pause goes out at once.
func TestDispatchInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		interval   time.Duration
		maxBatches int64
		minBatches int64
	}{
		{interval: 0, minBatches: 90, maxBatches: 101},                   // one per event
		{interval: 10 * time.Millisecond, minBatches: 9, maxBatches: 13}, // 100 events over 100 ms
	} {
		t.Run(tc.interval.String(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				log := store.NewMemory(1000)
				log.SetPoll(time.Second)
				var c batchCounter
				ctx, sub := liveOnHub(t, log, streams.HubOptions{Interval: tc.interval, Observer: &c, Buffer: 1000})

				time.Sleep(time.Second) // a pause: the next event goes out at once
				start := time.Now()
				first := appendN(t, log, 1)
				synctest.Wait()
				if got, _ := sub.Next(ctx, nil); len(got) != 1 || got[0].ID != first[0] || time.Since(start) != 0 {
					t.Fatalf("after a pause: %d events after %v, want the event at once", len(got), time.Since(start))
				}
				c.batches.Store(0)
				var ids []event.ID
				for range 100 {
					ids = append(ids, appendN(t, log, 1)...)
					time.Sleep(time.Millisecond)
				}
				time.Sleep(2 * tc.interval)
				synctest.Wait()
				got, _ := sub.Next(ctx, nil)
				wantIDs(t, got, ids)
				if n := c.batches.Load(); n < tc.minBatches || n > tc.maxBatches {
					t.Errorf("%d batches for 100 events 1 ms apart, want %d to %d", n, tc.minBatches, tc.maxBatches)
				}
			})
		})
	}
}

// liveOnHub runs a hub over log until the test ends, for tests in a synctest bubble, and returns
// a live subscription on it, closed at the end, and the context it runs under.
func liveOnHub(t *testing.T, log streams.Log, opts streams.HubOptions) (context.Context, *streams.Subscription) {
	t.Helper()
	h := streams.NewHub(log, opts)
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() { _ = h.Run(ctx) }()
	<-h.Started()
	sub, err := h.Subscribe(ctx, event.Filter{}, streams.Live)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return ctx, sub
}
