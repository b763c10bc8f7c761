package streams

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/eventgate/eventgate/event"
)

// Subscription is one subscriber's view of the log: history after its position, then live events,
// in log order, each at most once. The hub pushes live events into a bounded buffer without ever
// blocking; when the buffer is full the subscription continues from the log at its own pace and
// sends resync only if the log has moved past it.
//
// Ownership: one goroutine at a time (the connection's writer) calls Ready, Next, Position and
// Change; Filter and Close may be called from any goroutine.
type Subscription struct {
	hub    *Hub
	filter atomic.Pointer[event.Filter]
	live   liveBuffer    // matching live events, in log order; written only by the hub's dispatch
	ready  chan struct{} // capacity 1: "Next has something to do"; nil when wake is set
	wake   func()        // called instead of a send on ready (see SubscribeOptions.Wake)
	// overflow is set by dispatch when live was full: every later event is left to the log.
	overflow atomic.Bool
	close    sync.Once

	// Owned by the draining goroutine.
	pos         event.ID // last position delivered or skipped
	catchup     bool     // reading from the log rather than the live buffer
	fromOldest  bool     // started at "0": a trimmed ring is expected, not a resync
	resyncedFor event.ID // the MaxDeleted a resync was sent for: one resync per deletion
	// jumpedAt: a resync moved pos into a log the hub's reader may not have reached yet (it can
	// still hold a page of the lost one): the subscription goes live only once the reader has
	// finished a read begun after the jump (Hub.reads at the jump; 0: none pending).
	jumpedAt uint64
	// segStart is where the current filter took effect: every event in (segStart, pos] it matches
	// was delivered (or is covered by done).
	segStart event.ID
	// done remembers, per earlier filter, the stretches whose matching events were delivered, so a
	// replay after a Change never delivers one again (see Change). At most maxDone entries; replays
	// never reach below floor, the end of the oldest stretch forgotten.
	done   []exclusion
	doneHi event.ID // the largest hi in done: later events need no check
	floor  event.ID
}

// maxDone bounds the filter history of one subscription (one entry per Change).
const maxDone = 128

// exclusion: in (lo, hi], events matching filter were delivered already, or belong to topics
// the client had before a Change and did not ask to replay.
type exclusion struct {
	filter *event.Filter
	lo, hi event.ID
}

func (x exclusion) covers(e *event.Event) bool {
	return x.lo.Less(e.ID) && !x.hi.Less(e.ID) && x.filter.Match(e)
}

func newSubscription(h *Hub, f event.Filter, buffer int, wake func()) *Subscription {
	s := &Subscription{hub: h, live: newLiveBuffer(buffer), wake: wake}
	if wake == nil {
		s.ready = make(chan struct{}, 1)
	}
	s.filter.Store(&f)
	return s
}

// offer pushes matching events into the live buffer; called by dispatch with the hub locked.
func (s *Subscription) offer(events []*event.Event) {
	if s.overflow.Load() {
		return
	}
	pushed, full := s.live.pushAll(events, s.filter.Load())
	if full {
		s.overflow.Store(true)
	}
	if pushed || full {
		s.signal()
	}
}

func (s *Subscription) signal() {
	if s.wake != nil {
		s.wake()
		return
	}
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Ready returns a channel that receives when Next has events (or work) for the subscriber. Select
// on it beside the connection's other cases; after it fires, call Next. It is nil (never ready)
// for a subscription made with SubscribeOptions.Wake.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Position returns the position up to which the subscriber has everything its filter matches:
// delivered by Next, or skipped as not matching. Drainer goroutine only.
func (s *Subscription) Position() event.ID {
	s.syncLive()
	return s.pos
}

// syncLive moves a live subscription's position past the events its filter skipped: with the
// buffer drained and nothing dropped, every matching event up to the hub's last dispatch was
// delivered. Under the hub's lock, so no dispatch slips in between the check and the move.
func (s *Subscription) syncLive() {
	if s.catchup {
		return
	}
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if s.live.empty() && !s.overflow.Load() && s.pos.Less(s.hub.last) {
		s.pos = s.hub.last
	}
}

// Filter returns the current filter.
func (s *Subscription) Filter() event.Filter { return *s.filter.Load() }

// Change replaces the filter, for WebSocket subscribe/unsubscribe actions. Events that the old
// filter skipped and the new one matches are read from the log, so nothing is missed across the
// change. With since before the current position, the log is replayed from since first, in log
// order, delivering only what no earlier filter of this subscription delivered (the added topics'
// history), so nothing is repeated within the subscription — also across unsubscribe and
// resubscribe, and when changes arrive while an earlier replay is still running. A replay reaches
// back no further than the oldest of the last maxDone changes. Drainer goroutine only.
func (s *Subscription) Change(f event.Filter, since *event.ID) {
	s.syncLive()
	old := s.filter.Load()
	lo := s.segStart
	if since != nil && since.Less(lo) {
		lo = *since // the old filter's topics are not replayed: the client had them
	}
	s.remember(exclusion{filter: old, lo: lo, hi: s.pos})
	s.filter.Store(&f)
	if since != nil && since.Less(s.pos) {
		s.pos = *since
		if s.pos.Less(s.floor) {
			s.pos = s.floor
		}
		s.fromOldest = s.pos.IsZero()
		s.resyncedFor = event.ID{} // a replay into a trimmed stretch is told again
	}
	s.segStart = s.pos
	s.catchup = true
	s.signal()
}

// remember records that x's events were delivered, forgetting the oldest record past maxDone.
func (s *Subscription) remember(x exclusion) {
	if !x.lo.Less(x.hi) {
		return
	}
	if len(s.done) == maxDone {
		if s.floor.Less(s.done[0].hi) {
			s.floor = s.done[0].hi
		}
		s.done = append(s.done[:0], s.done[1:]...)
		if s.pos.Less(s.floor) {
			// A replay still below what is forgotten would deliver it again: it skips ahead.
			s.pos = s.floor
		}
	}
	s.done = append(s.done, x)
	if s.doneHi.Less(x.hi) {
		s.doneHi = x.hi
	}
}

// Next appends to dst the events ready for delivery now, in log order, and returns it. It never
// waits for live events; it reads at most one page from the log per call and signals Ready again
// when more work remains. A returned error (a store error while catching up) leaves the
// subscription intact: call Next again later.
func (s *Subscription) Next(ctx context.Context, dst []*event.Event) ([]*event.Event, error) {
	if s.catchup {
		return s.readLog(ctx, dst)
	}
	f := s.filter.Load()
	h, t := s.live.span()
	for ; h != t; h++ {
		e := s.live.take(h)
		if s.pos.Less(e.ID) {
			s.pos = e.ID
			// A replay after a Change can end, and go live, below what was delivered before it:
			// the window ends where the hub's reader is, and the subscription may have read the
			// log ahead of it. Events up to doneHi are then checked against the earlier filters.
			if f.Match(e) && !s.repeats(e) {
				dst = append(dst, e)
			}
		}
	}
	if s.live.release(h) {
		return dst, nil // more came meanwhile, and the hub signalled as it buffered them
	}
	// The buffer is empty. Anything dropped came after what it held: read it from the log.
	if s.overflow.Load() {
		s.catchup = true
		s.hub.opts.Observer.CatchUp()
		s.signal()
	}
	return dst, nil
}

// readLog reads one page after pos. Before the read it re-arms the live buffer, so every event the
// read misses (appended later) is buffered or flags overflow again: no gap at the seam, and
// duplicates are dropped by position.
func (s *Subscription) readLog(ctx context.Context, dst []*event.Event) ([]*event.Event, error) {
	s.live.discard()
	s.overflow.Store(false)
	n := len(dst)
	if dst, next, end, ok := s.hub.window.read(s.pos, s.hub.opts.PageSize, dst); ok {
		// The window holds every event after pos up to next, read from the log after any loss,
		// reset or trim it knows of: nothing to vouch for, only to filter.
		return s.deliverPage(dst, n, next, end), nil
	}
	page, err := s.hub.log.Read(ctx, s.pos, s.hub.opts.PageSize)
	if err != nil {
		s.overflow.Store(true) // whatever is buffered now may follow a gap: re-read it later
		return dst, err
	}
	b := page.Bounds
	if lo, lost := s.hub.lostAt(s.pos); lost {
		// pos lies in a stretch the log lost when it was reset, however far the new log has
		// moved on since: say so, and continue from where the new log began.
		dst = append(dst, s.hub.resync(ctx, s.Filter(), ReasonUnknown, s.pos, b.First, lo))
		s.pos = lo
		s.signal()
		return dst, nil
	}
	switch {
	case !b.Holds(s.pos):
		// The log never held pos (it was reset or lost), or it restarted empty and was appended
		// to since: continue from its end, or from just before its first entry.
		at := b.First.Prev()
		if b.Last.Less(s.pos) {
			at = b.Last
		}
		dst = append(dst, s.hub.resync(ctx, s.Filter(), ReasonUnknown, s.pos, b.First, at))
		s.pos = at
		s.jumpedAt = s.hub.reads.Load()
		s.signal()
		return dst, nil
	case s.pos.Less(b.MaxDeleted) && !s.fromOldest && s.resyncedFor.Less(b.MaxDeleted):
		// Continue just before the oldest event held: after MaxDeleted when trimming removed the
		// oldest events; from here when an entry was deleted among those still held (never
		// backwards, and once per deletion).
		at := b.MaxDeleted
		if !b.First.IsZero() && !at.Less(b.First) {
			at = b.First.Prev()
		}
		if at.Less(s.pos) {
			at = s.pos
		}
		s.resyncedFor = b.MaxDeleted
		dst = append(dst, s.hub.resync(ctx, s.Filter(), ReasonTruncated, s.pos, b.First, at))
		s.pos = at
	}
	n = len(dst)
	dst = append(dst, page.Events...)
	return s.deliverPage(dst, n, page.Next, page.Next.Compare(s.pos) <= 0), nil
}

// deliverPage keeps, of the events read into dst[n:], those the subscription is to deliver, and
// moves its position to next. done: caught up, continue with the live buffer.
func (s *Subscription) deliverPage(dst []*event.Event, n int, next event.ID, done bool) []*event.Event {
	s.fromOldest = false
	f := s.filter.Load()
	keep := dst[:n]
	for _, e := range dst[n:] {
		if !s.pos.Less(e.ID) || !f.Match(e) {
			continue
		}
		if s.repeats(e) {
			continue
		}
		keep = append(keep, e)
	}
	clear(dst[len(keep):]) // no references kept past the page
	if s.pos.Less(next) {
		s.pos = next
	}
	if done && s.jumpedAt != 0 {
		if !s.hub.readSince(s, s.jumpedAt) {
			return keep // caught up, but not live yet: the hub wakes it after the reader's next read
		}
		s.jumpedAt = 0
	}
	if done {
		s.catchup = false
	}
	s.signal()
	return keep
}

// repeats reports whether an earlier filter of this subscription delivered e already; past
// doneHi (almost every event) it costs one comparison.
func (s *Subscription) repeats(e *event.Event) bool {
	return !s.doneHi.Less(e.ID) && s.delivered(e)
}

// delivered reports whether an earlier filter of this subscription delivered e already.
func (s *Subscription) delivered(e *event.Event) bool {
	for _, x := range s.done {
		if x.covers(e) {
			return true
		}
	}
	return false
}

// Close unregisters the subscription. It is idempotent and safe from any goroutine.
func (s *Subscription) Close() {
	s.close.Do(func() { s.hub.remove(s) })
}
