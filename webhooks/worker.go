package webhooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/internal/backoff"
	"github.com/eventgate/eventgate/streams"
)

// flushInterval is how often a worker stores its cursor while events flow.
const flushInterval = 250 * time.Millisecond

// worker delivers to one endpoint while this instance holds its lease: live delivers the log
// from the cursor (first attempts), retries delivers the endpoint's due retries. Both share the
// semaphore that bounds the attempts in flight.
type worker struct {
	d      *Dispatcher
	hook   Webhook
	filter event.Filter
	signer *Signer
	sem    chan struct{} // one slot per attempt in flight
	wake   chan struct{} // capacity 1: a retry was scheduled

	cancel   context.CancelFunc // stops taking new work
	done     chan struct{}      // closed when run returned
	stopped  atomic.Bool
	pending  atomic.Int64 // queued retries, approximately
	attempts sync.WaitGroup

	renewed time.Time // last lease renewal; the dispatcher's goroutine only
}

func newWorker(d *Dispatcher, h Webhook) (*worker, error) {
	signer, err := NewSigner(h.Secret)
	if err != nil {
		return nil, err
	}
	f, err := event.RestoreFilter(h.Topics, h.Types) // a reload may have removed a custom type
	if err != nil {
		return nil, err
	}
	return &worker{d: d, hook: h, filter: f, signer: signer, sem: make(chan struct{}, d.opts.Concurrency),
		wake: make(chan struct{}, 1), done: make(chan struct{}), renewed: time.Now()}, nil
}

// stop makes the worker take no new work; attempts in flight finish. Safe from any goroutine.
func (w *worker) stop() {
	if w.stopped.CompareAndSwap(false, true) && w.cancel != nil {
		w.cancel()
	}
}

func (w *worker) run(soft, hard context.Context) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.live(soft, hard) }()
	go func() { defer wg.Done(); w.retries(soft, hard) }()
	wg.Wait()
	w.attempts.Wait()
	w.d.Kick() // let the dispatcher reap this worker promptly
}

// retryWait waits before retrying a failed store call, after *n earlier failures (backoff.Store:
// 100ms doubling to 5s), counting this one; false if ctx ended.
func retryWait(ctx context.Context, n *int) bool {
	d := backoff.Store.Delay(*n)
	*n++
	return backoff.Wait(ctx, d)
}

// slot is an event whose first attempt is in flight, in log order.
type slot struct {
	id   event.ID
	done bool
}

type firstResult struct {
	seq    int
	handed bool // delivered, failed for good, or queued for retry; false: stays pending
}

// live delivers the log from the endpoint's cursor. The cursor only moves past an event once it
// is handed off (delivered, failed for good or queued for retry), so whatever was in flight when
// the worker stopped is delivered again by the next owner.
func (w *worker) live(soft, hard context.Context) {
	var cursor event.ID
	for fails := 0; ; {
		c, err := w.d.store.WebhookCursor(soft, w.hook.ID)
		if err == nil {
			cursor = c
			break
		}
		if errors.Is(err, ErrNotFound) {
			w.stop()
			return
		}
		if !retryWait(soft, &fails) {
			return
		}
	}
	sub, err := w.d.hub.Subscribe(soft, w.filter, streams.After(cursor))
	if err != nil {
		return
	}
	defer sub.Close()

	var (
		window    []slot // first attempts in flight, in log order; window[0] has sequence base
		base      int
		inflight  int
		backlog   []*event.Event // read from the subscription, not started yet
		lastPos   = cursor       // the subscription's position after the last Next
		safe      = cursor       // everything up to here is handed off
		persisted = cursor
		buf       []*event.Event
		fails     int
		retryNext <-chan time.Time
	)
	results := make(chan firstResult, cap(w.sem))
	flush := time.NewTicker(flushInterval)
	defer flush.Stop()
	softDone := soft.Done()
	for {
		stopping := soft.Err() != nil
		if stopping && inflight == 0 {
			break
		}
		var ready <-chan struct{}
		var sem chan struct{}
		if !stopping && retryNext == nil {
			if len(backlog) == 0 {
				ready = sub.Ready()
			} else {
				sem = w.sem
			}
		}
		select {
		case <-ready:
			events, err := sub.Next(soft, buf[:0])
			if err != nil {
				if soft.Err() == nil {
					w.d.opts.Logger.Warn("webhooks: reading the log failed", "webhook", w.hook.ID, "err", err)
					retryNext = time.After(min(100*time.Millisecond<<min(fails, 6), 5*time.Second))
					fails++
				}
				continue
			}
			fails = 0
			for _, e := range events {
				if e.Control {
					w.note(hard, e)
					continue
				}
				backlog = append(backlog, e)
			}
			buf = events[:0]
			lastPos = sub.Position()
			if len(window) == 0 && len(backlog) == 0 {
				safe = lastPos
			}
		case <-retryNext:
			retryNext = nil
		case sem <- struct{}{}:
			if soft.Err() != nil { // stopped while waiting for the slot (a 410, a lost lease)
				<-w.sem
				continue
			}
			e := backlog[0]
			backlog[0] = nil
			backlog = backlog[1:]
			window = append(window, slot{id: e.ID})
			inflight++
			seq := base + len(window) - 1
			go func() {
				defer func() { <-w.sem }()
				results <- firstResult{seq: seq, handed: w.first(hard, e)}
			}()
		case r := <-results:
			inflight--
			if r.handed {
				window[r.seq-base].done = true
			}
			for len(window) > 0 && window[0].done {
				safe = window[0].id
				window = window[1:]
				base++
			}
			if len(window) == 0 && len(backlog) == 0 {
				safe = lastPos
			}
		case <-flush.C:
			if persisted.Less(safe) && w.advance(hard, safe) {
				persisted = safe
			}
		case <-softDone:
			softDone = nil
		}
	}
	if persisted.Less(safe) {
		// The grace period may be over (hard cancelled): store the cursor with a short deadline.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		w.advance(ctx, safe)
	}
}

// advance stores the cursor; false if it could not (the lease was lost: the worker stops).
func (w *worker) advance(ctx context.Context, to event.ID) bool {
	err := w.d.store.AdvanceWebhookCursor(ctx, w.hook.ID, w.d.opts.Owner, to)
	if err == nil {
		return true
	}
	if errors.Is(err, ErrLeaseLost) {
		w.d.opts.Logger.Warn("webhooks: lease lost; stopping delivery here", "webhook", w.hook.ID)
		w.stop()
	} else if ctx.Err() == nil {
		w.d.opts.Logger.Warn("webhooks: storing the cursor failed", "webhook", w.hook.ID, "err", err)
	}
	return false
}

// note records a resync of the log in the delivery log: events were lost to trimming (or the log
// was reset) before this endpoint got them.
func (w *worker) note(ctx context.Context, e *event.Event) {
	w.d.opts.Logger.Warn("webhooks: the log moved past the endpoint's cursor", "webhook", w.hook.ID, "resync", string(e.JSON))
	w.record(ctx, Delivery{EventID: e.ID, Outcome: OutcomeNote, Error: "resync: " + string(e.JSON), Time: time.Now().UTC()})
}

// first makes an event's first attempt and settles it.
func (w *worker) first(hard context.Context, e *event.Event) bool {
	r := w.attempt(hard, e.ID, e.JSON)
	if r.aborted {
		return false
	}
	return w.settle(hard, e.ID, e.JSON, 1, r, false)
}

// retries delivers the endpoint's due retries, one claim per free slot.
func (w *worker) retries(soft, hard context.Context) {
	hold := 2*w.d.opts.Timeout + 5*time.Second
	fails := 0
	for {
		select {
		case w.sem <- struct{}{}:
		case <-soft.Done():
			return
		}
		if soft.Err() != nil {
			<-w.sem
			return
		}
		// Claimed under hard: a claim that succeeds in the store is never lost to a cancelled read.
		r, ok, err := w.d.store.ClaimRetry(hard, w.hook.ID, w.d.opts.Owner, time.Now(), hold)
		if err == nil && ok {
			fails = 0
			w.attempts.Add(1)
			go func() {
				defer w.attempts.Done()
				defer func() { <-w.sem }()
				w.retry(hard, r)
			}()
			continue
		}
		<-w.sem
		if errors.Is(err, ErrLeaseLost) {
			w.stop()
			return
		}
		if err != nil {
			if !retryWait(soft, &fails) {
				return
			}
			continue
		}
		wait := time.Second
		if n, next, err := w.d.store.RetryStats(soft, w.hook.ID); err == nil {
			w.pending.Store(int64(n))
			if !next.IsZero() {
				wait = min(wait, max(time.Until(next), 10*time.Millisecond))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-w.wake:
		case <-soft.Done():
			t.Stop()
			return
		}
		t.Stop()
	}
}

// retry makes a claimed retry's attempt and settles it. An attempt cut short by shutdown puts the
// retry back as due now, for the next owner.
func (w *worker) retry(hard context.Context, r Retry) {
	res := w.attempt(hard, r.EventID, r.Body)
	if res.aborted {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r.Due = time.Now()
		_ = w.d.store.ScheduleRetry(ctx, w.hook.ID, w.d.opts.Owner, r)
		return
	}
	w.settle(hard, r.EventID, r.Body, r.Attempt, res, true)
}

// settle records attempt number n's result and decides the event's fate: done (2xx), endpoint
// disabled (410), queued for the next retry, or failed for good after the last. claimed says the
// event came from the retry queue (and leaves it unless retried again). It returns false when the
// outcome could not be stored (lease lost, or shut down while the store was away): the event then
// stays pending.
func (w *worker) settle(ctx context.Context, id event.ID, body []byte, n int, r result, claimed bool) bool {
	w.d.opts.Observer.Delivery(r.outcome, r.elapsed)
	rec := Delivery{EventID: id, Attempt: n, Outcome: r.outcome, Status: r.status, Error: r.errClass,
		Duration: r.elapsed, Time: time.Now().UTC()}
	handed := true
	switch {
	case r.ok():
		if claimed {
			handed = w.complete(ctx, id)
		}
	case r.gone():
		rec.Final, rec.Error = true, "HTTP 410 Gone: endpoint disabled"
		if claimed {
			handed = w.complete(ctx, id)
		}
		w.disable(ctx)
	case n <= len(w.d.opts.RetrySchedule):
		due := time.Now().Add(w.d.delay(n, r.retryAfter))
		handed = w.schedule(ctx, Retry{EventID: id, Attempt: n + 1, Due: due, Body: body})
		if handed {
			rec.NextAttempt = due.UTC()
			if !claimed {
				w.pending.Add(1)
			}
		}
	default:
		rec.Final = true
		rec.Error = fmt.Sprintf("%s; giving up after %d attempts", r.errClass, n)
		if claimed {
			handed = w.complete(ctx, id)
		}
		w.d.opts.Logger.Warn("webhooks: delivery failed for good", "webhook", w.hook.ID, "event", id.String(), "attempts", n)
	}
	w.record(ctx, rec)
	return handed
}

// storeRetrying runs op until it succeeds, the lease is lost (the worker stops) or ctx ends.
func (w *worker) storeRetrying(ctx context.Context, what string, op func(context.Context) error) bool {
	for fails := 0; ; {
		err := op(ctx)
		switch {
		case err == nil:
			return true
		case errors.Is(err, ErrLeaseLost), errors.Is(err, ErrNotFound):
			w.stop()
			return false
		}
		if fails == 0 {
			w.d.opts.Logger.Warn("webhooks: store write failed; retrying", "webhook", w.hook.ID, "op", what, "err", err)
		}
		if !retryWait(ctx, &fails) {
			return false
		}
	}
}

func (w *worker) schedule(ctx context.Context, r Retry) bool {
	ok := w.storeRetrying(ctx, "schedule retry", func(ctx context.Context) error {
		return w.d.store.ScheduleRetry(ctx, w.hook.ID, w.d.opts.Owner, r)
	})
	if ok {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	return ok
}

func (w *worker) complete(ctx context.Context, id event.ID) bool {
	ok := w.storeRetrying(ctx, "complete retry", func(ctx context.Context) error {
		return w.d.store.CompleteRetry(ctx, w.hook.ID, w.d.opts.Owner, id)
	})
	if ok {
		w.pending.Add(-1)
	}
	return ok
}

// disable turns the endpoint off after a 410 and stops the worker.
func (w *worker) disable(ctx context.Context) {
	w.d.opts.Logger.Warn("webhooks: endpoint answered 410 Gone; disabling it", "webhook", w.hook.ID)
	w.stop() // first: no attempt starts after the 410
	w.storeRetrying(ctx, "disable", func(ctx context.Context) error {
		_, err := w.d.store.SetWebhookEnabled(ctx, w.hook.ID, false, "endpoint answered 410 Gone")
		return err
	})
}

// record adds to the delivery log; a failure is only logged (the log is informational).
func (w *worker) record(ctx context.Context, d Delivery) {
	if err := w.d.store.RecordDelivery(ctx, w.hook.ID, d); err != nil && ctx.Err() == nil {
		w.d.opts.Logger.Warn("webhooks: recording a delivery failed", "webhook", w.hook.ID, "err", err)
	}
}
