package streams

import (
	"context"
	"errors"
)

// ErrUnavailable is wrapped by store errors when the backing store cannot be reached. Callers map
// it to 503; the hub's reader retries with backoff.
var ErrUnavailable = errors.New("store unavailable")

// Bounds describe what the log holds, read atomically with a page so the hub can decide whether it
// can vouch for a position.
type Bounds struct {
	// First is the oldest retained event's ID (zero when empty).
	First ID
	// Last is the last ID ever generated (zero for a new log). A position after Last means the log
	// was reset or lost.
	Last ID
	// MaxDeleted is the largest ID trimmed from the ring (zero when nothing was trimmed). Trimming
	// only removes the oldest events, so a position before MaxDeleted has lost events.
	MaxDeleted ID
}

// Page is a slice of the log after some position.
type Page struct {
	// Events are valid events in log order.
	Events []*Event
	// Next is the last position examined: resume reading after it. It may be past the last event
	// when invalid producer entries were skipped.
	Next ID
	// Bounds were read in the same atomic step as Events.
	Bounds Bounds
}

// Log is the capped, durable event log. Implementations are safe for concurrent use.
type Log interface {
	// Append adds drafts atomically (all or none) and returns their IDs in input order.
	Append(ctx context.Context, drafts []Draft) ([]ID, error)
	// Read returns up to limit events with ID > after, in order, with the bounds at that moment.
	Read(ctx context.Context, after ID, limit int) (Page, error)
	// Bounds returns what the log holds now (zero Bounds for a log that never held an event).
	Bounds(ctx context.Context) (Bounds, error)
	// Tail waits until events after after exist, or a backend-specific poll interval passes, or
	// ctx ends, and returns them (up to limit). An empty page with Next == after is a timeout.
	// Only one goroutine per process calls Tail (the hub's reader).
	Tail(ctx context.Context, after ID, limit int) (Page, error)
}
