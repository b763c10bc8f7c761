package streams

import (
	"context"
	"errors"

	"github.com/eventgate/eventgate/event"
)

// ErrUnavailable is wrapped by store errors when the backing store cannot be reached. Callers map
// it to 503; the hub's reader retries with backoff.
var ErrUnavailable = errors.New("store unavailable")

// Bounds describe what the log holds, read atomically with a page so the hub can decide whether it
// can vouch for a position.
type Bounds struct {
	// First is the oldest retained event's ID (zero when empty).
	First event.ID
	// Last is the last ID ever generated (zero for a new log). A position after Last means the log
	// was reset or lost.
	Last event.ID
	// MaxDeleted is the largest ID trimmed from the ring (zero when nothing was trimmed). Trimming
	// only removes the oldest events, so a position before MaxDeleted has lost events.
	MaxDeleted event.ID
	// Trimmed reports whether the log ever removed an entry (trimming or deletion). While it has
	// not, First is the first entry the log ever held, so a non-zero position before First comes
	// from another log: one that was reset or lost and has since been appended to. Event IDs are
	// time-based, so without this a new log's entries would look like the continuation of the old.
	Trimmed bool
}

// Holds reports whether the log can vouch for pos: every event after pos that the log ever held
// is still held or was trimmed (which MaxDeleted reports). It cannot when pos is past Last (the log
// was reset or lost) or, in a log that never removed an entry, before First (a new log that was
// appended to since). The zero position, "from the oldest", is always held, and so is the position
// just before First, where a resync continues from.
func (b Bounds) Holds(pos event.ID) bool {
	switch {
	case pos.IsZero():
		return true
	case b.Last.Less(pos):
		return false
	}
	return b.Trimmed || !pos.Less(b.First.Prev())
}

// Page is a slice of the log after some position.
type Page struct {
	// Events are valid events in log order.
	Events []*event.Event
	// Next is the last position examined: resume reading after it. It may be past the last event
	// when invalid producer entries were skipped.
	Next event.ID
	// Bounds were read in the same atomic step as Events.
	Bounds Bounds
	// Gone reports that the read's position, although within Bounds and never deleted, is not in
	// the log: the entry was lost, with whatever followed it up to the log's next entry, as when
	// a replica that had not received the last writes took over (asynchronous replication).
	// Before is then the last entry the log holds before the position, where the lost stretch
	// begins. A log that cannot tell leaves Gone false; the hub acts on it only for its own
	// reader's position, which it knows existed (a client may resume from any position).
	Gone   bool
	Before event.ID
}

// Log is the capped, durable event log. Implementations are safe for concurrent use.
type Log interface {
	// Append adds drafts atomically (all or none) and returns their IDs in input order.
	Append(ctx context.Context, drafts []event.Draft) ([]event.ID, error)
	// Read returns up to limit events with ID > after, in order, with the bounds at that moment.
	Read(ctx context.Context, after event.ID, limit int) (Page, error)
	// Bounds returns what the log holds now (zero Bounds for a log that never held an event).
	Bounds(ctx context.Context) (Bounds, error)
	// Tail waits until events after after exist, or a backend-specific poll interval passes, or
	// ctx ends, and returns them (up to limit) with the bounds read in the same atomic step, so the
	// reader can tell whether the log still holds after. An empty page with Next == after is a
	// timeout. Only one goroutine per process calls Tail (the hub's reader).
	Tail(ctx context.Context, after event.ID, limit int) (Page, error)
}
