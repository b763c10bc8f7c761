package streams

import (
	"context"
	"sync"
	"sync/atomic"
)

// Subscription is one subscriber's view of the log: history after its position, then live events,
// in log order, each at most once. The hub pushes live events into a bounded buffer without ever
// blocking; when the buffer is full the subscription continues from the log at its own pace and
// sends resync only if the log has moved past it.
//
// Ownership: one goroutine (the connection's writer) calls Ready/Next; SetFilter and Close may be
// called from any goroutine.
type Subscription struct {
	hub    *Hub
	filter atomic.Pointer[Filter]
	live   chan *Event   // matching live events, in log order; written only by the hub's dispatch
	ready  chan struct{} // capacity 1: "Next has something to do"
	// overflow is set by dispatch when live was full: every later event is left to the log.
	overflow atomic.Bool
	close    sync.Once

	// Owned by the draining goroutine.
	pos        ID   // last position delivered or skipped
	catchup    bool // reading from the log rather than the live buffer
	fromOldest bool // started at "0": a trimmed ring is expected, not a resync
	// While replaying for a Change with since: events up to replayUntil are delivered only if the
	// filter before the change (replayOld) did not match them, since those were delivered already.
	replayOld   *Filter
	replayUntil ID
	origin      ID // where the subscription started: nothing before it was delivered
}

func newSubscription(h *Hub, f Filter, buffer int) *Subscription {
	s := &Subscription{hub: h, live: make(chan *Event, buffer), ready: make(chan struct{}, 1)}
	s.filter.Store(&f)
	return s
}

// offer pushes matching events into the live buffer; called by dispatch with the hub locked.
func (s *Subscription) offer(events []*Event) {
	if s.overflow.Load() {
		return
	}
	f := s.filter.Load()
	pushed := false
	for _, e := range events {
		if !f.Match(e) {
			continue
		}
		select {
		case s.live <- e:
			pushed = true
		default:
			s.overflow.Store(true)
			s.signal()
			return
		}
	}
	if pushed {
		s.signal()
	}
}

func (s *Subscription) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready returns a channel that receives when Next has events (or work) for the subscriber. Select
// on it beside the connection's other cases; after it fires, call Next.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Position returns the last position delivered or skipped by Next. Drainer goroutine only.
func (s *Subscription) Position() ID { return s.pos }

// Filter returns the current filter.
func (s *Subscription) Filter() Filter { return *s.filter.Load() }

// SetFilter replaces the filter for events not yet delivered. Events already buffered were
// matched against the old filter and are re-checked by Next.
func (s *Subscription) SetFilter(f Filter) { s.filter.Store(&f) }

// Change replaces the filter, for WebSocket subscribe/unsubscribe actions. Events that the old
// filter skipped and the new one matches are read from the log, so nothing is missed across the
// change. With since, events after since that only the new filter matches are replayed first (in
// log order, before live delivery resumes); events the old filter matched are not repeated.
// Drainer goroutine only.
func (s *Subscription) Change(f Filter, since *ID) {
	old := s.filter.Load()
	s.filter.Store(&f)
	if since != nil && since.Less(s.pos) {
		if s.replayOld == nil {
			s.replayOld, s.replayUntil = old, s.pos
		}
		s.pos = *since
		s.fromOldest = since.IsZero()
	}
	s.catchup = true
	s.signal()
}

// Next appends to dst the events ready for delivery now, in log order, and returns it. It never
// waits for live events; it reads at most one page from the log per call and signals Ready again
// when more work remains. A returned error (a store error while catching up) leaves the
// subscription intact: call Next again later.
func (s *Subscription) Next(ctx context.Context, dst []*Event) ([]*Event, error) {
	if s.catchup {
		return s.readLog(ctx, dst)
	}
	f := s.filter.Load()
	for range cap(s.live) {
		select {
		case e := <-s.live:
			if s.pos.Less(e.ID) {
				s.pos = e.ID
				if f.Match(e) {
					dst = append(dst, e)
				}
			}
			continue
		default:
		}
		// The buffer is empty. Anything dropped came after what it held: read it from the log.
		if s.overflow.Load() {
			s.catchup = true
			s.hub.opts.Observer.CatchUp()
			s.signal()
		}
		return dst, nil
	}
	s.signal() // buffer had more than one pass's worth
	return dst, nil
}

// readLog reads one page after pos. Before the read it re-arms the live buffer, so every event the
// read misses (appended later) is buffered or flags overflow again: no gap at the seam, and
// duplicates are dropped by position.
func (s *Subscription) readLog(ctx context.Context, dst []*Event) ([]*Event, error) {
	for len(s.live) > 0 {
		<-s.live
	}
	s.overflow.Store(false)
	page, err := s.hub.log.Read(ctx, s.pos, s.hub.opts.PageSize)
	if err != nil {
		s.overflow.Store(true) // whatever is buffered now may follow a gap: re-read it later
		return dst, err
	}
	b := page.Bounds
	switch {
	case b.Last.Less(s.pos):
		// The log never reached pos: it was reset or lost. Continue from its end.
		dst = append(dst, s.hub.resync(ctx, ReasonUnknown, s.pos, b.First, b.Last))
		s.pos = b.Last
		s.signal()
		return dst, nil
	case s.pos.Less(b.MaxDeleted) && !s.fromOldest:
		dst = append(dst, s.hub.resync(ctx, ReasonTruncated, s.pos, b.First, b.MaxDeleted))
		s.pos = b.MaxDeleted
	}
	s.fromOldest = false
	f := s.filter.Load()
	for _, e := range page.Events {
		if !s.pos.Less(e.ID) || !f.Match(e) {
			continue
		}
		if s.replayOld != nil && s.origin.Less(e.ID) && !s.replayUntil.Less(e.ID) && s.replayOld.Match(e) {
			continue // delivered before the change
		}
		dst = append(dst, e)
	}
	if s.replayOld != nil && !page.Next.Less(s.replayUntil) {
		s.replayOld = nil
	}
	if page.Next.Compare(s.pos) <= 0 {
		// Caught up with the log: continue with the live buffer.
		s.catchup = false
	} else {
		s.pos = page.Next
	}
	s.signal()
	return dst, nil
}

// Close unregisters the subscription. It is idempotent and safe from any goroutine.
func (s *Subscription) Close() {
	s.close.Do(func() { s.hub.remove(s) })
}
