package streams_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// Batched fan-out must not cap the reader at one page per interval: a backlog larger than a
// page (a burst, or appends faster than PageSize per Interval) is dispatched without waiting an
// interval between full pages, so the latency the interval adds stays within the interval
// (docs/architecture.md, "Batched fan-out") and the reader does not fall behind the log until
// the ring trims past it.
func TestDispatchIntervalBacklogAttack(t *testing.T) {
	t.Parallel()
	const interval = 10 * time.Millisecond
	cases := []struct {
		name   string
		rounds int           // appends
		batch  int           // events per append
		every  time.Duration // between appends
	}{
		{"a burst of ten pages", 1, 40, 0},
		{"faster than a page per interval", 100, 8, time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				log := store.NewMemory(100000)
				log.SetPoll(time.Second)
				ctx, sub := liveOnHub(t, log, streams.HubOptions{Interval: interval, PageSize: 4, Buffer: 100000})
				time.Sleep(time.Second) // a pause
				var ids []event.ID
				for range tc.rounds {
					ds := make([]event.Draft, tc.batch)
					for i := range ds {
						ds[i] = progress(t, i)
					}
					got, err := log.Append(ctx, ds)
					if err != nil {
						t.Fatal(err)
					}
					ids = append(ids, got...)
					time.Sleep(tc.every)
				}
				time.Sleep(interval) // the most the interval may add
				synctest.Wait()
				got, _ := sub.Next(ctx, nil)
				if len(got) != len(ids) {
					t.Fatalf("%d of %d events dispatched one interval after the last append: the reader lags the log", len(got), len(ids))
				}
				wantIDs(t, got, ids)
			})
		})
	}
}
