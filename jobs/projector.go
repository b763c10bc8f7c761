package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/internal/backoff"
	"github.com/eventgate/eventgate/streams"
)

// Projector folds the log's job and queue events into a Store. It drains a hub subscription
// from the store's cursor, so events published while the process was down — and events written
// by producers' direct XADD — are folded too, and state outlives the ring's retention. Run it
// from one goroutine; several instances may fold the same log into one shared store.
type Projector struct {
	hub    *streams.Hub
	store  Store
	logger *slog.Logger
}

// NewProjector returns a projector draining h into s that logs its retries to logger (nil:
// slog.Default()); call Run.
func NewProjector(h *streams.Hub, s Store, logger *slog.Logger) *Projector {
	if logger == nil {
		logger = slog.Default()
	}
	return &Projector{hub: h, store: s, logger: logger}
}

// Run folds until ctx ends. Store errors are retried from the last folded position, waiting
// 100ms and doubling up to 5s between attempts.
func (p *Projector) Run(ctx context.Context) error {
	f, _ := event.NewFilter([]string{"jobs/*", "queue"}, nil)
	for failures := 0; ; failures++ {
		err := p.run(ctx, f)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.logger.Warn("job state projector failed; retrying", "err", err)
		if !backoff.Wait(ctx, backoff.Store.Delay(failures)) {
			return ctx.Err()
		}
	}
}

func (p *Projector) run(ctx context.Context, f event.Filter) error {
	cursor, err := p.store.Cursor(ctx)
	if err != nil {
		return err
	}
	start := streams.After(cursor)
	if cursor.IsZero() {
		start = streams.After(event.ID{}) // fold everything still in the log
	}
	sub, err := p.hub.Subscribe(ctx, f, start)
	if err != nil {
		return err
	}
	defer sub.Close()
	buf := make([]*event.Event, 0, 256)
	var saved time.Time // when the cursor was last stored
	dirty := false      // folded past the stored cursor
	for {
		// The cursor is stored once the subscription has nothing more ready, and at least every
		// cursorEvery while it keeps busy: a write per page would cost a store round trip per
		// page, and a crash only refolds what followed the stored cursor (folds are idempotent).
		if dirty && (len(sub.Ready()) == 0 || time.Since(saved) >= cursorEvery) {
			if err := p.store.SetCursor(ctx, sub.Position()); err != nil {
				return err
			}
			saved, dirty = time.Now(), false
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sub.Ready():
		}
		buf, err = sub.Next(ctx, buf[:0])
		if err != nil {
			return err
		}
		if err := p.fold(ctx, buf); err != nil {
			return err
		}
		dirty = dirty || len(buf) > 0
	}
}

// cursorEvery is how often a busy projector stores its cursor.
const cursorEvery = 250 * time.Millisecond

// fold folds a page: the events of each job (and the queue's) are folded together in memory and
// stored with one compare-and-set, so a busy job costs one store round trip per page rather than
// per event. Control events (resync) are skipped: what is still in the log is folded.
func (p *Projector) fold(ctx context.Context, page []*event.Event) error {
	var queue []*event.Event
	var order []string // job ids, first seen first
	byJob := map[string][]*event.Event{}
	for _, e := range page {
		switch {
		case e.Control:
		case e.Type == event.TypeQueueStatus:
			queue = append(queue, e)
		default:
			var d struct {
				JobID string `json:"job_id"`
			}
			_ = json.Unmarshal(e.Data, &d)
			if _, ok := byJob[d.JobID]; !ok {
				order = append(order, d.JobID)
			}
			byJob[d.JobID] = append(byJob[d.JobID], e)
		}
	}
	for _, id := range order {
		if err := p.applyJob(ctx, id, byJob[id]); err != nil {
			return err
		}
	}
	if len(queue) > 0 {
		return p.applyQueue(ctx, queue)
	}
	return nil
}

// casRetries bounds the compare-and-set retries when other instances fold the same state.
const casRetries = 16

// applyJob folds one job's events of a page, in log order, into its stored state.
func (p *Projector) applyJob(ctx context.Context, id string, events []*event.Event) error {
	load := func(ctx context.Context) (State, error) {
		st, _, err := p.store.Job(ctx, id)
		return st, err
	}
	return foldInto(ctx, "job "+id, events, load, Fold, func(st State) string { return st.LastEventID }, p.store.SwapJob)
}

// applyQueue folds a page's queue.status events into the stored queue state.
func (p *Projector) applyQueue(ctx context.Context, events []*event.Event) error {
	load := func(ctx context.Context) (QueueState, error) {
		st, _, err := p.store.Queue(ctx)
		return st, err
	}
	return foldInto(ctx, "the queue", events, load, FoldQueue, func(st QueueState) string { return st.LastEventID }, p.store.SwapQueue)
}

// foldInto folds events, in order, into the state load returns and stores the result with swap,
// conditional on the stored state's last event id (last) being unchanged: when another writer
// got there first it reads and folds again, up to casRetries times. what names the state in the
// error.
func foldInto[S any](ctx context.Context, what string, events []*event.Event,
	load func(context.Context) (S, error), fold func(S, *event.Event) (S, bool),
	last func(S) string, swap func(context.Context, string, S) (bool, error)) error {
	for range casRetries {
		st, err := load(ctx)
		if err != nil {
			return err
		}
		next, changed := st, false
		for _, e := range events {
			var c bool
			next, c = fold(next, e)
			changed = changed || c
		}
		if !changed {
			return nil
		}
		swapped, err := swap(ctx, last(st), next)
		if err != nil || swapped {
			return err
		}
	}
	return fmt.Errorf("%s kept changing under events up to %s", what, events[len(events)-1].ID)
}
