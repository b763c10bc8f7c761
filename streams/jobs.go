package streams

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Job statuses (SPEC §5).
const (
	JobQueued    = "queued"
	JobRunning   = "running"
	JobCompleted = "completed"
	JobFailed    = "failed"
)

// JobState is a job's current state folded from the log. It is a value: folding returns a new one.
type JobState struct {
	JobID       string    `json:"job_id"`
	JobType     string    `json:"job_type"`
	Status      string    `json:"status"`
	Percent     int       `json:"percent"`
	Message     string    `json:"message"`
	Error       string    `json:"error"`
	UpdatedAt   time.Time `json:"updated_at"`
	LastEventID string    `json:"last_event_id"`
}

// QueueState is the latest queue.status.
type QueueState struct {
	Pending     int64     `json:"pending"`
	Active      int64     `json:"active"`
	UpdatedAt   time.Time `json:"updated_at"`
	LastEventID string    `json:"last_event_id"`
}

// rank orders statuses so that a fold never moves a job backwards.
func rank(status string) int {
	switch status {
	case JobQueued:
		return 1
	case JobRunning:
		return 2
	case JobCompleted, JobFailed:
		return 3
	}
	return 0
}

type jobData struct {
	JobID   string `json:"job_id"`
	JobType string `json:"job_type"`
	Percent int    `json:"percent"`
	Message string `json:"message"`
	Error   string `json:"error"`
}

// FoldJob applies a job event to st and reports whether the state changed. The fold is
// idempotent and order-safe: an event at or before st's last event is ignored, and a job never
// moves backwards (queued → running → completed/failed; percent never decreases while running;
// a finished job stays finished).
func FoldJob(st JobState, e *Event) (JobState, bool) {
	if !strings.HasPrefix(e.Type, "job.") {
		return st, false
	}
	if st.LastEventID != "" {
		if last, err := ParseID(st.LastEventID); err == nil && !last.Less(e.ID) {
			return st, false
		}
	}
	var d jobData
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return st, false
	}
	next := st
	next.JobID = d.JobID
	if d.JobType != "" {
		next.JobType = d.JobType
	}
	status := map[string]string{
		TypeJobQueued: JobQueued, TypeJobStarted: JobRunning, TypeJobProgress: JobRunning,
		TypeJobCompleted: JobCompleted, TypeJobFailed: JobFailed,
	}[e.Type]
	switch {
	case rank(status) > rank(st.Status):
		next.Status = status
	case rank(status) < rank(st.Status) || rank(st.Status) == 3:
		// An older stage, or anything after the end: remember we saw it, change nothing else.
		next.LastEventID = e.ID.String()
		return next, next != st
	}
	switch e.Type {
	case TypeJobProgress:
		next.Percent = max(next.Percent, d.Percent)
		next.Message = d.Message
	case TypeJobCompleted:
		next.Percent = 100
	case TypeJobFailed:
		next.Error = d.Error
	}
	next.UpdatedAt = e.Time()
	next.LastEventID = e.ID.String()
	return next, true
}

// FoldQueue applies a queue.status event; the newest event wins.
func FoldQueue(st QueueState, e *Event) (QueueState, bool) {
	if e.Type != TypeQueueStatus {
		return st, false
	}
	if st.LastEventID != "" {
		if last, err := ParseID(st.LastEventID); err == nil && !last.Less(e.ID) {
			return st, false
		}
	}
	var d struct{ Pending, Active int64 }
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return st, false
	}
	return QueueState{Pending: d.Pending, Active: d.Active, UpdatedAt: e.Time(), LastEventID: e.ID.String()}, true
}

// JobStore keeps folded job and queue state, shared by every instance when in Redis. Updates are
// compare-and-set on the last event id, so instances folding the same log concurrently never
// move a state backwards. Implementations are safe for concurrent use.
type JobStore interface {
	// Job returns a job's state; ok is false when unknown (or expired).
	Job(ctx context.Context, jobID string) (st JobState, ok bool, err error)
	// SwapJob stores next if the stored state's LastEventID is still prev ("" for none); swapped
	// is false when another writer got there first (re-read and fold again).
	SwapJob(ctx context.Context, prev string, next JobState) (swapped bool, err error)
	// Queue returns the latest queue state; ok is false when none was seen.
	Queue(ctx context.Context) (st QueueState, ok bool, err error)
	// SwapQueue is SwapJob for the queue state.
	SwapQueue(ctx context.Context, prev string, next QueueState) (swapped bool, err error)
	// Cursor returns the position up to which the log has been folded (zero when never).
	Cursor(ctx context.Context) (ID, error)
	// SetCursor records the folded position.
	SetCursor(ctx context.Context, id ID) error
}

// Projector folds the log's job and queue events into a JobStore. It drains a hub subscription
// from the store's cursor, so events published while the process was down — and events written
// by producers' direct XADD — are folded too, and state outlives the ring's retention.
type Projector struct {
	hub   *Hub
	store JobStore
}

// NewProjector returns a projector; call Run.
func NewProjector(h *Hub, s JobStore) *Projector { return &Projector{hub: h, store: s} }

// Run folds until ctx ends. Store errors are retried from the last folded position.
func (p *Projector) Run(ctx context.Context) error {
	f, _ := NewFilter([]string{"jobs/*", "queue"}, nil)
	b := newBackoff()
	for {
		err := p.run(ctx, f)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.hub.opts.Logger.Warn("job state projector failed; retrying", "err", err)
		t := time.NewTimer(b.next())
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func (p *Projector) run(ctx context.Context, f Filter) error {
	cursor, err := p.store.Cursor(ctx)
	if err != nil {
		return err
	}
	start := After(cursor)
	if cursor.IsZero() {
		start = After(ID{}) // fold everything still in the log
	}
	sub, err := p.hub.Subscribe(ctx, f, start)
	if err != nil {
		return err
	}
	defer sub.Close()
	buf := make([]*Event, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Ready():
		}
		buf, err = sub.Next(ctx, buf[:0])
		if err != nil {
			return err
		}
		for _, e := range buf {
			if e.Control {
				continue // resync: fold what is still there
			}
			if err := p.apply(ctx, e); err != nil {
				return fmt.Errorf("folding %s: %w", e.ID, err)
			}
		}
		if len(buf) > 0 {
			if err := p.store.SetCursor(ctx, sub.Position()); err != nil {
				return err
			}
		}
	}
}

func (p *Projector) apply(ctx context.Context, e *Event) error {
	for range 16 { // compare-and-set retries when another instance folds concurrently
		var swapped bool
		if e.Type == TypeQueueStatus {
			st, _, err := p.store.Queue(ctx)
			if err != nil {
				return err
			}
			next, changed := FoldQueue(st, e)
			if !changed {
				return nil
			}
			if swapped, err = p.store.SwapQueue(ctx, st.LastEventID, next); err != nil {
				return err
			}
		} else {
			var d jobData
			_ = json.Unmarshal(e.Data, &d)
			st, _, err := p.store.Job(ctx, d.JobID)
			if err != nil {
				return err
			}
			next, changed := FoldJob(st, e)
			if !changed {
				return nil
			}
			if swapped, err = p.store.SwapJob(ctx, st.LastEventID, next); err != nil {
				return err
			}
		}
		if swapped {
			return nil
		}
	}
	return fmt.Errorf("job state kept changing under event %s", e.ID)
}
