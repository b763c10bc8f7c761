package jobs

import (
	"context"

	"github.com/eventgate/eventgate/event"
)

// Store keeps folded job and queue state, shared by every instance when in Redis. Updates are
// compare-and-set on the last event id, so instances folding the same log concurrently never
// move a state backwards. Implementations (package store) are safe for concurrent use.
type Store interface {
	// Job returns a job's state; ok is false when unknown (or expired).
	Job(ctx context.Context, jobID string) (st State, ok bool, err error)
	// SwapJob stores next if the stored state's LastEventID is still prev ("" for none); swapped
	// is false when another writer got there first (re-read and fold again).
	SwapJob(ctx context.Context, prev string, next State) (swapped bool, err error)
	// Queue returns the latest queue state; ok is false when none was seen.
	Queue(ctx context.Context) (st QueueState, ok bool, err error)
	// SwapQueue is SwapJob for the queue state.
	SwapQueue(ctx context.Context, prev string, next QueueState) (swapped bool, err error)
	// Cursor returns the position up to which the log has been folded (zero when never).
	Cursor(ctx context.Context) (event.ID, error)
	// SetCursor records the folded position.
	SetCursor(ctx context.Context, id event.ID) error
}
