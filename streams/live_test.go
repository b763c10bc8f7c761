package streams

import (
	"runtime"
	"testing"

	"github.com/eventgate/eventgate/event"
)

// One producer and one consumer at full speed: the consumer sees every event pushed, once, in
// order; a push that does not fit stops there and reports full (the subscription then reads the
// log). Run with -race: a slot read before its write is published, or written before the
// consumer released it, is a race.
func TestLiveBufferProducerConsumer(t *testing.T) {
	t.Parallel()
	const total = 100_000
	all := &event.Filter{}
	for _, size := range []int{1, 3, 16, 64} {
		b := newLiveBuffer(size)
		got := make(chan []uint64)
		done := make(chan struct{})
		go func() { // the consumer
			var seen []uint64
			for {
				h, t := b.span()
				for ; h != t; h++ {
					seen = append(seen, b.take(h).ID.Seq)
				}
				b.release(h)
				select {
				case <-done:
					if b.empty() {
						got <- seen
						return
					}
				default:
				}
				runtime.Gosched()
			}
		}()
		fulls := 0
		batch := make([]*event.Event, 0, 8)
		for seq := uint64(1); seq <= total; {
			batch = batch[:0]
			for i := 0; i < 1+int(seq%7) && seq <= total; i++ {
				batch = append(batch, &event.Event{ID: event.ID{MS: 1, Seq: seq}})
				seq++
			}
			for len(batch) > 0 {
				before := b.tail.Load()
				pushed, full := b.pushAll(batch, all)
				n := int(b.tail.Load() - before)
				if pushed != (n > 0) || full != (n < len(batch)) {
					t.Fatalf("size %d: pushed %d of %d, reported pushed=%v full=%v", size, n, len(batch), pushed, full)
				}
				batch = batch[n:]
				if full {
					fulls++
					runtime.Gosched()
				}
			}
		}
		close(done)
		seen := <-got
		if len(seen) != total {
			t.Fatalf("size %d: %d events seen, want %d", size, len(seen), total)
		}
		for i, seq := range seen {
			if seq != uint64(i+1) {
				t.Fatalf("size %d: event %d is seq %d, want %d", size, i, seq, i+1)
			}
		}
		for i, e := range b.slots {
			if e != nil {
				t.Fatalf("size %d: slot %d still holds event %v after it was taken", size, i, e.ID)
			}
		}
		t.Logf("size %d: full %d times", size, fulls)
	}
}

// Only events the filter matches take a slot.
func TestLiveBufferFilters(t *testing.T) {
	t.Parallel()
	f, err := event.NewFilter([]string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := newLiveBuffer(2)
	evs := []*event.Event{
		{ID: event.ID{MS: 1}, Topic: "b"}, {ID: event.ID{MS: 2}, Topic: "a"},
		{ID: event.ID{MS: 3}, Topic: "b"}, {ID: event.ID{MS: 4}, Topic: "a"}, {ID: event.ID{MS: 5}, Topic: "b"},
	}
	if pushed, full := b.pushAll(evs, &f); !pushed || full {
		t.Fatalf("pushed=%v full=%v, want two matching events pushed without filling", pushed, full)
	}
	if pushed, full := b.pushAll(evs[1:2], &f); pushed || !full {
		t.Fatalf("third match: pushed=%v full=%v, want full", pushed, full)
	}
	h, tl := b.span()
	var ms []uint64
	for ; h != tl; h++ {
		ms = append(ms, b.take(h).ID.MS)
	}
	if b.release(h) || len(ms) != 2 || ms[0] != 2 || ms[1] != 4 {
		t.Fatalf("buffered %v, want [2 4]", ms)
	}
}

// An idle subscription's buffer holds no slots: they are made at the first event it buffers.
func TestLiveBufferSlotsMadeAtFirstPush(t *testing.T) {
	t.Parallel()
	f, err := event.NewFilter([]string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := newLiveBuffer(16)
	if b.pushAll([]*event.Event{{ID: event.ID{MS: 1}, Topic: "b"}}, &f); b.slots != nil {
		t.Fatal("slots made before any event was buffered")
	}
	if pushed, _ := b.pushAll([]*event.Event{{ID: event.ID{MS: 2}, Topic: "a"}}, &f); !pushed || len(b.slots) != 16 {
		t.Fatalf("pushed=%v with %d slots, want the event in one of 16", pushed, len(b.slots))
	}
}
