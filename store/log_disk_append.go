package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// maxCommitBytes bounds the payload of one group commit: the appender stops taking queued
// requests past it (a single larger request still goes alone).
const maxCommitBytes = 4 << 20

// appendReq is one Append or AppendOnce waiting for the appender.
type appendReq struct {
	ctx    context.Context
	drafts []event.Draft
	key    string        // Idempotency-Key ("" for a plain append)
	ttl    time.Duration // the receipt's lifetime
	size   int
	done   chan appendResult // buffered: the appender never blocks on it
}

type appendResult struct {
	ids   []event.ID
	prior []byte // the key's stored response (nothing appended)
	err   error
}

var errDiskClosed = fmt.Errorf("disk append: %w: store closed", streams.ErrUnavailable)

// submit hands r to the appender and waits for its result. When ctx ends first the outcome is
// unknown (the commit may still happen) and the error wraps ctx's error.
func (d *Disk) submit(ctx context.Context, r *appendReq) appendResult {
	r.ctx = ctx
	r.done = make(chan appendResult, 1)
	for _, dr := range r.drafts {
		r.size += len(dr.Data) + len(dr.Type) + len(dr.Topic)
	}
	select {
	case d.reqs <- r:
	case <-ctx.Done():
		return appendResult{err: fmt.Errorf("disk append: %w", ctx.Err())}
	case <-d.closing:
		return appendResult{err: errDiskClosed}
	}
	select {
	case res := <-r.done:
		return res
	case <-ctx.Done():
		return appendResult{err: fmt.Errorf("disk append: outcome unknown: %w", ctx.Err())}
	case <-d.stopped:
		select {
		case res := <-r.done: // answered just before the appender stopped
			return res
		default:
			return appendResult{err: errDiskClosed}
		}
	}
}

// staged is a batch the appender committed: its events are published to the ring and the
// bounds, and its callers answered, only after the commit's fsync.
type staged struct {
	reqs    []*appendReq
	results []appendResult
	events  []*event.Event // the events written (the batch's own trimmed ones left out)
	bounds  diskBounds     // the bounds after the batch
	trimmed int64
}

// appender is the only writer of the log. It takes the first queued request, then everything
// else queued (up to maxCommitBytes), and commits them in one synced Pebble batch (group
// commit): while one fsync runs, new requests queue up and share the next one. Only after the
// fsync are the events published to the ring and the bounds and the callers answered: nothing is
// visible to the hub, and no caller hears of success, before it is on disk.
func (d *Disk) appender() {
	cur := d.bounds // the bounds as committed; only this goroutine changes them
	for {
		var batch []*appendReq
		select {
		case <-d.closing: // first: appends still queued when Close starts fail, not by chance
			d.refuseQueued()
			return
		default:
		}
		select {
		case r := <-d.reqs:
			batch = append(make([]*appendReq, 0, 16), r)
		case <-d.closing:
			d.refuseQueued()
			return
		}
		size := batch[0].size
	more:
		for size < maxCommitBytes {
			select {
			case r := <-d.reqs:
				batch = append(batch, r)
				size += r.size
			default:
				break more
			}
		}
		start := time.Now()
		s := d.stage(batch, &cur)
		if s.events != nil {
			d.publish(s, time.Since(start))
		}
		d.answer(s.reqs, s.results)
	}
}

// refuseQueued answers every queued append with errDiskClosed (the store is closing).
func (d *Disk) refuseQueued() {
	for {
		select {
		case r := <-d.reqs:
			r.done <- appendResult{err: errDiskClosed}
		default:
			return
		}
	}
}

// fail records a failed commit: from then on every append fails and Ping reports it (the process
// should be restarted; the log on disk is whatever was synced).
func (d *Disk) fail(err error) {
	d.logger.Error("disk store: committing to the write-ahead log failed; appends fail from now on", "err", err)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failed == nil {
		d.failed = err
	}
}

// publish moves the ring and the bounds past the synced batch and wakes Tail.
func (d *Disk) publish(s *staged, took time.Duration) {
	d.mu.Lock()
	d.bounds = s.bounds
	for _, e := range s.events {
		d.ring.push(e)
	}
	d.ring.dropBefore(s.bounds.First)
	d.trimmed += s.trimmed
	close(d.wake)
	d.wake = make(chan struct{})
	d.mu.Unlock()
	if d.opts.OnCommit != nil {
		d.opts.OnCommit(took, len(s.events))
	}
}

// stage builds one batch for the requests: their events with IDs after cur.Last, their receipts,
// the trimming the retention asks for and the new bounds, and commits it without a sync. cur
// moves on when the commit succeeded.
func (d *Disk) stage(batch []*appendReq, cur *diskBounds) *staged {
	s := &staged{reqs: batch, results: make([]appendResult, len(batch))}
	d.mu.Lock()
	failed := d.failed
	d.mu.Unlock()
	if failed != nil {
		for i := range s.results {
			s.results[i].err = diskFail(context.Background(), "append", failed)
		}
		return s
	}
	d.receiptsMu.Lock()
	defer d.receiptsMu.Unlock()
	old := *cur
	b := old
	now := time.Now()
	ms := uint64(now.UnixMilli())
	wb := d.db.NewBatch()
	defer wb.Close()
	var events []*event.Event
	written := map[string]bool{} // keys whose receipt this batch writes
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			s.results[i].err = fmt.Errorf("disk append: %w", err)
			continue
		}
		if r.key != "" {
			if written[r.key] {
				s.results[i].err = errSameBatch // answered with the first request's receipt
				continue
			}
			// A receipt of a batch staged but not yet synced is seen here too; the answer
			// waits for that sync all the same (answers go out in order).
			prior, found, err := d.getReceipt(r.key, now)
			switch {
			case err != nil:
				s.results[i].err = diskFail(r.ctx, "receipt lookup", err)
				continue
			case found && len(prior) == 0:
				s.results[i].err = fmt.Errorf("disk append with receipt: %w", streams.ErrKeyInFlight)
				continue
			case found:
				s.results[i].prior = prior
				continue
			}
		}
		ids := make([]event.ID, len(r.drafts))
		for j, dr := range r.drafts {
			id := event.ID{MS: ms}
			if id.Compare(b.Last) <= 0 {
				id = b.Last.Next()
			}
			b.Last, ids[j] = id, id
			events = append(events, event.NewEvent(id, dr))
		}
		if b.Count == 0 {
			b.First = ids[0]
		}
		b.Count += int64(len(ids))
		s.results[i].ids = ids
		if r.key != "" {
			written[r.key] = true
			putReceipt(wb, r.key, streams.ReceiptBody(ids), now.Add(r.ttl))
		}
	}
	if len(events) == 0 {
		return s
	}
	skip, trimmed, err := d.trim(wb, events, old, &b)
	if err == nil {
		for _, e := range events[skip:] {
			if err = wb.Set(eventKey(e.ID), encodeRecord(e), nil); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = wb.Set([]byte{prefixBounds}, encodeBounds(b), nil)
	}
	if err == nil {
		err = wb.Commit(pebble.Sync)
	}
	if err != nil {
		// The batch may be in the log or not: the store stops taking appends (fail). A write or
		// sync of the write-ahead log that fails does not get here: Pebble treats it as fatal
		// (pebbleLogger.Fatalf panics, the process restarts on what was synced).
		d.fail(err)
		for i := range s.results {
			if s.results[i].ids != nil || errors.Is(s.results[i].err, errSameBatch) {
				s.results[i] = appendResult{err: diskFail(context.Background(), "append", err)}
			}
		}
		return s
	}
	*cur = b
	s.events, s.bounds, s.trimmed = events[skip:], b, trimmed
	if s.events == nil {
		s.events = []*event.Event{}
	}
	return s
}

// errSameBatch marks a request whose key an earlier request of the same batch wrote: it gets
// that request's receipt.
var errSameBatch = errors.New("key written earlier in the batch")

// answer replies to every request; a repeat of a key written earlier in the batch gets the
// receipt of the first.
func (d *Disk) answer(batch []*appendReq, results []appendResult) {
	first := map[string][]event.ID{}
	for i, r := range batch {
		if r.key != "" && results[i].ids != nil {
			if _, ok := first[r.key]; !ok {
				first[r.key] = results[i].ids
			}
		}
	}
	for i, r := range batch {
		if errors.Is(results[i].err, errSameBatch) {
			results[i] = appendResult{prior: streams.ReceiptBody(first[r.key])}
		}
		r.done <- results[i]
	}
}

// trimSlack is how far past its retention the log may grow before the oldest events are
// trimmed, so that trimming happens in steps (as Redis's MAXLEN ~ trims whole nodes).
func trimSlack(retention int) int64 { return int64(min(max(retention/10, 1), 10000)) }

// trim deletes the oldest events when the log, with events, is over retention plus slack,
// leaving retention events: one range deletion of the events on disk, and, when the batch alone
// is larger than the retention, its own first events are not written at all (skip). It updates
// b and returns skip and the number of events trimmed.
func (d *Disk) trim(wb *pebble.Batch, events []*event.Event, old diskBounds, b *diskBounds) (skip int, trimmed int64, err error) {
	ret := int64(d.opts.Retention)
	if ret <= 0 || b.Count <= ret+trimSlack(d.opts.Retention) {
		return 0, 0, nil
	}
	drop := b.Count - ret
	onDisk := old.Count
	switch {
	case drop >= onDisk:
		if onDisk > 0 {
			if err := wb.DeleteRange(eventKey(old.First), eventKey(old.Last.Next()), nil); err != nil {
				return 0, 0, err
			}
			b.MaxDeleted = old.Last
		}
		skip = int(drop - onDisk)
		if skip > 0 {
			b.MaxDeleted = events[skip-1].ID
		}
		b.First = events[skip].ID
	default:
		lastDropped, cut, err := d.nth(old.First, drop)
		if err != nil {
			return 0, 0, err
		}
		if err := wb.DeleteRange(eventKey(old.First), eventKey(cut), nil); err != nil {
			return 0, 0, err
		}
		b.MaxDeleted, b.First = lastDropped, cut
	}
	b.Trimmed, b.Count = true, ret
	return skip, drop, nil
}

// nth walks n events from first on disk and returns the n-th (the last to drop) and the one after
// it (the new first). Only the appender calls it; it is the only writer, so the walk sees what
// the bounds say.
func (d *Disk) nth(first event.ID, n int64) (last, next event.ID, err error) {
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: eventKey(first), UpperBound: []byte{prefixEvent + 1}})
	if err != nil {
		return last, next, err
	}
	defer it.Close()
	var i int64
	for ok := it.First(); ok; ok = it.Next() {
		id, err := eventKeyID(it.Key())
		if err != nil {
			return last, next, err
		}
		if i == n {
			return last, id, nil
		}
		last = id
		i++
	}
	if err := it.Error(); err != nil {
		return last, next, err
	}
	return last, next, fmt.Errorf("the log holds fewer events than its bounds count (%d of %d)", i, n+1)
}

// receiptValue is <expires ms:8> <response>.
func receiptValue(response []byte, expires time.Time) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(response)), uint64(expires.UnixMilli()))
	return append(v, response...)
}

func receiptKey(key string) []byte { return append([]byte{prefixReceipt}, key...) }

func expiryKey(prefix byte, expires time.Time, key string) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefix}, uint64(expires.UnixMilli()))
	return append(k, key...)
}

// putReceipt writes a receipt and its expiry index entry.
func putReceipt(wb *pebble.Batch, key string, response []byte, expires time.Time) {
	_ = wb.Set(receiptKey(key), receiptValue(response, expires), nil)
	_ = wb.Set(expiryKey(prefixReceiptExpiry, expires, key), nil, nil)
}

// getReceipt reads key's unexpired receipt (an empty response: a request in flight). Caller
// holds receiptsMu.
func (d *Disk) getReceipt(key string, now time.Time) (response []byte, found bool, err error) {
	v, closer, err := d.db.Get(receiptKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer closer.Close()
	if len(v) < 8 {
		return nil, false, fmt.Errorf("receipt %q: %w", key, errBadRecord)
	}
	if int64(binary.BigEndian.Uint64(v)) <= now.UnixMilli() {
		return nil, false, nil
	}
	return append([]byte{}, v[8:]...), true, nil
}
