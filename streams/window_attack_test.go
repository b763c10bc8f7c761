package streams_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// attackLog is the log as appended, in log order, one goroutine appending: what every
// subscriber's delivery is checked against.
type attackLog struct {
	mu     sync.Mutex
	events []attackEvent
	done   bool
}

type attackEvent struct {
	id    event.ID
	queue bool // a queue.status event (topic "queue"); else a note (topic "notes/…")
	log   int  // which log it went to (0, then 1 after a reset)
}

func (l *attackLog) add(ids []event.ID, queue []bool, log int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, id := range ids {
		l.events = append(l.events, attackEvent{id: id, queue: queue[i], log: log})
	}
}

// finish records that the appends are over: subscribers stop once they reach the last event.
func (l *attackLog) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
}

func (l *attackLog) snapshot() ([]attackEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events), l.done
}

// appendMixed appends a batch of 1 to 5 queue and note events and records it.
func appendMixed(t *testing.T, rnd *rand.Rand, log streams.Log, rec *attackLog, which int) {
	n := 1 + rnd.IntN(5)
	ds := make([]event.Draft, n)
	queue := make([]bool, n)
	for i := range ds {
		queue[i] = rnd.IntN(2) == 0
		if queue[i] {
			ds[i] = draft(t, "queue.status", `{"pending":1,"active":0}`)
		} else {
			ds[i] = note(t)
		}
	}
	ids, err := log.Append(context.Background(), ds)
	if err != nil {
		t.Error(err)
		return
	}
	rec.add(ids, queue, which)
}

// drainTo drains sub until its position reaches the last event appended (once appending is
// done), or the deadline passes. It calls change, if set, once the subscriber has delivered
// changeAfter events.
func drainTo(t *testing.T, sub *streams.Subscription, rec *attackLog, changeAfter int, change func([]*event.Event)) []*event.Event {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []*event.Event
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	failed := false // the last Next failed (the store was down): retry on the next tick
	next := func() {
		var err error
		out, err = sub.Next(ctx, out)
		if failed = err != nil; failed && !errors.Is(err, streams.ErrUnavailable) {
			t.Error(err)
		}
		if change != nil && len(out) >= changeAfter {
			change(out)
			change = nil
		}
	}
	for {
		select {
		case <-sub.Ready():
			next()
		case <-tick.C: // poll: is everything appended delivered?
			if failed {
				next()
			}
			events, done := rec.snapshot()
			if done && (len(events) == 0 || !sub.Position().Less(events[len(events)-1].id)) {
				return out
			}
		case <-ctx.Done():
			t.Errorf("drain: deadline passed at %v with %d events", sub.Position(), len(out))
			return out
		}
	}
}

// wantExactly checks that got holds exactly want's ids, each once and in want's order.
func wantExactly(t *testing.T, who string, got []*event.Event, want []event.ID) {
	t.Helper()
	for _, e := range got {
		if e.Control {
			t.Errorf("%s: unexpected control event %s %s", who, e.Type, e.JSON)
			return
		}
	}
	ids := make([]event.ID, len(got))
	for i, e := range got {
		ids[i] = e.ID
	}
	if slices.Equal(ids, want) {
		return
	}
	seen := map[event.ID]int{}
	for _, id := range ids {
		seen[id]++
		if seen[id] == 2 {
			t.Errorf("%s: %v delivered twice", who, id)
		}
	}
	for _, id := range want {
		if seen[id] == 0 {
			t.Errorf("%s: %v missing", who, id)
			break
		}
	}
	t.Errorf("%s: got %d events, want %d (in log order)", who, len(ids), len(want))
}

// Many subscribers with tiny buffers, starting live or resuming from positions inside, before
// and between the window's events, and changing their filter with a since inside or outside the
// window, while the log is appended to concurrently: each gets exactly the events its filters
// promise, each once, in log order (within a filter segment), and no resync from a log that
// trims nothing. Windows smaller than a page, and windows evicting by bytes, included.
func TestWindowConcurrentAttack(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts streams.HubOptions
	}{
		{"window smaller than a page", streams.HubOptions{Buffer: 1, PageSize: 16, Window: 5}},
		{"window evicts by bytes", streams.HubOptions{Buffer: 1, PageSize: 4, Window: 1000, WindowBytes: 6 * 200}},
		{"event larger than the window", streams.HubOptions{Buffer: 1, PageSize: 8, Window: 1000, WindowBytes: 100}},
		{"batched fan-out", streams.HubOptions{Buffer: 2, PageSize: 8, Window: 40, Interval: 3 * time.Millisecond}},
		{"no window", streams.HubOptions{Buffer: 1, PageSize: 8, Window: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := quickRing(1 << 20)
			h := runHub(t, log, tc.opts)
			<-h.Started()
			rec := &attackLog{}
			rnd := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			for range 20 {
				appendMixed(t, rnd, log, rec, 0)
			}
			const subs = 16
			var wg sync.WaitGroup
			subRnd := make([]*rand.Rand, subs)
			for i := range subs {
				subRnd[i] = rand.New(rand.NewPCG(uint64(i), 7))
			}
			for i := range subs {
				// Each subscriber starts while the appends go on.
				wg.Go(func() { attackSubscriber(t, h, rec, i, subRnd[i]) })
				for range 3 {
					appendMixed(t, rnd, log, rec, 0)
				}
			}
			for range 150 {
				appendMixed(t, rnd, log, rec, 0)
			}
			rec.finish()
			wg.Wait()
		})
	}
}

func attackSubscriber(t *testing.T, h *streams.Hub, rec *attackLog, i int, rnd *rand.Rand) {
	all, _ := rec.snapshot()
	queueOnly := filter(t, "queue")
	both := filter(t, "queue", "notes/*")
	var start streams.Start
	var startAt event.ID
	old := queueOnly
	if i%2 == 1 {
		old = both
	}
	kind := (i / 2) % 4
	switch kind {
	case 0: // live
		start = streams.Live
	case 1: // an event's position, recent or old
		startAt = all[len(all)-1-rnd.IntN(min(len(all), 30))].id
		start = streams.After(startAt)
	case 2: // a position between two events (one the log never held)
		e := all[len(all)-1-rnd.IntN(min(len(all), 30))].id
		startAt = e.Next()
		start = streams.After(startAt)
	case 3: // the position just before an event
		startAt = all[len(all)-1-rnd.IntN(min(len(all), 30))].id.Prev()
		start = streams.After(startAt)
	}
	sub, err := h.SubscribeWith(context.Background(), old, start, streams.SubscribeOptions{})
	if err != nil {
		t.Error(err)
		return
	}
	defer sub.Close()
	if start.Live {
		startAt = sub.Position()
	}
	// Half the queue-only subscribers add the notes after some events, with a since from before
	// their start, or inside what they delivered.
	changing := i%2 == 0 && (i/8)%2 == 0
	var since *event.ID
	var changedAt int
	var changedPos event.ID
	changeAfter := 5 + rnd.IntN(20)
	var change func([]*event.Event)
	if changing {
		change = func(got []*event.Event) {
			var s event.ID
			if rnd.IntN(2) == 0 {
				s = got[rnd.IntN(len(got))].ID // delivered: before the position
			} else {
				s = startAt // not after anything it delivered
				if earlier := all[rnd.IntN(len(all))].id; earlier.Less(s) {
					s = earlier
				}
			}
			since = &s
			changedAt, changedPos = len(got), sub.Position()
			sub.Change(both, since)
		}
	}
	got := drainTo(t, sub, rec, changeAfter, change)
	events, _ := rec.snapshot()
	var want []event.ID
	if since != nil { // changed: old events after start, plus the notes after since
		var set []event.ID
		for _, e := range events {
			if (startAt.Less(e.id) && e.queue) || (since.Less(e.id) && !e.queue) {
				set = append(set, e.id)
			}
		}
		// Order is log order within the replay and the live part, not overall: compare sets,
		// and check no id repeats.
		gotIDs := make([]event.ID, len(got))
		for k, e := range got {
			gotIDs[k] = e.ID
		}
		first := map[event.ID]int{}
		for k, e := range got {
			if j, ok := first[e.ID]; ok {
				t.Logf("sub %d: %v (%s) at %d and %d; changed after %d events at position %v, since %v",
					i, e.ID, e.Type, j, k, changedAt, changedPos, *since)
				for m := max(0, j-3); m < min(len(got), k+3); m++ {
					t.Logf("  %d %v %s", m, got[m].ID, got[m].Type)
				}
			}
			first[e.ID] = k
		}
		slices.SortFunc(gotIDs, event.ID.Compare)
		wantExactly(t, fmt.Sprintf("sub %d (change since %v, start %v)", i, *since, startAt),
			sortedEvents(gotIDs, got), set)
		return
	}
	for _, e := range events {
		if startAt.Less(e.id) && (e.queue || old.Match(&event.Event{Type: "note.deleted", Topic: "notes/" + jobA})) {
			want = append(want, e.id)
		}
	}
	wantExactly(t, fmt.Sprintf("sub %d (kind %d, start %v)", i, kind, startAt), got, want)
}

// sortedEvents returns events with ids, for wantExactly (control events keep their flag).
func sortedEvents(ids []event.ID, orig []*event.Event) []*event.Event {
	out := make([]*event.Event, len(ids))
	ctl := map[event.ID]bool{}
	for _, e := range orig {
		if e.Control {
			ctl[e.ID] = true
		}
	}
	for i, id := range ids {
		out[i] = &event.Event{ID: id, Control: ctl[id], Type: "x"}
	}
	return out
}

// gated holds back the non-empty pages the hub's reader tails until a receive on gate (closed:
// all pass): the log runs ahead of the hub, as it does whenever appends outpace the reader, or
// the reader holds a page of a log that is then lost.
type gated[L streams.Log] struct {
	log  L
	gate chan struct{}
}

func (l *gated[L]) Append(ctx context.Context, d []event.Draft) ([]event.ID, error) {
	return l.log.Append(ctx, d)
}

func (l *gated[L]) Read(ctx context.Context, after event.ID, n int) (streams.Page, error) {
	return l.log.Read(ctx, after, n)
}

func (l *gated[L]) Bounds(ctx context.Context) (streams.Bounds, error) { return l.log.Bounds(ctx) }

func (l *gated[L]) Tail(ctx context.Context, after event.ID, n int) (streams.Page, error) {
	p, err := l.log.Tail(ctx, after, n)
	if err != nil || len(p.Events) == 0 {
		return p, err
	}
	select {
	case <-l.gate:
	case <-ctx.Done():
		return streams.Page{Next: after}, ctx.Err()
	}
	return p, nil
}

// A subscription that caught up from the log ahead of the hub's reader (B), then changes its
// filter with a since inside the window, replays from the window — which ends before B, where
// the reader is — and goes live there. B then arrives live: it must not be delivered again.
func TestChangeReplayFromWindowDoesNotRepeatAttack(t *testing.T) {
	t.Parallel()
	log := &gated[*store.Memory]{log: quickRing(1000), gate: make(chan struct{})}
	h := runHub(t, log, streams.HubOptions{Buffer: 4, Window: 2})
	<-h.Started()
	queue := func() event.Draft { return draft(t, "queue.status", `{"pending":1,"active":0}`) }
	a := appendDrafts(t, log, queue(), queue(), queue(), queue()) // A1 … A4
	log.gate <- struct{}{}
	hubAt(t, h, "A4 dispatched", func(id event.ID) bool { return id == a[3] })
	b := appendDrafts(t, log, queue()) // B: in the log; the reader waits at the gate with it

	// The window holds A3 A4 (from A2): a resume from A1 reads the log, up to B.
	sub, err := h.Subscribe(t.Context(), filter(t, "queue"), streams.After(a[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	all := collect(t, sub, 4)
	wantIDs(t, all, []event.ID{a[1], a[2], a[3], b[0]})
	for sub.Position() != b[0] { // the empty read after B ends the catch-up
		<-sub.Ready()
		if got, err := sub.Next(t.Context(), nil); err != nil || len(got) > 0 {
			t.Fatalf("got %v, %v", got, err)
		}
	}

	// Notes too, with their history since A3: within the window, which ends at A4.
	since := a[2]
	sub.Change(filter(t, "queue", "notes/*"), &since)
	if got := drainUntilQuiet(t, sub); len(got) > 0 {
		t.Fatalf("the replay delivered %v: nothing new since A3", got)
	}
	close(log.gate) // the reader dispatches B
	c := appendDrafts(t, log, queue())
	all = append(all, collect(t, sub, 1)...)
	all = append(all, drainUntilQuiet(t, sub)...)
	wantExactly(t, "across the change", all, []event.ID{a[1], a[2], a[3], b[0], c[0]})

}
