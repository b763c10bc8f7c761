package streams

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/internal/backoff"
)

// HubOptions tune a Hub. Zero values select the defaults.
type HubOptions struct {
	// Buffer is the number of live events a subscription holds before it falls back to reading
	// the log at its own pace (default 64).
	Buffer int
	// PageSize is how many events one log read returns, for the reader and for catch-up (default 256).
	PageSize int
	// Interval is the least time between two dispatches while events keep coming (default 0:
	// none). The first event after a pause is dispatched at once; under load the reader waits
	// out the rest of the interval and dispatches what the log gathered meanwhile as one batch,
	// so every subscriber is woken, and writes, once per batch rather than once per event. A full
	// page is followed by the next read at once: a backlog is not held to a page per interval.
	Interval time.Duration
	// Window is how many of the last dispatched events the hub keeps in memory, so that
	// subscriptions catching up within them (a burst larger than their buffer, a client resuming
	// from a recent position) read there rather than the log (default 4096; negative: none).
	Window int
	// WindowBytes bounds the window's memory (default 16 MiB).
	WindowBytes int
	// Logger receives reader errors (default slog.Default()).
	Logger *slog.Logger
	// Observer receives counters for metrics (default: none).
	Observer Observer
	// Resync, when set, supplies extra fields for the resync control event built for one
	// subscriber with filter f (already bounded by its token's grant): whoever owns state folded
	// from the log hands it to a client that must refresh, and the hub need not know what it is.
	// It is called from the subscriber's Next, never with the hub locked, and may block on a
	// store for as long as ctx allows; a nil or empty map adds nothing.
	Resync func(ctx context.Context, f event.Filter) map[string]json.RawMessage
}

// Observer receives the hub's events for metrics. Implementations must be safe for concurrent use
// and fast: the dispatch methods are called on the fan-out path.
type Observer interface {
	// Dispatched is called once per batch read from the log, with the batch.
	Dispatched(events []*event.Event)
	// CatchUp is called when a subscription starts reading the log because its buffer filled.
	CatchUp()
	// Resync is called when a subscription gets a resync control event, with the reason.
	Resync(reason string)
	// ReaderError is called when the log reader fails (it retries with backoff).
	ReaderError(err error)
}

type nopObserver struct{}

func (nopObserver) Dispatched([]*event.Event) {}
func (nopObserver) CatchUp()                  {}
func (nopObserver) Resync(string)             {}
func (nopObserver) ReaderError(error)         {}

// Hub is the one subscription core of a process: a single reader tails the log and fans each
// event out to every matching subscription. SSE, WebSocket and webhook delivery only drain
// subscriptions. Hub methods are safe for concurrent use. Events reach each subscription in log
// order; the dispatch of one batch holds the hub's lock, so registering a live subscription is
// atomic with respect to the reader's position.
type Hub struct {
	log  Log
	opts HubOptions

	started chan struct{} // closed once last holds the log's end at start-up
	window  *window       // the last dispatched events; nil (which reads as empty) when HubOptions.Window < 0

	// reads counts the reader's reads begun, readsDone the last one finished (dispatched, or found
	// empty); waiting are the subscriptions to wake when a read finishes (see readSince).
	reads     atomic.Uint64
	readsDone atomic.Uint64

	mu      sync.Mutex
	subs    map[*Subscription]struct{}
	waiting map[*Subscription]struct{} // guarded by mu
	last    event.ID                   // position of the last dispatched batch; guarded by mu
	lost    []lostRange                // stretches lost in log resets and failovers, newest last; guarded by mu
}

// NewHub returns a hub over log. Call Run to start its reader.
func NewHub(log Log, opts HubOptions) *Hub {
	if opts.Buffer <= 0 {
		opts.Buffer = 64
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 256
	}
	if opts.Window == 0 {
		opts.Window = 4096
	}
	if opts.WindowBytes <= 0 {
		opts.WindowBytes = 16 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	h := &Hub{log: log, opts: opts, started: make(chan struct{}), subs: make(map[*Subscription]struct{})}
	if opts.Window > 0 {
		h.window = newWindow(opts.Window, opts.WindowBytes)
	}
	return h
}

// Run is the process's single log reader. It finds the log's end, then tails it and dispatches
// until ctx ends. Store errors are logged and retried with backoff from the last position, so
// nothing is lost or repeated when the store comes back. Run returns ctx's error.
func (h *Hub) Run(ctx context.Context) error {
	fails := 0 // consecutive reader failures, for the back-off
	for {
		b, err := h.log.Bounds(ctx)
		if err == nil {
			h.mu.Lock()
			h.last = b.Last
			h.mu.Unlock()
			h.window.reset(b.Last, event.ID{})
			close(h.started)
			break
		}
		if !h.retry(ctx, &fails, err) {
			return ctx.Err()
		}
	}
	fails = 0
	var pause *time.Timer    // waits out the rest of Interval
	var dispatched time.Time // when the last batch went out
	for {
		if d := h.opts.Interval - time.Since(dispatched); h.opts.Interval > 0 && d > 0 {
			if pause == nil {
				pause = time.NewTimer(d)
			} else {
				pause.Reset(d)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-pause.C:
			}
		}
		h.mu.Lock()
		after := h.last
		h.mu.Unlock()
		read := h.reads.Add(1)
		page, err := h.log.Tail(ctx, after, h.opts.PageSize)
		if err != nil {
			if !h.retry(ctx, &fails, err) {
				return ctx.Err()
			}
			continue
		}
		fails = 0
		if page.Next == after {
			// Idle: check the log did not go back in time (a Redis restart without persistence).
			// If it did, start over from its end and let every subscriber resync.
			if b, err := h.log.Bounds(ctx); err == nil && b.Last.Less(after) {
				h.reset(b.Last)
			}
			h.readDone(read)
			continue
		}
		lost := !page.Bounds.Holds(after) || after.Less(page.Bounds.MaxDeleted)
		if page.Gone || lost {
			// The page does not continue what the window holds: empty it before anyone is woken
			// to re-read, so that nobody catches up across the loss from memory.
			h.window.reset(page.Next, event.ID{})
		}
		if page.Gone {
			// The reader's own position, which it read, is no longer in the log: a failover lost
			// it and what followed it up to the page's first entry. Whoever resumes inside that
			// stretch gets a resync (lostAt); live subscribers here have it all already.
			h.vanished(page.Before, after, page.Events)
		}
		if lost {
			// What followed after is gone: the log restarted empty and was appended to before
			// the idle check below saw it empty, or the ring was trimmed past the reader (it
			// lagged, or one batch outgrew the ring). Every subscriber re-reads the log, which
			// cannot vouch for its position either, and gets a resync.
			h.lose(after, page.Bounds)
		} else if !page.Gone {
			h.window.add(page.Events, page.Next, page.Bounds.MaxDeleted) // before the offers: see window
		}
		h.dispatch(page.Events, page.Next, read)
		switch {
		case len(page.Events) >= h.opts.PageSize:
			// A full page: more is likely waiting, and the batch is as large as a read makes it.
			// Read on at once, or the reader would dispatch at most a page per interval and fall
			// behind a log appended to faster than that, until the ring trims past it.
			dispatched = time.Time{}
		case len(page.Events) > 0:
			dispatched = time.Now()
		}
	}
}

// readDone records that the reader finished read n and wakes the subscriptions waiting for it.
func (h *Hub) readDone(n uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.readDoneLocked(n)
}

// readDoneLocked is readDone with the hub locked (by dispatch, which holds the lock already).
func (h *Hub) readDoneLocked(n uint64) {
	h.readsDone.Store(n)
	for s := range h.waiting {
		delete(h.waiting, s)
		s.signal()
	}
}

// readSince reports whether the reader has finished a read begun after read n; if not, s is
// woken when it does. Drainer goroutine of s only.
func (h *Hub) readSince(s *Subscription, n uint64) bool {
	if h.readsDone.Load() > n {
		return true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.readsDone.Load() > n { // finished meanwhile: readDone may have looked already
		return true
	}
	if h.waiting == nil {
		h.waiting = make(map[*Subscription]struct{})
	}
	h.waiting[s] = struct{}{}
	return false
}

// retry logs err and waits out the back-off after *fails earlier failures (backoff.Store: 100ms
// doubling to 5s), counting this one; false when ctx ended.
func (h *Hub) retry(ctx context.Context, fails *int, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	h.opts.Observer.ReaderError(err)
	d := backoff.Store.Delay(*fails)
	*fails++
	h.opts.Logger.Warn("log reader failed; retrying", "err", err, "retry_in", d)
	return backoff.Wait(ctx, d)
}

// dispatch pushes a batch to every subscription whose filter matches, without blocking: a
// subscription whose buffer is full is marked to catch up from the log instead.
func (h *Hub) dispatch(events []*event.Event, next event.ID, read uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.offer(events)
	}
	h.last = next
	h.readDoneLocked(read) // in the same hold of the lock: one lock per batch
	h.opts.Observer.Dispatched(events)
}

// resync builds a resync control event for one subscriber and counts it, with the extra fields
// HubOptions.Resync supplies for the subscriber's filter.
func (h *Hub) resync(ctx context.Context, f event.Filter, reason string, requested, oldest, at event.ID) *event.Event {
	h.opts.Observer.Resync(reason)
	var extra map[string]json.RawMessage
	if h.opts.Resync != nil {
		extra = h.opts.Resync(ctx, f)
	}
	return NewResync(reason, requested, oldest, at, extra)
}

// maxLostRanges bounds the memory of log resets; older ones are forgotten.
const maxLostRanges = 8

// lostRange is a stretch (lo, hi] of positions the log lost in a reset.
type lostRange struct{ lo, hi event.ID }

// lostAt reports whether pos lies in a stretch the log lost, and where the new log began.
func (h *Hub) lostAt(pos event.ID) (event.ID, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.lost {
		if r.lo.Less(pos) && !r.hi.Less(pos) {
			return r.lo, true
		}
	}
	return event.ID{}, false
}

// reset handles a log that went back in time: the reader continues from last, and every
// subscription re-reads the log, where its position is unknown: it gets a resync.
func (h *Hub) reset(last event.ID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.Logger.Warn("the log was reset or lost; subscribers will resync", "was", h.last.String(), "now", last.String())
	h.lost = append(h.lost, lostRange{lo: last, hi: h.last})
	if len(h.lost) > maxLostRanges {
		h.lost = h.lost[1:]
	}
	h.window.reset(last, h.last) // before anyone is woken to re-read
	h.last = last
	for s := range h.subs {
		s.overflow.Store(true)
		s.signal()
	}
}

// vanished records the stretch (before, …] that the log lost around the reader's position after:
// up to just before the first of events (the new log's), or after itself when there is none.
func (h *Hub) vanished(before, after event.ID, events []*event.Event) {
	hi := after
	if len(events) > 0 && after.Less(events[0].ID.Prev()) {
		hi = events[0].ID.Prev()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.Logger.Warn("the log lost the reader's position (a failover?); subscribers resuming in the lost stretch will resync",
		"position", after.String(), "lost_after", before.String(), "lost_to", hi.String())
	h.lost = append(h.lost, lostRange{lo: before, hi: hi})
	if len(h.lost) > maxLostRanges {
		h.lost = h.lost[1:]
	}
}

// lose handles a log that no longer holds what followed after although it moved past it: every subscription
// re-reads the log, where its position is unknown, and gets a resync.
func (h *Hub) lose(after event.ID, b Bounds) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opts.Logger.Warn("the log no longer holds what followed the reader's position; subscribers will resync",
		"was", after.String(), "first", b.First.String(), "last", b.Last.String())
	for s := range h.subs {
		s.overflow.Store(true)
		s.signal()
	}
}

// Subscribe registers a subscription with filter f starting at start. A resume position is
// replayed from the log first and then continues live, with no gap and no duplicate at the seam.
// Subscribe waits until the reader has started (or ctx ends). The caller owns the subscription,
// drains it from one goroutine, and must Close it.
func (h *Hub) Subscribe(ctx context.Context, f event.Filter, start Start) (*Subscription, error) {
	return h.SubscribeWith(ctx, f, start, SubscribeOptions{})
}

// SubscribeOptions adjust one subscription. Zero values select the hub's defaults.
type SubscribeOptions struct {
	// Wake, when set, replaces the Ready channel, for a subscriber that keeps no goroutine waiting
	// on Ready: the subscription calls Wake whenever Next may have something to do. Wake is called
	// from any goroutine — the hub's dispatch, with the hub locked, or the caller of Next and
	// Change — possibly many times for one batch, so it must be quick, must not block and must
	// not call into the hub or the subscription; it typically starts the connection's writer
	// unless it runs already. This lets an idle WebSocket connection hold no writer goroutine.
	Wake func()
	// Buffer is the number of live events the subscription holds before it falls back to reading
	// the log (default HubOptions.Buffer). A small buffer keeps idle connections small; a burst
	// larger than it is read from the log instead.
	Buffer int
}

// SubscribeWith is Subscribe with per-subscription options.
func (h *Hub) SubscribeWith(ctx context.Context, f event.Filter, start Start, opts SubscribeOptions) (*Subscription, error) {
	select {
	case <-h.started:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if opts.Buffer <= 0 {
		opts.Buffer = h.opts.Buffer
	}
	s := newSubscription(h, f, opts.Buffer, opts.Wake)
	h.mu.Lock()
	if start.Live {
		s.pos = h.last
		s.segStart = h.last
	} else {
		s.pos = start.After
		s.segStart = start.After
		s.fromOldest = start.After.IsZero()
		s.catchup = true
		s.signal()
	}
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s, nil
}

// Started returns a channel closed once the reader knows the log's end and subscriptions can begin.
func (h *Hub) Started() <-chan struct{} { return h.started }

// Len returns the number of open subscriptions.
func (h *Hub) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

func (h *Hub) remove(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	delete(h.waiting, s)
	h.mu.Unlock()
}
