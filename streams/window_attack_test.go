package streams_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
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
			rec.mu.Lock()
			rec.done = true
			rec.mu.Unlock()
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

// A log that goes back in time — restarted empty (the reader's idle check sees it), or restarted
// and appended to before the reader looked — while subscribers with a buffer of 1 are catching
// up from the window, some resuming from recent positions just before or just after the loss:
// none may cross from the old log into the new without a resync, skip an event of either log
// without one, or get an event twice; and after its last resync each gets every event the new
// log holds.
func TestResetRacesWindowCatchUpAttack(t *testing.T) {
	t.Parallel()
	for _, appendedFirst := range []bool{false, true} {
		for _, window := range []int{0, 8} { // default (4096) and small
			name := fmt.Sprintf("appended first %v window %d", appendedFirst, window)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var logged strings.Builder
				var mu sync.Mutex
				defer func() {
					if t.Failed() {
						mu.Lock()
						t.Log(logged.String())
						mu.Unlock()
					}
				}()
				resetRaceAttack(t, appendedFirst, streams.HubOptions{Buffer: 1, PageSize: 4, Window: window,
					Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logged}, nil))})
			})
		}
	}
}

func resetRaceAttack(t *testing.T, appendedFirst bool, opts streams.HubOptions) {
	log := &swappableLog{log: quickRing(1 << 20)}
	h := runHub(t, log, opts)
	<-h.Started()
	rec := &attackLog{}
	rnd := rand.New(rand.NewPCG(3, 4))
	for range 30 {
		appendMixed(t, rnd, log, rec, 0)
	}
	var wg sync.WaitGroup
	const subs = 10
	results := make([][]*event.Event, subs)
	starts := make([]event.ID, subs)
	run := func(i int, start event.ID) {
		starts[i] = start
		sub, err := h.Subscribe(context.Background(), event.Filter{}, streams.After(start))
		if err != nil {
			t.Error(err)
			return
		}
		defer sub.Close()
		results[i] = drainTo(t, sub, rec, 0, nil)
	}
	old, _ := rec.snapshot()
	for i := range subs / 2 { // resuming from recent positions, before the loss
		start := old[len(old)-1-rnd.IntN(12)].id
		wg.Go(func() { run(i, start) })
		appendMixed(t, rnd, log, rec, 0)
	}
	old, _ = rec.snapshot()
	// The reader has dispatched the old log to its end: a reader still holding a page of the old
	// log when a subscriber resyncs into the new one is TestStaleReaderPageAfterResync.
	hubAt(t, h, "the old log dispatched", func(id event.ID) bool { return id == old[len(old)-1].id })
	// The store loses its log, restarting in the next millisecond (ids are time-based).
	for uint64(time.Now().UnixMilli()) <= old[len(old)-1].id.MS {
		time.Sleep(time.Millisecond)
	}
	fresh := quickRing(1 << 20)
	if appendedFirst {
		appendMixed(t, rnd, fresh, rec, 1)
		log.set(fresh, false)
	} else {
		log.set(nil, true)
		log.set(fresh, false)
	}
	for i := subs / 2; i < subs; i++ { // resuming from old positions, after the loss
		start := old[len(old)-1-rnd.IntN(12)].id
		wg.Go(func() { run(i, start) })
		appendMixed(t, rnd, log, rec, 1)
	}
	for range 40 {
		appendMixed(t, rnd, log, rec, 1)
	}
	rec.mu.Lock()
	rec.done = true
	rec.mu.Unlock()
	wg.Wait()
	events, _ := rec.snapshot()
	for i := range subs {
		checkAcrossReset(t, fmt.Sprintf("sub %d from %v", i, starts[i]), starts[i], results[i], events)
	}
}

// checkAcrossReset checks one subscriber's delivery against the two logs (events: log 0's,
// then log 1's, in order).
func checkAcrossReset(t *testing.T, who string, start event.ID, got []*event.Event, events []attackEvent) {
	t.Helper()
	index := map[event.ID]int{}
	for i, e := range events {
		index[e.id] = i
	}
	// successor of a position in log which: the index of the first of its events after pos.
	successor := func(pos event.ID, which int) int {
		for i, e := range events {
			if e.log == which && pos.Less(e.id) {
				return i
			}
		}
		return len(events)
	}
	defer func() {
		if t.Failed() {
			for k, e := range got {
				i, ok := index[e.ID]
				which := -1
				if ok {
					which = events[i].log
				}
				if k > 12 {
					break
				}
				if e.Control {
					t.Logf("%s: %d: %v %s", who, k, e.ID, e.JSON)
					continue
				}
				t.Logf("%s: %d: %v %s log %d", who, k, e.ID, e.Type, which)
			}
			for i := 1; i < len(events); i++ {
				if events[i].log != events[i-1].log {
					t.Logf("old log ends at %v, new begins at %v", events[i-1].id, events[i].id)
				}
			}
		}
	}()
	prev, prevLog := start, 0 // the position delivery continues from
	resynced := false
	var last event.ID
	for k, e := range got {
		if e.Control {
			if e.Type != streams.TypeResync {
				t.Errorf("%s: control event %s", who, e.Type)
			}
			prev, prevLog, resynced = e.ID, 1, true // continue in the new log
			continue
		}
		if !last.Less(e.ID) {
			t.Errorf("%s: event %d (%v) not after %v: repeated or out of order", who, k, e.ID, last)
			return
		}
		last = e.ID
		i, ok := index[e.ID]
		if !ok {
			t.Errorf("%s: event %d (%v) was never appended", who, k, e.ID)
			return
		}
		if events[i].log != prevLog && !resynced {
			t.Errorf("%s: event %d (%v) of the new log follows %v of the old without a resync", who, k, e.ID, prev)
			return
		}
		if want := successor(prev, prevLog); i != want {
			t.Errorf("%s: event %d is %v, want %v (after %v): a gap without a resync", who, k, e.ID, events[min(want, len(events)-1)].id, prev)
			return
		}
		prev, prevLog, resynced = e.ID, events[i].log, false
	}
	if want := successor(prev, 1); want != len(events) || prevLog != 1 {
		t.Errorf("%s: delivery ended at %v (log %d), short of the new log's last event", who, prev, prevLog)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Found by TestResetRacesWindowCatchUpAttack (about 1 run in 50 under load), predating the
// window, fixed since (Subscription.jumpedAt): the hub's reader has read a page of the old log
// (A) but not yet dispatched it when the store restarts empty. A client resuming from a later position of the old log (B)
// reads the new, empty log: it gets a resync to 0 and goes live there. The reader then
// dispatches A, whose ids are after 0, and the client gets it — events of the lost log, before
// its own position, after a resync that said the new log begins. Only then does the reader find
// the log lost and resync everyone again.
func TestStaleReaderPageAfterResync(t *testing.T) {
	t.Parallel()
	swap := &swappableLog{log: quickRing(100)}
	log := &gated[*swappableLog]{log: swap, gate: make(chan struct{})}
	h := runHub(t, log, streams.HubOptions{Buffer: 8, PageSize: 4, Logger: slog.New(slog.DiscardHandler)})
	<-h.Started()
	old := appendN(t, log, 6) // the reader reads A = old[0:4] and waits at the gate with it
	for uint64(time.Now().UnixMilli()) <= old[len(old)-1].MS {
		time.Sleep(time.Millisecond) // the new log's ids pass the old ones
	}
	swap.set(quickRing(100), false) // the store restarts empty

	sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.After(old[5])) // B
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	got := drainUntilQuiet(t, sub) // the resync, then live at 0
	if len(got) != 1 {
		t.Fatalf("got %d events, want the resync", len(got))
	}
	wantResync(t, got[0], streams.ReasonUnknown)
	close(log.gate) // the reader dispatches A
	fresh := appendN(t, log, 1)
	for _, e := range append(got, drainUntilQuiet(t, sub)...)[1:] {
		if e.Control {
			continue
		}
		if e.ID != fresh[0] {
			t.Errorf("after the resync into the new log: %v %s, an event of the lost log", e.ID, e.Type)
		}
	}
}
