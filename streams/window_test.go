package streams

import (
	"slices"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/event"
)

func windowEvent(ms uint64, dataLen int) *event.Event {
	data := []byte(`"` + strings.Repeat("x", dataLen) + `"`)
	return &event.Event{ID: event.ID{MS: ms}, Data: data, JSON: data}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	id := func(ms uint64) event.ID { return event.ID{MS: ms} }
	ids := func(es []*event.Event) (out []uint64) {
		for _, e := range es {
			out = append(out, e.ID.MS)
		}
		return out
	}
	tests := []struct {
		name     string
		events   int // capacity
		bytes    int
		add      []uint64 // events at these ms, then the window's end at the last
		next     uint64   // the batch's next (0: its last event)
		read     uint64
		limit    int
		want     []uint64
		wantNext uint64
		wantEnd  bool
		wantOK   bool
	}{
		{name: "within", events: 8, bytes: 1 << 20, add: []uint64{10, 11, 12, 13}, read: 11, limit: 10,
			want: []uint64{12, 13}, wantNext: 13, wantEnd: true, wantOK: true},
		{name: "at its start", events: 8, bytes: 1 << 20, add: []uint64{10, 11}, read: 5, limit: 10,
			want: []uint64{10, 11}, wantNext: 11, wantEnd: true, wantOK: true},
		{name: "limit", events: 8, bytes: 1 << 20, add: []uint64{10, 11, 12, 13}, read: 10, limit: 2,
			want: []uint64{11, 12}, wantNext: 12, wantOK: true},
		{name: "at its end", events: 8, bytes: 1 << 20, add: []uint64{10, 11}, read: 11, limit: 10,
			wantNext: 11, wantEnd: true, wantOK: true},
		{name: "next past the last event (skipped entries)", events: 8, bytes: 1 << 20, add: []uint64{10, 11}, next: 15,
			read: 11, limit: 10, wantNext: 15, wantEnd: true, wantOK: true},
		{name: "at next", events: 8, bytes: 1 << 20, add: []uint64{10, 11}, next: 15,
			read: 15, limit: 10, wantNext: 15, wantEnd: true, wantOK: true},
		{name: "a position it never saw", events: 8, bytes: 1 << 20, add: []uint64{10, 12}, read: 11, limit: 10},
		{name: "a position it never saw before its first", events: 8, bytes: 1 << 20, add: []uint64{10, 12}, read: 7, limit: 10},
		{name: "past its end", events: 8, bytes: 1 << 20, add: []uint64{10, 11}, read: 12, limit: 10},
		{name: "zero asks the log", events: 8, bytes: 1 << 20, add: []uint64{10, 11}, read: 0, limit: 10},
		{name: "evicted by count", events: 2, bytes: 1 << 20, add: []uint64{10, 11, 12, 13}, read: 10, limit: 10},
		{name: "at the last evicted", events: 2, bytes: 1 << 20, add: []uint64{10, 11, 12, 13}, read: 11, limit: 10,
			want: []uint64{12, 13}, wantNext: 13, wantEnd: true, wantOK: true},
		{name: "evicted by size", events: 8, bytes: 2*size(windowEvent(0, 100)) + 1, add: []uint64{10, 11, 12}, read: 9, limit: 10},
		{name: "kept by size", events: 8, bytes: 2*size(windowEvent(0, 100)) + 1, add: []uint64{10, 11, 12}, read: 10, limit: 10,
			want: []uint64{11, 12}, wantNext: 12, wantEnd: true, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWindow(tt.events, tt.bytes)
			w.reset(id(5), event.ID{})
			var batch []*event.Event
			for _, ms := range tt.add {
				batch = append(batch, windowEvent(ms, 100))
			}
			next := id(tt.add[len(tt.add)-1])
			if tt.next != 0 {
				next = id(tt.next)
			}
			w.add(batch, next, event.ID{})
			got, gotNext, end, ok := w.read(id(tt.read), tt.limit, nil)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if g := ids(got); !slices.Equal(g, tt.want) {
				t.Errorf("events %v, want %v", g, tt.want)
			}
			if gotNext != id(tt.wantNext) || end != tt.wantEnd {
				t.Errorf("next %v end %v, want %v %v", gotNext, end, id(tt.wantNext), tt.wantEnd)
			}
		})
	}
}

// A window reset after a loss holds nothing before the reset point, and an event larger than the
// whole window leaves it holding nothing up to that event.
func TestWindowResetAndOversize(t *testing.T) {
	t.Parallel()
	w := newWindow(8, 2*size(windowEvent(0, 100)))
	w.reset(event.ID{MS: 5}, event.ID{})
	w.add([]*event.Event{windowEvent(10, 100), windowEvent(11, 100)}, event.ID{MS: 11}, event.ID{})
	w.reset(event.ID{MS: 20}, event.ID{})
	for _, pos := range []uint64{5, 10, 11} {
		if _, _, _, ok := w.read(event.ID{MS: pos}, 10, nil); ok {
			t.Errorf("read after %d served from a reset window", pos)
		}
	}
	w.add([]*event.Event{windowEvent(21, 100), windowEvent(22, 1000), windowEvent(23, 100)}, event.ID{MS: 23}, event.ID{})
	if _, _, _, ok := w.read(event.ID{MS: 21}, 10, nil); ok {
		t.Error("read across an event too large for the window served from memory")
	}
	got, next, end, ok := w.read(event.ID{MS: 22}, 10, nil)
	if !ok || len(got) != 1 || got[0].ID.MS != 23 || next.MS != 23 || !end {
		t.Errorf("after the large event: %v %v %v %v", got, next, end, ok)
	}
}

// After the log went back in time (from 30 to 20), positions in (20, 30] are left to the log,
// also once the new log's events, which may have ids in that stretch, fill the window.
func TestWindowLeavesLostStretchToLog(t *testing.T) {
	t.Parallel()
	w := newWindow(8, 1<<20)
	w.reset(event.ID{MS: 20}, event.ID{MS: 30})
	w.add([]*event.Event{windowEvent(25, 10), windowEvent(31, 10)}, event.ID{MS: 31}, event.ID{})
	for _, tc := range []struct {
		pos uint64
		ok  bool
	}{{20, true}, {25, false}, {31, true}} {
		if _, _, _, ok := w.read(event.ID{MS: tc.pos}, 10, nil); ok != tc.ok {
			t.Errorf("read after %d: ok %v, want %v", tc.pos, ok, tc.ok)
		}
	}
}

// A position before the log's trimmed bound is left to the log, whatever the window holds.
func TestWindowLeavesTrimmedToLog(t *testing.T) {
	t.Parallel()
	w := newWindow(8, 1<<20)
	w.reset(event.ID{MS: 5}, event.ID{})
	w.add([]*event.Event{windowEvent(10, 10), windowEvent(11, 10), windowEvent(12, 10)}, event.ID{MS: 12}, event.ID{MS: 11})
	for _, tc := range []struct {
		pos uint64
		ok  bool
	}{{10, false}, {11, true}, {12, true}} {
		if _, _, _, ok := w.read(event.ID{MS: tc.pos}, 10, nil); ok != tc.ok {
			t.Errorf("read after %d with the log trimmed to 11: ok %v, want %v", tc.pos, ok, tc.ok)
		}
	}
}
