package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// TestResubscribeDoesNotRepeat: within one subscription an event is delivered at most once, also
// when the client unsubscribes from a topic and subscribes to it again asking for its history.
func TestResubscribeDoesNotRepeat(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 100, 8)
	queue := func() event.Draft { return draft(t, "queue.status", `{"pending":1,"active":0}`) }
	e := appendDrafts(t, log, queue(), note(t))
	sub, err := h.Subscribe(t.Context(), filter(t, "queue"), streams.After(event.ID{}))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	wantIDs(t, collect(t, sub, 1), e[:1])

	zero := event.ID{}
	sub.Change(event.Filter{Nothing: true}, nil) // unsubscribe queue
	sub.Change(filter(t, "queue"), &zero)        // subscribe queue, since 0: E was delivered
	sub.Change(event.Filter{Nothing: true}, nil) // and once more, around a note subscription
	sub.Change(filter(t, "notes/*"), nil)
	sub.Change(filter(t, "notes/*", "queue"), &zero) // the note's history is new; E is not
	later := appendDrafts(t, log, queue())
	got := drainUntilQuiet(t, sub)
	wantIDs(t, got, []event.ID{e[1], later[0]})
}

// TestManyChangesStayBounded: a client changing its filter without end (more changes than the
// subscription remembers) never gets an event twice, and never misses one of a topic it kept.
func TestManyChangesStayBounded(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 1000, 8)
	sub, err := h.Subscribe(t.Context(), filter(t, "queue"), streams.Live)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	zero := event.ID{}
	var queued []event.ID
	var got []*event.Event
	for i := range 300 {
		ids := appendDrafts(t, log, draft(t, "queue.status", `{"pending":1,"active":0}`), note(t))
		queued = append(queued, ids[0])
		if i%2 == 0 {
			sub.Change(filter(t, "queue", "notes/*"), &zero)
		} else {
			sub.Change(filter(t, "queue"), nil)
		}
		if i%50 == 0 { // drain now and then, so replays and changes interleave
			got, _ = sub.Next(t.Context(), got)
		}
	}
	got = append(got, drainUntilQuiet(t, sub)...)
	seen := map[event.ID]bool{}
	var gotQueue []event.ID
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %v delivered twice", e.ID)
		}
		seen[e.ID] = true
		if e.Topic == "queue" {
			gotQueue = append(gotQueue, e.ID)
		}
	}
	if len(gotQueue) != len(queued) {
		t.Fatalf("%d queue events delivered, want all %d", len(gotQueue), len(queued))
	}
}

// TestForgottenChangesNeverRepeat: more than maxDone changes while a since-replay runs forget the record of what was delivered:
// events delivered before the replay must not be delivered again.
func TestForgottenChangesNeverRepeat(t *testing.T) {
	t.Parallel()
	log := store.NewMemory(1000)
	log.SetPoll(50 * time.Millisecond)
	h := streams.NewHub(log, streams.HubOptions{Buffer: 8, PageSize: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = h.Run(ctx) }()
	q := func() event.Draft { return draft(t, "queue.status", `{"pending":1,"active":0}`) }
	for range 200 {
		appendDrafts(t, log, q())
	}
	sub, _ := h.Subscribe(ctx, filter(t, "queue"), streams.After(event.ID{}))
	defer sub.Close()
	got := collect(t, sub, 200) // all 200 delivered
	zero := event.ID{}
	sub.Change(filter(t, "queue", "notes/*"), &zero) // notes' history; queue was delivered
	for range 130 {
		got, _ = sub.Next(ctx, got)
		sub.Change(filter(t, "queue", "notes/*"), nil)
	}
	got = append(got, drainUntilQuiet(t, sub)...)
	seen := map[event.ID]bool{}
	for _, e := range got {
		if seen[e.ID] {
			t.Fatalf("event %v delivered twice (%d delivered)", e.ID, len(got))
		}
		seen[e.ID] = true
	}
}

// TestSecondReplayIntoTrimmedStretchResyncs: a second since-replay into a trimmed stretch is told
// of the gap again, as the first was.
func TestSecondReplayIntoTrimmedStretchResyncs(t *testing.T) {
	t.Parallel()
	h, log := startHubTrimmed(t, 4, 8)
	q := func() event.Draft { return draft(t, "queue.status", `{"pending":1,"active":0}`) }
	ids := appendDrafts(t, log, note(t), note(t), note(t), note(t), note(t), note(t), note(t), q(), q(), note(t))
	hubAt(t, h, "caught up", func(id event.ID) bool { return id == ids[9] })
	sub, _ := h.Subscribe(t.Context(), filter(t, "queue"), streams.Live)
	defer sub.Close()
	sub.Change(filter(t, "queue", "jobs/*"), &ids[0])
	if got := drainUntilQuiet(t, sub); len(got) == 0 || got[0].Type != streams.TypeResync {
		t.Fatalf("first replay: want a resync first, got %d events", len(got))
	}
	sub.Change(filter(t, "queue", "jobs/*", "notes/*"), &ids[0]) // notes after ids[0] were trimmed
	got := drainUntilQuiet(t, sub)
	for _, e := range got {
		t.Logf("%v %s", e.ID, e.Type)
	}
	if len(got) == 0 || got[0].Type != streams.TypeResync {
		t.Fatalf("notes e1..e5 skipped silently: want a resync first")
	}
}
