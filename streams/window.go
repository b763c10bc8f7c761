package streams

import (
	"sort"
	"sync"

	"github.com/eventgate/eventgate/event"
)

// window is the hub's memory of the events it dispatched last: every valid log event in
// (from, to], in log order. A subscription that fell behind its live buffer, or resumes from a
// recent position, reads there instead of the log, so a burst that overflows many subscribers
// costs one store read per process (the hub's), not one per subscriber.
//
// Only the hub's reader writes it, before it offers the same batch to the subscriptions: a
// subscription that re-arms its live buffer and then reads the window misses nothing (what was
// offered before the re-arm is in the window; what comes after is buffered). Reads are safe from
// any goroutine.
type window struct {
	mu       sync.RWMutex
	from, to event.ID
	// lostHi: positions in (from, lostHi] were lost when the log went back in time (Hub.reset);
	// the window leaves them to the log, whose answer is a resync.
	lostHi event.ID
	// trimmed is the log's MaxDeleted as its reader last saw it: a position before it is the
	// log's to answer (a history_truncated resync, docs/api.md), however much the window holds.
	trimmed  event.ID
	buf      []*event.Event // a ring: n events from head
	head, n  int
	bytes    int // the events' size, as counted by size
	maxBytes int
}

func newWindow(events, bytes int) *window {
	return &window{buf: make([]*event.Event, max(events, 1)), maxBytes: bytes}
}

// size is what an event counts against the window's byte bound.
func size(e *event.Event) int { return len(e.JSON) + len(e.Data) + 128 }

// reset empties the window, which then holds nothing up to at: after a loss or a reset of the
// log, nobody may read across it from memory. Positions in (at, lostHi] are never served: the log
// went back in time from lostHi to at.
func (w *window) reset(at, lostHi event.ID) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	clear(w.buf)
	w.head, w.n, w.bytes = 0, 0, 0
	w.from, w.to, w.lostHi = at, at, lostHi
}

// add appends a batch read after w.to, up to next (past its last event when the reader skipped
// invalid entries), with the log's MaxDeleted read with it, evicting the oldest events beyond the
// bounds.
func (w *window) add(events []*event.Event, next, trimmed event.ID) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.trimmed.Less(trimmed) {
		w.trimmed = trimmed
	}
	for _, e := range events {
		sz := size(e)
		for w.n > 0 && (w.n == len(w.buf) || w.bytes+sz > w.maxBytes) {
			w.evict()
		}
		if sz > w.maxBytes { // larger than the whole window: it holds nothing up to e
			w.from = e.ID
			continue
		}
		w.buf[(w.head+w.n)%len(w.buf)] = e
		w.n++
		w.bytes += sz
	}
	if w.to.Less(next) {
		w.to = next
	}
}

func (w *window) evict() {
	e := w.buf[w.head]
	w.buf[w.head] = nil
	w.head = (w.head + 1) % len(w.buf)
	w.n--
	w.bytes -= size(e)
	w.from = e.ID
}

func (w *window) at(i int) *event.Event { return w.buf[(w.head+i)%len(w.buf)] }

// read appends to dst up to limit events after pos, and returns it with the position read up to
// and whether that is the window's end. ok is false, read the log, unless pos is one the reader
// saw: an event the window holds, or its start or end.
func (w *window) read(pos event.ID, limit int, dst []*event.Event) (_ []*event.Event, next event.ID, end, ok bool) {
	if w == nil {
		return dst, pos, false, false
	}
	w.mu.RLock()
	defer w.mu.RUnlock()
	if pos.IsZero() || pos.Less(w.from) || pos.Less(w.trimmed) || w.to.Less(pos) || (w.from.Less(pos) && !w.lostHi.Less(pos)) {
		// Zero asks for the oldest event the log holds: the log's to say.
		return dst, pos, false, false
	}
	limit = max(limit, 1)
	i := sort.Search(w.n, func(i int) bool { return pos.Less(w.at(i).ID) })
	if pos != w.from && pos != w.to && (i == 0 || w.at(i-1).ID != pos) {
		// A position the reader never saw, such as one from a log that was lost before the
		// reader read it (the window's (from, to] says nothing about it): the log's to judge.
		return dst, pos, false, false
	}
	stop := min(w.n, i+limit)
	for j := i; j < stop; j++ {
		dst = append(dst, w.at(j))
	}
	if stop < w.n {
		return dst, w.at(stop - 1).ID, false, true // limit reached
	}
	return dst, w.to, true, true
}
