package store

import (
	"context"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

var _ streams.AtomicReceipts = (*DiskReceipts)(nil)

// DiskReceipts keeps idempotency receipts in a disk store, beside its log, so that a key
// repeated after a restart still returns the first response. Safe for concurrent use. Expired
// receipts are swept by the store in the background (an expiry index keeps the sweep from
// reading live receipts).
type DiskReceipts struct{ d *Disk }

// NewDiskReceipts returns the receipts of d.
func NewDiskReceipts(d *Disk) *DiskReceipts { return &DiskReceipts{d: d} }

// AppendOnce looks key up and, when it is free, appends drafts and stores their receipt in the
// same synced batch, when log is d's own log; otherwise ok is false and nothing is done. It goes
// through the appender, so it shares fsyncs with concurrent publishes.
func (r *DiskReceipts) AppendOnce(ctx context.Context, log streams.Log, key string, drafts []event.Draft, ttl time.Duration) ([]event.ID, []byte, bool, error) {
	if dl, ok := log.(*Disk); !ok || dl != r.d || len(drafts) == 0 {
		return nil, nil, false, nil
	}
	res := r.d.submit(ctx, &appendReq{drafts: drafts, key: key, ttl: ttl})
	return res.ids, res.prior, true, res.err
}

// Claim reserves key for ttl unless an unexpired receipt exists. The claim is synced.
func (r *DiskReceipts) Claim(ctx context.Context, key string, ttl time.Duration) (prior []byte, claimed bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	r.d.receiptsMu.Lock()
	defer r.d.receiptsMu.Unlock()
	err = r.d.use("claim", func(db *pebble.DB) error {
		now := time.Now()
		resp, found, err := r.d.getReceipt(key, now)
		switch {
		case err != nil:
			return err
		case found:
			prior = resp
			if len(resp) == 0 {
				prior = nil // in flight
			}
			return nil
		}
		claimed = true
		wb := db.NewBatch()
		defer wb.Close()
		putReceipt(wb, key, nil, now.Add(ttl))
		return wb.Commit(pebble.Sync)
	})
	if err != nil {
		return nil, false, diskFail(ctx, "claim", err)
	}
	return prior, claimed, nil
}

// Complete stores response (which must not be empty) for key for ttl.
func (r *DiskReceipts) Complete(ctx context.Context, key string, response []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(response) == 0 {
		return errEmptyResponse
	}
	r.d.receiptsMu.Lock()
	defer r.d.receiptsMu.Unlock()
	err := r.d.use("complete", func(db *pebble.DB) error {
		wb := db.NewBatch()
		defer wb.Close()
		putReceipt(wb, key, response, time.Now().Add(ttl))
		return wb.Commit(pebble.Sync)
	})
	if err != nil {
		return diskFail(ctx, "complete", err)
	}
	return nil
}

// Release forgets key. Its expiry index entry stays until the sweep, which then finds no
// receipt of that expiry.
func (r *DiskReceipts) Release(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.d.receiptsMu.Lock()
	defer r.d.receiptsMu.Unlock()
	err := r.d.use("release", func(db *pebble.DB) error {
		return db.Delete(receiptKey(key), pebble.Sync)
	})
	if err != nil {
		return diskFail(ctx, "release", err)
	}
	return nil
}
