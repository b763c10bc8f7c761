package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/webhooks"
)

var _ webhooks.Store = (*DiskWebhooks)(nil)

// DiskWebhooks keeps webhook endpoints and their delivery state (cursor, retries, delivery log)
// in a disk store, so that deliveries continue after a restart. Leases stay in process: one
// process owns the folder, and they expire as in Redis so the dispatcher runs the same code.
// Registry changes (create, enable, delete) are synced: the API answered them. Delivery state
// (cursor, retries, claims, delivery records) is not: an fsync per delivery would compete with
// the log's. Pebble's write-ahead log is written in commit order and recovered as a prefix, so a
// cursor that survives a crash has the retries queued before it; a crash can only move the
// cursor back (events delivered again: at-least-once, receivers dedupe by webhook-id) or bring
// back a completed retry. The log's syncs make them durable soon after.
// Safe for concurrent use: changes are serialised by one mutex.
type DiskWebhooks struct{ d *Disk }

// diskHooks is the webhooks' in-process state, part of Disk.
type diskHooks struct {
	mu     sync.Mutex
	leases map[string]diskLease
	seq    int64 // highest creation sequence (0: not loaded yet)
}

type diskLease struct {
	owner string
	until time.Time
}

// diskHook is an endpoint as stored under 'w'.
type diskHook struct {
	Hook   webhooks.Webhook `json:"hook"`
	Cursor event.ID         `json:"cursor"`
	Seq    int64            `json:"seq"` // creation order
}

// NewDiskWebhooks returns the webhook store of d.
func NewDiskWebhooks(d *Disk) *DiskWebhooks { return &DiskWebhooks{d: d} }

func hookKey(id string) []byte { return append([]byte{prefixWebhook}, id...) }

// hookPart returns the key prefix of an endpoint's retries or delivery records: the prefix byte,
// the id's length and the id, so that no id's keys run into another's.
func hookPart(prefix byte, id string) []byte {
	return append([]byte{prefix, byte(len(id))}, id...)
}

func hookPartEnd(prefix byte, id string) []byte {
	k := hookPart(prefix, id)
	return append(k, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

// get reads an endpoint; the error wraps webhooks.ErrNotFound for an unknown id.
func (w *DiskWebhooks) get(db *pebble.DB, id string) (diskHook, error) {
	var h diskHook
	v, closer, err := db.Get(hookKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return h, fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	if err != nil {
		return h, err
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &h); err != nil {
		return h, fmt.Errorf("webhook %q: %w", id, err)
	}
	return h, nil
}

func (w *DiskWebhooks) put(db *pebble.DB, h diskHook, sync *pebble.WriteOptions) error {
	raw, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return db.Set(hookKey(h.Hook.ID), raw, sync)
}

// all returns every endpoint, oldest first.
func (w *DiskWebhooks) all(db *pebble.DB) ([]diskHook, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixWebhook}, UpperBound: []byte{prefixWebhook + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []diskHook
	for ok := it.First(); ok; ok = it.Next() {
		var h diskHook
		if err := json.Unmarshal(it.Value(), &h); err != nil {
			return nil, fmt.Errorf("webhook %q: %w", it.Key()[1:], err)
		}
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b diskHook) int { return int(a.Seq - b.Seq) })
	return out, it.Error()
}

// do runs f with the database, holding the webhooks' mutex when lock is set; errors other than
// the ports' sentinels become store unavailability.
func (w *DiskWebhooks) do(ctx context.Context, op string, lock bool, f func(db *pebble.DB) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if lock {
		w.d.hooks.mu.Lock()
		defer w.d.hooks.mu.Unlock()
	}
	err := w.d.use(op, f)
	if err == nil || errors.Is(err, webhooks.ErrNotFound) || errors.Is(err, webhooks.ErrLeaseLost) || errors.Is(err, webhooks.ErrTooMany) || errors.Is(err, errHookExists) {
		return err
	}
	return diskFail(ctx, op, err)
}

var errHookExists = errors.New("webhook exists")

// CreateWebhook stores h with its cursor, unless limit > 0 endpoints exist already.
func (w *DiskWebhooks) CreateWebhook(ctx context.Context, h webhooks.Webhook, cursor event.ID, limit int) error {
	if h.ID == "" || len(h.ID) > 255 { // hookPart stores the length in a byte
		return fmt.Errorf("disk webhook create: id of %d bytes, want 1 to 255", len(h.ID))
	}
	return w.do(ctx, "webhook create", true, func(db *pebble.DB) error {
		if _, err := w.get(db, h.ID); !errors.Is(err, webhooks.ErrNotFound) {
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: %q", errHookExists, h.ID)
		}
		all, err := w.all(db)
		if err != nil {
			return err
		}
		if limit > 0 && len(all) >= limit {
			return tooManyWebhooks(limit)
		}
		for _, o := range all {
			w.d.hooks.seq = max(w.d.hooks.seq, o.Seq)
		}
		w.d.hooks.seq++
		return w.put(db, diskHook{Hook: copyHook(h), Cursor: cursor, Seq: w.d.hooks.seq}, pebble.Sync)
	})
}

// Webhook returns one endpoint.
func (w *DiskWebhooks) Webhook(ctx context.Context, id string) (h webhooks.Webhook, err error) {
	err = w.do(ctx, "webhook read", false, func(db *pebble.DB) error {
		dh, err := w.get(db, id)
		h = dh.Hook
		return err
	})
	return h, err
}

// Webhooks returns every endpoint, oldest first.
func (w *DiskWebhooks) Webhooks(ctx context.Context) (out []webhooks.Webhook, err error) {
	err = w.do(ctx, "webhook list", false, func(db *pebble.DB) error {
		all, err := w.all(db)
		out = make([]webhooks.Webhook, len(all))
		for i, h := range all {
			out[i] = h.Hook
		}
		return err
	})
	return out, err
}

// SetWebhookEnabled turns delivery on or off.
func (w *DiskWebhooks) SetWebhookEnabled(ctx context.Context, id string, enabled bool, reason string) (h webhooks.Webhook, err error) {
	err = w.do(ctx, "webhook update", true, func(db *pebble.DB) error {
		dh, err := w.get(db, id)
		if err != nil {
			return err
		}
		dh.Hook.Enabled, dh.Hook.DisabledReason = enabled, ""
		if !enabled {
			dh.Hook.DisabledReason = reason
		}
		h = dh.Hook
		return w.put(db, dh, pebble.Sync)
	})
	return h, err
}

// DeleteWebhook removes the endpoint with its retries, delivery log and lease.
func (w *DiskWebhooks) DeleteWebhook(ctx context.Context, id string) error {
	return w.do(ctx, "webhook delete", true, func(db *pebble.DB) error {
		if _, err := w.get(db, id); err != nil {
			return err
		}
		wb := db.NewBatch()
		defer wb.Close()
		_ = wb.Delete(hookKey(id), nil)
		_ = wb.DeleteRange(hookPart(prefixWebhookRetry, id), hookPartEnd(prefixWebhookRetry, id), nil)
		_ = wb.DeleteRange(hookPart(prefixWebhookHistory, id), hookPartEnd(prefixWebhookHistory, id), nil)
		delete(w.d.hooks.leases, id)
		return wb.Commit(pebble.Sync)
	})
}

// AcquireWebhook takes or renews the lease.
func (w *DiskWebhooks) AcquireWebhook(ctx context.Context, id, owner string, ttl time.Duration) (ok bool, err error) {
	err = w.do(ctx, "webhook acquire", true, func(db *pebble.DB) error {
		if _, err := w.get(db, id); err != nil {
			if errors.Is(err, webhooks.ErrNotFound) {
				return nil
			}
			return err
		}
		now := time.Now()
		if l := w.d.hooks.leases[id]; l.owner != owner && now.Before(l.until) {
			return nil
		}
		if w.d.hooks.leases == nil {
			w.d.hooks.leases = make(map[string]diskLease)
		}
		w.d.hooks.leases[id] = diskLease{owner: owner, until: now.Add(ttl)}
		ok = true
		return nil
	})
	return ok, err
}

// ReleaseWebhook gives the lease up if owner holds it.
func (w *DiskWebhooks) ReleaseWebhook(_ context.Context, id, owner string) error {
	w.d.hooks.mu.Lock()
	defer w.d.hooks.mu.Unlock()
	if w.d.hooks.leases[id].owner == owner {
		delete(w.d.hooks.leases, id)
	}
	return nil
}

// owned returns the endpoint if owner holds its lease. Caller holds the mutex.
func (w *DiskWebhooks) owned(db *pebble.DB, id, owner string) (diskHook, error) {
	if l := w.d.hooks.leases[id]; l.owner != owner || !time.Now().Before(l.until) {
		return diskHook{}, fmt.Errorf("%w: %q", webhooks.ErrLeaseLost, id)
	}
	h, err := w.get(db, id)
	if errors.Is(err, webhooks.ErrNotFound) {
		return h, fmt.Errorf("%w: %q", webhooks.ErrLeaseLost, id)
	}
	return h, err
}

// WebhookCursor returns the cursor.
func (w *DiskWebhooks) WebhookCursor(ctx context.Context, id string) (c event.ID, err error) {
	err = w.do(ctx, "webhook cursor read", false, func(db *pebble.DB) error {
		h, err := w.get(db, id)
		c = h.Cursor
		return err
	})
	return c, err
}

// AdvanceWebhookCursor moves the cursor forward to to.
func (w *DiskWebhooks) AdvanceWebhookCursor(ctx context.Context, id, owner string, to event.ID) error {
	return w.do(ctx, "webhook cursor write", true, func(db *pebble.DB) error {
		h, err := w.owned(db, id, owner)
		if err != nil || !h.Cursor.Less(to) {
			return err
		}
		h.Cursor = to
		return w.put(db, h, pebble.NoSync)
	})
}

func retryKey(id string, ev event.ID) []byte { return appendID(hookPart(prefixWebhookRetry, id), ev) }

// ScheduleRetry queues r, replacing any retry of the same event.
func (w *DiskWebhooks) ScheduleRetry(ctx context.Context, id, owner string, r webhooks.Retry) error {
	return w.do(ctx, "webhook retry write", true, func(db *pebble.DB) error {
		if _, err := w.owned(db, id, owner); err != nil {
			return err
		}
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return db.Set(retryKey(id, r.EventID), raw, pebble.NoSync)
	})
}

// retries calls f for each queued retry of id, in event order, until f returns false.
func retries(db *pebble.DB, id string, f func(r webhooks.Retry) bool) error {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: hookPart(prefixWebhookRetry, id), UpperBound: hookPartEnd(prefixWebhookRetry, id)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		var r webhooks.Retry
		if err := json.Unmarshal(it.Value(), &r); err != nil {
			return fmt.Errorf("webhook %q retry: %w", id, err)
		}
		if !f(r) {
			break
		}
	}
	return it.Error()
}

// ClaimRetry takes the earliest due retry and hides it until now+hold.
func (w *DiskWebhooks) ClaimRetry(ctx context.Context, id, owner string, now time.Time, hold time.Duration) (best webhooks.Retry, ok bool, err error) {
	err = w.do(ctx, "webhook retry claim", true, func(db *pebble.DB) error {
		if _, err := w.owned(db, id, owner); err != nil {
			return err
		}
		err := retries(db, id, func(r webhooks.Retry) bool {
			if !r.Due.After(now) && (!ok || r.Due.Before(best.Due)) {
				best, ok = r, true
			}
			return true
		})
		if err != nil || !ok {
			return err
		}
		held := best
		held.Due = now.Add(hold)
		raw, err := json.Marshal(held)
		if err != nil {
			return err
		}
		return db.Set(retryKey(id, best.EventID), raw, pebble.NoSync)
	})
	if err != nil {
		return webhooks.Retry{}, false, err
	}
	return best, ok, nil
}

// CompleteRetry removes the retry of ev.
func (w *DiskWebhooks) CompleteRetry(ctx context.Context, id, owner string, ev event.ID) error {
	return w.do(ctx, "webhook retry delete", true, func(db *pebble.DB) error {
		if _, err := w.owned(db, id, owner); err != nil {
			return err
		}
		return db.Delete(retryKey(id, ev), pebble.NoSync)
	})
}

// RetryStats counts queued retries.
func (w *DiskWebhooks) RetryStats(ctx context.Context, id string) (n int, next time.Time, err error) {
	err = w.do(ctx, "webhook retry stats", false, func(db *pebble.DB) error {
		if _, err := w.get(db, id); err != nil {
			return err
		}
		return retries(db, id, func(r webhooks.Retry) bool {
			n++
			if next.IsZero() || r.Due.Before(next) {
				next = r.Due
			}
			return true
		})
	})
	return n, next, err
}

// RecordDelivery appends rec to the endpoint's log, keeping the newest DeliveryLogSize records.
func (w *DiskWebhooks) RecordDelivery(ctx context.Context, id string, rec webhooks.Delivery) error {
	return w.do(ctx, "webhook delivery record", true, func(db *pebble.DB) error {
		if _, err := w.get(db, id); err != nil {
			return err
		}
		part := hookPart(prefixWebhookHistory, id)
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: part, UpperBound: hookPartEnd(prefixWebhookHistory, id)})
		if err != nil {
			return err
		}
		var seq uint64
		if it.Last() {
			seq = binary.BigEndian.Uint64(it.Key()[len(part):]) + 1
		}
		if err := it.Close(); err != nil {
			return err
		}
		raw, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		wb := db.NewBatch()
		defer wb.Close()
		_ = wb.Set(binary.BigEndian.AppendUint64(slices.Clone(part), seq), raw, nil)
		if seq >= DeliveryLogSize {
			_ = wb.DeleteRange(part, binary.BigEndian.AppendUint64(slices.Clone(part), seq+1-DeliveryLogSize), nil)
		}
		return wb.Commit(pebble.NoSync)
	})
}

// Deliveries returns up to limit records, newest first.
func (w *DiskWebhooks) Deliveries(ctx context.Context, id string, limit int) (out []webhooks.Delivery, err error) {
	err = w.do(ctx, "webhook delivery read", false, func(db *pebble.DB) error {
		if _, err := w.get(db, id); err != nil {
			return err
		}
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: hookPart(prefixWebhookHistory, id), UpperBound: hookPartEnd(prefixWebhookHistory, id)})
		if err != nil {
			return err
		}
		defer it.Close()
		out = make([]webhooks.Delivery, 0, min(limit, DeliveryLogSize))
		for ok := it.Last(); ok && len(out) < limit; ok = it.Prev() {
			var rec webhooks.Delivery
			if err := json.Unmarshal(it.Value(), &rec); err != nil {
				return fmt.Errorf("webhook %q delivery: %w", id, err)
			}
			out = append(out, rec)
		}
		return it.Error()
	})
	return out, err
}
