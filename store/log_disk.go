package store

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// Append queues drafts for the appender and returns their IDs once they are on disk (fsync'd),
// all or none. IDs are <unix ms>-<seq>, strictly increasing across restarts even if the clock
// steps back. When ctx ends before the commit is confirmed, the error wraps ctx's error and the
// outcome is unknown: the events may be in the log.
func (d *Disk) Append(ctx context.Context, drafts []event.Draft) ([]event.ID, error) {
	if len(drafts) == 0 {
		return nil, nil
	}
	r := d.submit(ctx, &appendReq{drafts: drafts})
	return r.ids, r.err
}

// Read returns up to limit events after after, with the bounds, both from one consistent view of
// the database (a Pebble iterator sees the state of one moment). Records that cannot be decoded
// are skipped and reported (DiskOptions.OnInvalid); Next moves past them.
//
// The view may include a batch the appender committed whose fsync has not finished: Read leaves
// out events past the last synced one (and reports that as Last), so no reader ever sees an event
// that a crash could still take back.
func (d *Disk) Read(ctx context.Context, after event.ID, limit int) (streams.Page, error) {
	page := streams.Page{Next: after}
	if err := ctx.Err(); err != nil {
		return page, err
	}
	d.mu.Lock()
	syncedBounds := d.bounds
	d.mu.Unlock()
	synced := syncedBounds.Last
	err := d.use("read", func(db *pebble.DB) error {
		it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixBounds}, UpperBound: []byte{prefixEvent + 1}})
		if err != nil {
			return err
		}
		defer it.Close()
		if it.SeekGE([]byte{prefixBounds}) && len(it.Key()) == 1 && it.Key()[0] == prefixBounds {
			b, err := decodeBounds(it.Value())
			if err != nil {
				return err
			}
			switch {
			case synced.Less(b.First):
				// Every event in view is unsynced (a staged batch trimmed the rest): the
				// synced state is the answer, with no events.
				page.Bounds = syncedBounds.public()
				return it.Error()
			case synced.Less(b.Last):
				b.Last = synced
			}
			page.Bounds = b.public()
		}
		if limit <= 0 {
			return it.Error()
		}
		page.Events = make([]*event.Event, 0, min(limit, 256))
		for ok := it.SeekGE(eventKey(after)); ok && len(page.Events) < limit; ok = it.Next() {
			id, err := eventKeyID(it.Key())
			if err != nil {
				break // past the events
			}
			if !after.Less(id) {
				continue
			}
			if synced.Less(id) {
				break
			}
			page.Next = id
			ev, err := decodeRecord(it.Key(), it.Value())
			if err != nil {
				d.invalid(it.Key(), err)
				continue
			}
			page.Events = append(page.Events, ev)
		}
		return it.Error()
	})
	if err != nil {
		return streams.Page{Next: after}, diskFail(ctx, "read", err)
	}
	if len(page.Events) == 0 {
		page.Events = nil
	}
	return page, nil
}

// Bounds returns what the log holds, as last committed (kept in memory: the process is the only
// writer).
func (d *Disk) Bounds(ctx context.Context) (streams.Bounds, error) {
	if err := ctx.Err(); err != nil {
		return streams.Bounds{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.bounds.public(), nil
}

// Tail waits until events after after exist (or the poll interval passes, or ctx ends) and
// returns up to limit of them with the bounds of the same moment. It serves them from the
// in-memory ring of the newest events, filled by the appender after each commit: live fan-out
// never reads the disk. Only a reader further behind than the ring reads the disk (Read).
func (d *Disk) Tail(ctx context.Context, after event.ID, limit int) (streams.Page, error) {
	page := streams.Page{Next: after}
	if err := ctx.Err(); err != nil {
		return page, err
	}
	limit = max(limit, 1)
	timer := time.NewTimer(d.opts.Poll)
	defer timer.Stop()
	for {
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			return page, fmt.Errorf("disk tail: %w: store closed", streams.ErrUnavailable)
		}
		p, covered := d.tailLocked(after, limit)
		wake := d.wake
		d.mu.Unlock()
		switch {
		case !covered:
			return d.Read(ctx, after, limit)
		case len(p.Events) > 0:
			return p, nil
		}
		if done, err := awaitWake(ctx, wake, timer); done {
			return p, err
		}
	}
}

// tailLocked returns the page after after from the ring; covered is false when the log may hold
// events after after that the ring does not (the reader is behind the ring). Caller holds mu.
func (d *Disk) tailLocked(after event.ID, limit int) (streams.Page, bool) {
	p := streams.Page{Next: after, Bounds: d.bounds.public()}
	r := &d.ring
	if r.n == 0 {
		return p, true // nothing valid appended: the next append wakes the reader
	}
	if oldest := r.at(0).ID; oldest != d.bounds.First && after.Less(oldest.Prev()) {
		return p, false
	}
	i := sort.Search(r.n, func(i int) bool { return after.Less(r.at(i).ID) })
	k := min(limit, r.n-i)
	if k <= 0 {
		return p, true
	}
	p.Events = make([]*event.Event, k)
	for j := range k {
		p.Events[j] = r.at(i + j)
	}
	p.Next = p.Events[k-1].ID
	return p, true
}

// use runs f with the database unless the store is closed.
func (d *Disk) use(op string, f func(db *pebble.DB) error) error {
	d.dbMu.RLock()
	defer d.dbMu.RUnlock()
	if d.dbClosed {
		return fmt.Errorf("disk %s: %w: store closed", op, streams.ErrUnavailable)
	}
	return f(d.db)
}
