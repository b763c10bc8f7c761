package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventgate/eventgate/streams"
)

// DefaultRetrySchedule is the delay before each retry (about a day in all): 8 attempts.
var DefaultRetrySchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Options tune a Dispatcher. Zero values select the defaults.
type Options struct {
	// Owner names this instance in endpoint leases (default: random).
	Owner string
	// RetrySchedule is the delay before each retry; its length is the number of retries (default
	// DefaultRetrySchedule). Each delay gets ±20% jitter; a longer Retry-After on 429/503 wins.
	RetrySchedule []time.Duration
	// Concurrency bounds the attempts in flight per endpoint, first attempts and retries together
	// (default 4).
	Concurrency int
	// LeaseTTL is how long an endpoint stays owned by an instance that stopped renewing (it died):
	// another instance takes over after it (default 15s).
	LeaseTTL time.Duration
	// SyncInterval is how often the endpoint list is re-read and leases renewed (default
	// min(1s, LeaseTTL/3)).
	SyncInterval time.Duration
	// Timeout is the client's per-attempt timeout; claimed retries are hidden from other
	// instances for 2×Timeout+5s (default 10s).
	Timeout time.Duration
	// Logger receives delivery problems (default slog.Default()).
	Logger *slog.Logger
	// Observer receives metrics (default: none).
	Observer Observer
}

func (o *Options) defaults() {
	if o.Owner == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.Owner = hex.EncodeToString(b[:])
	}
	if o.RetrySchedule == nil {
		o.RetrySchedule = DefaultRetrySchedule
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 15 * time.Second
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = min(time.Second, o.LeaseTTL/3)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
}

// Dispatcher delivers the log to every enabled endpoint. On each instance it keeps the endpoint
// list in sync and, per endpoint it holds the lease of, runs one worker: a hub subscription from
// the endpoint's durable cursor, plus a loop over the endpoint's due retries. So an (event,
// endpoint) pair is attempted by one instance at a time, and an instance that dies leaves its
// endpoints to the others after LeaseTTL, from their cursors (at-least-once).
//
// Run it once; Shutdown stops it. Kick is safe from any goroutine.
type Dispatcher struct {
	hub    *streams.Hub
	store  Store
	client *http.Client
	opts   Options

	kick     chan struct{} // capacity 1: "re-read the endpoint list now"
	stop     chan struct{} // closed by Shutdown
	stopOnce sync.Once
	started  atomic.Bool
	done     chan struct{} // closed when Run returns
	// hard is the context of attempts and store writes; cancelled when the grace period is over.
	hard  context.Context
	abort context.CancelFunc

	workers map[string]*worker // owned by Run's goroutine
}

// NewDispatcher returns a dispatcher draining hub into the endpoints of store, delivering with
// client (see NewClient).
func NewDispatcher(hub *streams.Hub, store Store, client *http.Client, opts Options) *Dispatcher {
	opts.defaults()
	hard, abort := context.WithCancel(context.Background())
	return &Dispatcher{hub: hub, store: store, client: client, opts: opts, kick: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}), hard: hard, abort: abort, workers: make(map[string]*worker)}
}

// Owner returns the name this instance uses in leases.
func (d *Dispatcher) Owner() string { return d.opts.Owner }

// Kick makes the dispatcher re-read the endpoint list now (after a registration or a change).
func (d *Dispatcher) Kick() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends or Shutdown is called, then stops taking new work, lets the
// attempts in flight finish (Shutdown's deadline aborts them; they stay pending), stores each
// endpoint's cursor and releases its leases. It returns nil.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.started.Store(true)
	defer close(d.done)
	soft, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-soft.Done():
		}
	}()
	tick := time.NewTicker(d.opts.SyncInterval)
	defer tick.Stop()
	lastList := time.Now()
	for {
		d.sync(soft, &lastList)
		select {
		case <-soft.Done():
			d.stopAll()
			return nil
		case <-tick.C:
		case <-d.kick:
		}
	}
}

// Shutdown stops Run: no new attempts start; those in flight may finish until ctx ends, then they
// are aborted and their events stay pending for the next owner. It returns once Run has returned
// (ctx's error if the deadline cut attempts short).
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() { close(d.stop) })
	if !d.started.Load() {
		d.abort()
		return nil
	}
	select {
	case <-d.done:
		d.abort()
		return nil
	case <-ctx.Done():
		d.abort()
		<-d.done
		return ctx.Err()
	}
}

// sync reconciles workers with the endpoint list and renews the leases held.
func (d *Dispatcher) sync(ctx context.Context, lastList *time.Time) {
	d.reap()
	hooks, err := d.store.Webhooks(ctx)
	if err != nil {
		if ctx.Err() == nil {
			d.opts.Logger.Warn("webhooks: reading endpoints failed", "err", err)
		}
		if time.Since(*lastList) > d.opts.LeaseTTL*2/3 {
			// Our leases may have lapsed: stop rather than race a new owner.
			for _, w := range d.workers {
				w.stop()
			}
		}
		return
	}
	*lastList = time.Now()
	enabled := make(map[string]Webhook, len(hooks))
	for _, h := range hooks {
		if h.Enabled {
			enabled[h.ID] = h
		}
	}
	for id, w := range d.workers {
		if _, ok := enabled[id]; !ok {
			w.stop() // disabled or deleted; reaped once its attempts are done
		}
	}
	pending := 0
	for _, h := range hooks {
		if !h.Enabled {
			continue
		}
		w := d.workers[h.ID]
		if w != nil && w.stopped.Load() {
			continue // still finishing; started again once reaped
		}
		ok, err := d.store.AcquireWebhook(ctx, h.ID, d.opts.Owner, d.opts.LeaseTTL)
		switch {
		case err != nil:
			if w != nil && time.Since(w.renewed) > d.opts.LeaseTTL*2/3 {
				w.stop()
			}
			continue
		case !ok:
			if w != nil {
				d.opts.Logger.Warn("webhooks: lease taken over by another instance", "webhook", h.ID)
				w.stop()
			}
			continue
		}
		if w == nil {
			if w = d.start(h); w == nil {
				continue
			}
		}
		w.renewed = time.Now()
		pending += int(w.pending.Load())
	}
	d.opts.Observer.Pending(pending)
}

// start launches the worker of h; nil if h cannot be delivered (bad secret or filter).
func (d *Dispatcher) start(h Webhook) *worker {
	w, err := newWorker(d, h)
	if err != nil {
		d.opts.Logger.Error("webhooks: endpoint cannot be delivered", "webhook", h.ID, "err", err)
		d.release(h.ID)
		return nil
	}
	d.workers[h.ID] = w
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() {
		defer close(w.done)
		defer cancel()
		w.run(ctx, d.hard)
	}()
	return w
}

// reap forgets finished workers and gives their leases up.
func (d *Dispatcher) reap() {
	for id, w := range d.workers {
		select {
		case <-w.done:
			delete(d.workers, id)
			d.release(id)
		default:
		}
	}
}

// stopAll stops every worker, waits for them and releases their leases.
func (d *Dispatcher) stopAll() {
	for _, w := range d.workers {
		w.stop()
	}
	for id, w := range d.workers {
		<-w.done
		delete(d.workers, id)
		d.release(id)
	}
}

func (d *Dispatcher) release(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := d.store.ReleaseWebhook(ctx, id, d.opts.Owner); err != nil {
		d.opts.Logger.Warn("webhooks: releasing lease failed", "webhook", id, "err", err)
	}
}

// delay is the wait before the attempt after attempt number n failed: the schedule's entry with
// ±20% jitter, or the endpoint's Retry-After if longer.
func (d *Dispatcher) delay(n int, retryAfter time.Duration) time.Duration {
	base := d.opts.RetrySchedule[n-1]
	jittered := time.Duration(float64(base) * (0.8 + 0.4*mrand.Float64()))
	return max(jittered, retryAfter)
}
