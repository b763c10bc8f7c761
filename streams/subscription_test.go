package streams_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/streams"
)

func filter(t *testing.T, topics ...string) event.Filter {
	t.Helper()
	f, err := event.NewFilter(topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func appendDrafts(t *testing.T, log streams.Log, ds ...event.Draft) []event.ID {
	t.Helper()
	ids, err := log.Append(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func note(t *testing.T) event.Draft {
	return draft(t, "note.deleted", `{"note_id":"`+jobA+`"}`)
}

// drainUntilQuiet collects what sub delivers until nothing more arrives for a while.
func drainUntilQuiet(t *testing.T, sub *streams.Subscription) []*event.Event {
	t.Helper()
	var out []*event.Event
	for {
		select {
		case <-sub.Ready():
			var err error
			if out, err = sub.Next(context.Background(), out); err != nil {
				t.Fatal(err)
			}
		case <-time.After(300 * time.Millisecond): // quiet: nothing more is coming
			return out
		}
	}
}

// TestLivePositionPassesSkippedEvents: a narrow live subscription's position moves past the
// events its filter skipped, so a later filter change does not replay them as "missed".
func TestLivePositionPassesSkippedEvents(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 100, 8)
	sub, _ := h.Subscribe(context.Background(), filter(t, "notes/*"), streams.Live)
	defer sub.Close()
	appendN(t, log, 5) // not for this subscriber: must not be replayed by the change below
	marker := appendDrafts(t, log, note(t))
	wantIDs(t, collect(t, sub, 1), marker)
	if got := sub.Position(); got != marker[0] {
		t.Fatalf("position %v, want %v", got, marker[0])
	}
	sub.Change(filter(t, "notes/*", "jobs/*"), nil) // subscribe without since: no history
	later := appendN(t, log, 1)
	got := collect(t, sub, 1)
	wantIDs(t, got, later)
}

// TestReplayChangesDoNotRepeat: two subscribe-with-since changes while a replay is running
// deliver each event at most once.
func TestReplayChangesDoNotRepeat(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 1000, 256) // page size 32: the replay spans several pages
	sub, _ := h.Subscribe(context.Background(), filter(t, "queue"), streams.Live)
	defer sub.Close()
	for range 50 {
		appendDrafts(t, log, progress(t, 1), note(t), draft(t, "queue.status", `{"pending":1,"active":0}`))
	}
	if got := collect(t, sub, 50); got[49].Topic != "queue" { // the live queue events, delivered
		t.Fatalf("live: %v", got[49].Topic)
	}
	zero := event.ID{}
	sub.Change(filter(t, "queue", "jobs/*"), &zero)
	first, _ := sub.Next(context.Background(), nil) // one page of the first replay
	sub.Change(filter(t, "queue", "jobs/*", "notes/*"), &zero)
	got := append(first, drainUntilQuiet(t, sub)...)
	seen := map[event.ID]bool{}
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %v delivered twice", e.ID)
		}
		seen[e.ID] = true
		if e.Topic == "queue" {
			t.Fatalf("queue event %v replayed: the client had that topic already", e.ID)
		}
	}
	if len(got) != 100 { // every job and note event, once
		t.Fatalf("%d events, want 100 (50 jobs + 50 notes)", len(got))
	}
}

// holeLog reports an entry deleted in the middle of the log (an XDEL), as Redis would.
type holeLog struct{ *store.Memory }

func (l holeLog) Read(ctx context.Context, after event.ID, n int) (streams.Page, error) {
	p, err := l.Memory.Read(ctx, after, n)
	if len(p.Events) > 2 {
		p.Bounds.MaxDeleted = p.Events[2].ID.Next() // past the first events still held
	}
	return p, err
}

// TestResyncKeepsHeldEvents: when the log cannot vouch for a position, the subscriber gets resync
// and then every event still held, even if the deleted entry lies among them.
func TestResyncKeepsHeldEvents(t *testing.T) {
	t.Parallel()
	mem := store.NewMemory(100)
	mem.SetPoll(20 * time.Millisecond)
	h := streams.NewHub(holeLog{mem}, streams.HubOptions{Window: -1}) // the log's Read is under test
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()
	ids := appendN(t, mem, 6)
	sub, _ := h.Subscribe(ctx, event.Filter{}, streams.After(ids[0]))
	defer sub.Close()
	got := collect(t, sub, 6)
	if got[0].Type != streams.TypeResync {
		t.Fatalf("first %s, want resync", got[0].Type)
	}
	wantIDs(t, got[1:], ids[1:])
}

// TestResyncOnceForDeletedEntry: an entry deleted in the middle of a Redis log (XDEL) gives a
// subscriber reading across it one resync, and every held event once, in order.
func TestResyncOnceForDeletedEntry(t *testing.T) {
	t.Parallel()
	client, _, prefix := redistest.Client(t)
	log := store.NewRedis(client, nil, prefix+"events", 0, store.RedisOptions{Block: 50 * time.Millisecond})
	// No window: the hub read entry 150 before it was deleted and would serve it from memory.
	h := streams.NewHub(log, streams.HubOptions{Buffer: 8, PageSize: 32, Window: -1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()
	ids := appendN(t, log, 200)
	if err := client.XDel(ctx, prefix+"events", ids[150].String()).Err(); err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe(ctx, event.Filter{}, streams.After(ids[10]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	want := append(append([]event.ID{}, ids[11:150]...), ids[151:]...)
	got := collect(t, sub, len(want)+1)
	resyncs := 0
	var events []*event.Event
	for _, e := range got {
		if e.Control {
			resyncs++
			if e.ID.Less(ids[10]) {
				t.Fatalf("resync at %v, behind the subscriber's position %v", e.ID, ids[10])
			}
			continue
		}
		events = append(events, e)
	}
	if resyncs != 1 {
		t.Fatalf("%d resyncs, want 1", resyncs)
	}
	wantIDs(t, events, want)
}

// TestResetBehindSubscriberResyncs: a subscriber behind when the log is lost gets a resync even
// if the new log has moved past its position by the time it reads.
func TestResetBehindSubscriberResyncs(t *testing.T) {
	t.Parallel()
	log := &swappableLog{log: quickRing(100)}
	h := runHub(t, log, streams.HubOptions{Buffer: 8})
	ctx := t.Context()
	<-h.Started()
	ids := appendN(t, log, 5)
	sub, _ := h.Subscribe(ctx, event.Filter{}, streams.After(ids[1])) // not read yet
	defer sub.Close()

	hubAt(t, h, "dispatched", func(id event.ID) bool { return id == ids[4] })
	log.set(quickRing(100), false) // the store came back empty
	hubAt(t, h, "noticed the reset", func(id event.ID) bool { return id.Less(ids[0]) })
	later := appendN(t, log, 2) // producers carry on; the new log's ids pass the old ones
	got := collect(t, sub, 3)
	if !got[0].Control || !strings.Contains(string(got[0].JSON), streams.ReasonUnknown) {
		t.Fatalf("first %s %s, want a position_unknown resync (events %v..%v were lost)", got[0].Type, got[0].JSON, ids[2], ids[4])
	}
	wantIDs(t, got[1:], later)
}

// TestSubscribeWake: a subscriber with no goroutine waiting on Ready is woken for live events,
// for its replay and for catch-up after its buffer overflowed, and gets every event once, in order.
func TestSubscribeWake(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 10000, 64)
	before := appendN(t, log, 50)
	woken := make(chan struct{}, 1)
	wake := func() { // called under the hub's lock: must not block
		select {
		case woken <- struct{}{}:
		default:
		}
	}
	sub, err := h.SubscribeWith(context.Background(), event.Filter{}, streams.Start{After: before[9]},
		streams.SubscribeOptions{Wake: wake, Buffer: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if sub.Ready() != nil {
		t.Fatal("a wake subscription has a Ready channel")
	}
	want := append([]event.ID(nil), before[10:]...)
	want = append(want, appendN(t, log, 500)...) // overflows the 2-slot buffer while nobody reads
	var got []*event.Event
	deadline := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case <-woken:
			if got, err = sub.Next(context.Background(), got); err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("got %d of %d events", len(got), len(want))
		}
	}
	wantIDs(t, got, want)
}
