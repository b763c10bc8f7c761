package streams_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// hubAt polls until a live subscriber would join at a position ok accepts: the hub reader's
// position.
func hubAt(t *testing.T, h *streams.Hub, what string, ok func(event.ID) bool) {
	t.Helper()
	ctx := t.Context()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		probe, err := h.Subscribe(ctx, event.Filter{}, streams.Live)
		if err != nil {
			t.Fatal(err)
		}
		joined := probe.Position()
		probe.Close()
		if ok(joined) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the hub is at %v", what, joined)
		}
	}
}

// restartedEmpty returns a new ring already holding one event appended after every id in old
// (ids are time-based): a store that lost its log and was appended to before anyone looked.
func restartedEmpty(t *testing.T, old []event.ID) (*store.Memory, event.ID) {
	t.Helper()
	last := old[len(old)-1]
	for uint64(time.Now().UnixMilli()) <= last.MS {
		time.Sleep(time.Millisecond) // the next millisecond: the new log's first id passes the old ones
	}
	ring := quickRing(100)
	ids := appendN(t, ring, 1)
	return ring, ids[0]
}

func wantResync(t *testing.T, e *event.Event, reason string) {
	t.Helper()
	if e.Type != streams.TypeResync || !strings.Contains(string(e.JSON), reason) {
		t.Fatalf("got %s %s, want a %s resync", e.Type, e.JSON, reason)
	}
}

// TestRestartedEmptyLogResyncsResume: the log lost A's successors and was appended to (C) before
// the hub's idle check could see it empty. A subscriber resuming after A must get a resync, not C
// alone: C's id is larger than A's, but the new log cannot vouch for what followed A. With the
// hub's window, B (which the hub read from the old log) comes first from memory, then the resync
// once the reader finds the log lost; without it, the log's own bounds give the resync at once.
func TestRestartedEmptyLogResyncsResume(t *testing.T) {
	t.Parallel()
	for _, window := range []int{0, -1} {
		t.Run(fmt.Sprint("window=", window), func(t *testing.T) {
			t.Parallel()
			log := &swappableLog{log: quickRing(100)}
			h := runHub(t, log, streams.HubOptions{Buffer: 8, Window: window})
			<-h.Started()
			ids := appendN(t, log, 2) // A, B
			hubAt(t, h, "dispatched B", func(id event.ID) bool { return id == ids[1] })
			ring, c := restartedEmpty(t, ids)
			log.set(ring, false)

			sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.After(ids[0]))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if window == 0 {
				wantIDs(t, collect(t, sub, 1), ids[1:])
			}
			got := collect(t, sub, 2)
			wantResync(t, got[0], streams.ReasonUnknown)
			wantIDs(t, got[1:], []event.ID{c})
		})
	}
}

// TestRestartedEmptyLogResyncsLive: a live subscriber whose hub reader had not read the last
// acknowledged events when the log was lost gets a resync before the new log's events, even
// though the reader never saw the log empty.
func TestRestartedEmptyLogResyncsLive(t *testing.T) {
	t.Parallel()
	log := &swappableLog{log: quickRing(100)}
	h := runHub(t, log, streams.HubOptions{Buffer: 8})
	sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.Live)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ids := appendN(t, log, 2)
	wantIDs(t, collect(t, sub, 2), ids)

	ring, c := restartedEmpty(t, ids) // B's successors, if any, are gone
	log.set(ring, false)
	got := collect(t, sub, 2)
	wantResync(t, got[0], streams.ReasonUnknown)
	wantIDs(t, got[1:], []event.ID{c})
	more := appendN(t, log, 2)
	wantIDs(t, collect(t, sub, 2), more)
}

// TestHoldsBounds is the rule that decides whether a log can vouch for a position.
func TestHoldsBounds(t *testing.T) {
	t.Parallel()
	id := func(ms uint64) event.ID { return event.ID{MS: ms} }
	for _, tt := range []struct {
		name string
		b    streams.Bounds
		pos  event.ID
		want bool
	}{
		{"zero position, empty log", streams.Bounds{}, event.ID{}, true},
		{"zero position, any log", streams.Bounds{First: id(5), Last: id(9)}, event.ID{}, true},
		{"past the end", streams.Bounds{First: id(5), Last: id(9)}, id(10), false},
		{"empty new log", streams.Bounds{}, id(3), false},
		{"at the end", streams.Bounds{First: id(5), Last: id(9)}, id(9), true},
		{"at the first", streams.Bounds{First: id(5), Last: id(9)}, id(5), true},
		{"just before the first (where a resync continues)", streams.Bounds{First: id(5), Last: id(9)}, id(5).Prev(), true},
		{"before the first, never trimmed", streams.Bounds{First: id(5), Last: id(9)}, id(4), false},
		{"before the first, trimmed", streams.Bounds{First: id(5), Last: id(9), MaxDeleted: id(4), Trimmed: true}, id(3), true},
	} {
		if got := tt.b.Holds(tt.pos); got != tt.want {
			t.Errorf("%s: %+v.Holds(%v) = %v, want %v", tt.name, tt.b, tt.pos, got, tt.want)
		}
	}
}

// TestHubLagBehindTrimResyncs: a batch larger than the ring reaches the hub's reader already trimmed past its position: live
// subscribers must get a resync (or every event), never a silent gap.
func TestHubLagBehindTrimResyncs(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 4, 64) // with the window: it must not serve across the loss
	sub, err := h.Subscribe(t.Context(), event.Filter{}, streams.Live)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ds := make([]event.Draft, 10)
	for i := range ds {
		ds[i] = progress(t, i)
	}
	ids := appendDrafts(t, log, ds...)
	got := drainUntilQuiet(t, sub)
	if len(got) == 0 || (got[0].Type != streams.TypeResync && got[0].ID != ids[0]) {
		t.Fatalf("silent gap: first delivered %v %s, want resync or %v (%d events)", got[0].ID, got[0].Type, ids[0], len(got))
	}
}
