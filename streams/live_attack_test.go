package streams

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/eventgate/eventgate/event"
)

// trackedEvents makes n events, each its own allocation, and weak pointers to them: a weak
// pointer that still resolves after a collection means something keeps the event.
func trackedEvents(first uint64, n int) ([]*event.Event, []weak.Pointer[event.Event]) {
	evs := make([]*event.Event, n)
	ws := make([]weak.Pointer[event.Event], n)
	for i := range evs {
		evs[i] = &event.Event{ID: event.ID{MS: first + uint64(i)}, Topic: "a", JSON: make([]byte, 64)}
		ws[i] = weak.Make(evs[i])
	}
	return evs, ws
}

// retained collects and returns how many of ws still resolve. A weak pointer is cleared once its
// object is unreachable and a cycle has run; two cycles leave finalizer-free objects no way out.
func retained(ws []weak.Pointer[event.Event]) int {
	runtime.GC()
	runtime.GC()
	n := 0
	for _, w := range ws {
		if w.Value() != nil {
			n++
		}
	}
	return n
}

// TestLiveBufferKeepsNoTakenEventAttack: the ring keeps no reference to an event once the
// consumer has taken it (Next) or thrown it away (discard, before a catch-up read), whatever the
// ring's size and wherever its indices have wrapped to: a subscription that once received a
// burst of large events must not pin them until the ring's slots happen to be overwritten — an
// idle connection would hold up to Buffer events of up to MaxEventBytes each.
//
// Fails when take leaves the slot set (`*p = nil` removed from liveBuffer.take): the taken events
// stay reachable through b.slots.
func TestLiveBufferKeepsNoTakenEventAttack(t *testing.T) {
	t.Parallel()
	all := &event.Filter{}
	tests := []struct {
		name  string
		size  int
		skew  int // events pushed and taken before, so the indices have wrapped
		push  int // pushed in one batch (at most size fit)
		take  int // taken one by one, the rest discarded
		check string
	}{
		{"one slot, taken", 1, 0, 1, 1, "take"},
		{"one slot, discarded", 1, 5, 3, 0, "discard"},
		{"wrapped, half taken", 5, 7, 5, 2, "both"},
		{"wrapped, overflowing batch", 16, 13, 40, 9, "both"},
		{"wrapped, all taken", 3, 2, 3, 3, "take"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newLiveBuffer(tt.size)
			for i := range tt.skew { // move head and tail round the ring
				e := &event.Event{ID: event.ID{MS: uint64(i + 1)}}
				b.pushAll([]*event.Event{e}, all)
				h, _ := b.span()
				b.take(h)
				b.release(h + 1)
			}
			evs, ws := trackedEvents(1000, tt.push)
			pushed, full := b.pushAll(evs, all)
			if !pushed || full != (tt.push > tt.size) {
				t.Fatalf("pushAll: pushed=%v full=%v", pushed, full)
			}
			clear(evs) // the dispatch's batch goes away; only the ring may still refer to its events
			evs = nil
			h, tl := b.span()
			if int(tl-h) != min(tt.push, tt.size) {
				t.Fatalf("span holds %d, want %d", tl-h, min(tt.push, tt.size))
			}
			var taken []*event.Event
			for range tt.take {
				taken = append(taken, b.take(h))
				h++
			}
			b.release(h)
			for i, e := range taken {
				if e.ID.MS != 1000+uint64(i) {
					t.Fatalf("took %v at %d, want ms %d", e.ID, i, 1000+i)
				}
			}
			taken = nil // delivered: the connection lets them go
			b.discard()
			if !b.empty() {
				t.Fatal("not empty after discard")
			}
			if n := retained(ws); n != 0 {
				t.Fatalf("%d of %d events still reachable after they were taken or discarded", n, len(ws))
			}
			runtime.KeepAlive(&b)
		})
	}
}

// TestSubscriptionNextKeepsNoEventAttack: through the subscription's own paths — offer by the
// dispatch, Next by the drainer — nothing but what Next returned refers to the events, batch
// after batch (no window: the hub's own memory is out of the picture here).
//
// Fails on the same break as above (take leaving its slot set).
func TestSubscriptionNextKeepsNoEventAttack(t *testing.T) {
	t.Parallel()
	for _, buffer := range []int{1, 4, 7} {
		t.Run(fmt.Sprint("buffer ", buffer), func(t *testing.T) {
			t.Parallel()
			h := &Hub{}
			s := newSubscription(h, event.Filter{}, buffer, func() {})
			var ws []weak.Pointer[event.Event]
			next := uint64(1)
			var dst []*event.Event
			for round := range 10 {
				n := 1 + round%buffer
				evs, w := trackedEvents(next, n)
				next += uint64(n)
				ws = append(ws, w...)
				s.offer(evs)
				clear(evs)
				var err error
				dst, err = s.Next(t.Context(), dst[:0])
				if err != nil || len(dst) != n {
					t.Fatalf("round %d: Next gave %d events (%v), want %d", round, len(dst), err, n)
				}
				clear(dst) // the connection writes them and lets them go
			}
			if n := retained(ws); n != 0 {
				t.Fatalf("buffer %d: %d of %d delivered events still reachable", buffer, n, len(ws))
			}
			runtime.KeepAlive(s)
		})
	}
}

// TestLiveBufferSlotReuseAcrossReleaseAttack: the producer may reuse a slot only once the
// consumer released it. A consumer that takes part of a span, releases only that part, and comes
// back, while the producer fills every slot it is given, sees each event once and in order —
// checked over many wraps with ring sizes that do not divide 2^64 evenly into batches.
//
// Fails when pushAll computes its limit from the tail rather than the released head
// (`limit := t + uint64(len(b.slots))`): events overwrite unreleased ones and arrive out of order
// or twice.
func TestLiveBufferSlotReuseAcrossReleaseAttack(t *testing.T) {
	t.Parallel()
	all := &event.Filter{}
	for _, size := range []int{2, 5, 7} {
		b := newLiveBuffer(size)
		const total = 20000
		got := make(chan error, 1)
		go func() {
			want := uint64(1)
			deadline := time.Now().Add(20 * time.Second)
			for want <= total {
				h, tl := b.span()
				// Take at most two per pass and release only those: the rest stay claimed.
				for k := 0; h != tl && k < 2; k++ {
					e := b.take(h)
					if e == nil || e.ID.Seq != want {
						got <- fmt.Errorf("size %d: slot %d gave %v, want seq %d", size, h, e, want)
						return
					}
					want++
					h++
				}
				b.release(h)
				if time.Now().After(deadline) {
					got <- fmt.Errorf("size %d: stuck at seq %d", size, want)
					return
				}
				runtime.Gosched()
			}
			got <- nil
		}()
		for seq := uint64(1); seq <= total; {
			batch := make([]*event.Event, 0, 9)
			for i := 0; i < 9 && seq+uint64(i) <= total; i++ {
				batch = append(batch, &event.Event{ID: event.ID{MS: 1, Seq: seq + uint64(i)}})
			}
			before := b.tail.Load()
			b.pushAll(batch, all)
			seq += b.tail.Load() - before
			runtime.Gosched()
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
	}
}
