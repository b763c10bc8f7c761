package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

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

func (p *Projector) apply(ctx context.Context, e *event.Event) error {
	for range 16 { // compare-and-set retries when another instance folds concurrently
		var swapped bool
		if e.Type == event.TypeQueueStatus {
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
			next, changed := Fold(st, e)
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
