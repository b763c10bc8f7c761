package store

import "github.com/eventgate/eventgate/event"

// eventRing holds the newest events in log order, at most its capacity.
type eventRing struct {
	buf      []*event.Event
	start, n int
}

// newEventRing returns an empty ring of capacity size (at least 1).
func newEventRing(size int) eventRing { return eventRing{buf: make([]*event.Event, max(size, 1))} }

// push appends e and returns the oldest event, evicted to make room when the ring is full (else
// nil).
func (r *eventRing) push(e *event.Event) (evicted *event.Event) {
	if r.n == len(r.buf) {
		evicted = r.buf[r.start]
		r.buf[r.start] = e
		r.start = (r.start + 1) % len(r.buf)
		return evicted
	}
	r.buf[(r.start+r.n)%len(r.buf)] = e
	r.n++
	return nil
}

// at returns the i-th oldest event held.
func (r *eventRing) at(i int) *event.Event { return r.buf[(r.start+i)%len(r.buf)] }

// dropBefore removes the events before first (trimmed from the log).
func (r *eventRing) dropBefore(first event.ID) {
	for r.n > 0 && r.at(0).ID.Less(first) {
		r.buf[r.start] = nil
		r.start = (r.start + 1) % len(r.buf)
		r.n--
	}
}
