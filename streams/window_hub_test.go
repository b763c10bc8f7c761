package streams_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// readCounting counts the reads of the log other than the hub's own Tail.
type readCounting struct {
	*store.Memory
	reads atomic.Int64
}

func (l *readCounting) Read(ctx context.Context, after event.ID, n int) (streams.Page, error) {
	l.reads.Add(1)
	return l.Memory.Read(ctx, after, n)
}

// A burst that overflows every subscriber's live buffer is caught up from the hub's window: each
// subscriber gets every event once, in order, while the burst is still being appended, and the
// log is never read on their behalf.
func TestBurstCatchesUpFromWindow(t *testing.T) {
	t.Parallel()
	log := &readCounting{Memory: quickRing(100000)}
	h := runHub(t, log, streams.HubOptions{Buffer: 1, PageSize: 16})
	const subs, events = 20, 600
	var wg sync.WaitGroup
	ready := make(chan struct{}, subs)
	results := make([][]*event.Event, subs)
	for i := range subs {
		wg.Go(func() {
			sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.Live)
			if err != nil {
				t.Error(err)
				return
			}
			defer sub.Close()
			ready <- struct{}{}
			results[i] = collect(t, sub, events)
		})
	}
	for range subs {
		<-ready
	}
	var ids []event.ID
	for len(ids) < events { // batches of 3: every dispatch overflows a buffer of 1
		got, err := log.Append(t.Context(), []event.Draft{progress(t, 1), progress(t, 2), progress(t, 3)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	wg.Wait()
	for i := range subs {
		wantIDs(t, results[i], ids)
	}
	if n := log.reads.Load(); n != 0 {
		t.Errorf("%d reads of the log, want 0: catch-up within the window reads memory", n)
	}
}

// A subscriber resuming before the window reads the log up to it, then continues from the window
// and live, with no gap and no duplicate at either seam; one resuming within the window reads
// no log at all.
func TestResumeAcrossWindowStart(t *testing.T) {
	t.Parallel()
	log := &readCounting{Memory: quickRing(100000)}
	h := runHub(t, log, streams.HubOptions{Buffer: 4, PageSize: 16, Window: 50})
	<-h.Started()
	ids := appendN(t, log, 200)
	hubAt(t, h, "dispatched all", func(id event.ID) bool { return id == ids[len(ids)-1] })

	sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.After(ids[10]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var more []event.ID
	done := make(chan struct{})
	go func() { defer close(done); more = appendN(t, log, 100) }() // while it replays
	got := collect(t, sub, 189+100)
	<-done
	wantIDs(t, got, append(append([]event.ID{}, ids[11:]...), more...))
	if n := log.reads.Load(); n == 0 {
		t.Error("no read of the log for a resume before the window")
	}

	log.reads.Store(0)
	recent, err := h.Subscribe(t.Context(), event.Filter{}, streams.After(more[60]))
	if err != nil {
		t.Fatal(err)
	}
	defer recent.Close()
	wantIDs(t, collect(t, recent, 39), more[61:])
	if n := log.reads.Load(); n != 0 {
		t.Errorf("%d reads of the log for a resume within the window, want 0", n)
	}
}

// The log's trimming binds the window too (docs/api.md, the contract's "events after X were
// trimmed"): a subscriber resuming at a position the log trimmed gets a history_truncated resync,
// then the events the log holds, although the hub read every event and its window still holds
// them all.
func TestWindowHonoursTrim(t *testing.T) {
	t.Parallel()
	log := quickRing(10)
	h := runHub(t, log, streams.HubOptions{Buffer: 4, PageSize: 16})
	<-h.Started()
	var ids []event.ID
	for range 30 { // one at a time, the hub reading each before the next
		ids = append(ids, appendN(t, log, 1)...)
		hubAt(t, h, "dispatched", func(id event.ID) bool { return id == ids[len(ids)-1] })
	}
	sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.After(ids[2]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := collect(t, sub, 11)
	wantResync(t, got[0], streams.ReasonTruncated)
	wantIDs(t, got[1:], ids[20:])
}

// A position the hub's reader never saw is the log's to judge, even when it falls between the
// window's start and end: here the reader started on an empty log, A and B were appended and lost
// with the store before it read them, and the new log's C followed. A client resuming after A
// must get a resync, not C alone (found by TestE2ERedisRestartedEmpty).
func TestWindowIgnoresPositionsItNeverSaw(t *testing.T) {
	t.Parallel()
	log := &swappableLog{log: quickRing(100)}
	h := runHub(t, log, streams.HubOptions{Buffer: 8})
	<-h.Started()
	ids := appendN(t, quickRing(100), 2) // A and B, in a log the reader never reads
	ring, c := restartedEmpty(t, ids)
	log.set(ring, false)
	hubAt(t, h, "dispatched C", func(id event.ID) bool { return id == c })

	sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.After(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := collect(t, sub, 2)
	wantResync(t, got[0], streams.ReasonUnknown)
	wantIDs(t, got[1:], []event.ID{c})
}
