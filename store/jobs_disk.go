package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
)

var _ jobs.Store = (*DiskJobs)(nil)

// DiskJobs keeps folded job and queue state in a disk store, each job for ttl after its last
// update. Safe for concurrent use.
//
// Writes are not synced (the projector folds every job event: an fsync each would compete with
// the log's). Pebble's write-ahead log is written in commit order and recovered as a prefix, so a
// cursor that survives a crash has every state written before it; a crash loses at most what was
// folded after the last cursor on disk, which the projector folds again from the log. The log's
// own syncs make them durable soon after.
type DiskJobs struct {
	d   *Disk
	ttl time.Duration
}

// NewDiskJobs returns the job state of d, expiring ttl after each job's last update.
func NewDiskJobs(d *Disk, ttl time.Duration) *DiskJobs { return &DiskJobs{d: d, ttl: ttl} }

func jobKey(id string) []byte { return append([]byte{prefixJob}, id...) }

// job reads a job's stored value: its expiry and state. Caller holds jobsMu when it will write.
func (j *DiskJobs) job(db *pebble.DB, id string) (st jobs.State, expires int64, ok bool, err error) {
	v, closer, err := db.Get(jobKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return st, 0, false, nil
	}
	if err != nil {
		return st, 0, false, err
	}
	defer closer.Close()
	if len(v) < 8 {
		return st, 0, false, fmt.Errorf("job %q: %w", id, errBadRecord)
	}
	expires = int64(binary.BigEndian.Uint64(v))
	if expires <= time.Now().UnixMilli() {
		return st, expires, false, nil
	}
	if err := json.Unmarshal(v[8:], &st); err != nil {
		return st, expires, false, fmt.Errorf("job %q: %w", id, err)
	}
	return st, expires, true, nil
}

// Job returns a job's state.
func (j *DiskJobs) Job(ctx context.Context, id string) (st jobs.State, ok bool, err error) {
	err = j.d.use("job read", func(db *pebble.DB) error {
		st, _, ok, err = j.job(db, id)
		return err
	})
	if err != nil {
		return jobs.State{}, false, diskFail(ctx, "job read", err)
	}
	return st, ok, nil
}

// SwapJob stores next if the stored last event id is still prev, refreshing its expiry.
func (j *DiskJobs) SwapJob(ctx context.Context, prev string, next jobs.State) (swapped bool, err error) {
	raw, err := json.Marshal(next)
	if err != nil {
		return false, err
	}
	j.d.jobsMu.Lock()
	defer j.d.jobsMu.Unlock()
	err = j.d.use("job write", func(db *pebble.DB) error {
		cur, oldExp, _, err := j.job(db, next.JobID)
		if err != nil || cur.LastEventID != prev {
			return err
		}
		swapped = true
		exp := time.Now().Add(j.ttl)
		wb := db.NewBatch()
		defer wb.Close()
		if oldExp != 0 {
			_ = wb.Delete(expiryKey(prefixJobExpiry, time.UnixMilli(oldExp), next.JobID), nil)
		}
		_ = wb.Set(expiryKey(prefixJobExpiry, exp, next.JobID), nil, nil)
		_ = wb.Set(jobKey(next.JobID), receiptValue(raw, exp), nil)
		return wb.Commit(pebble.NoSync)
	})
	if err != nil {
		return false, diskFail(ctx, "job write", err)
	}
	return swapped, nil
}

// Queue returns the latest queue state.
func (j *DiskJobs) Queue(ctx context.Context) (st jobs.QueueState, ok bool, err error) {
	err = j.d.use("queue read", func(db *pebble.DB) error {
		st, ok, err = queueState(db)
		return err
	})
	if err != nil {
		return jobs.QueueState{}, false, diskFail(ctx, "queue read", err)
	}
	return st, ok, nil
}

func queueState(db *pebble.DB) (st jobs.QueueState, ok bool, err error) {
	v, closer, err := db.Get([]byte{prefixQueue})
	if errors.Is(err, pebble.ErrNotFound) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	defer closer.Close()
	if err := json.Unmarshal(v, &st); err != nil {
		return st, false, fmt.Errorf("queue state: %w", err)
	}
	return st, true, nil
}

// SwapQueue stores next if the stored last event id is still prev.
func (j *DiskJobs) SwapQueue(ctx context.Context, prev string, next jobs.QueueState) (swapped bool, err error) {
	raw, err := json.Marshal(next)
	if err != nil {
		return false, err
	}
	j.d.jobsMu.Lock()
	defer j.d.jobsMu.Unlock()
	err = j.d.use("queue write", func(db *pebble.DB) error {
		cur, _, err := queueState(db)
		if err != nil || cur.LastEventID != prev {
			return err
		}
		swapped = true
		return db.Set([]byte{prefixQueue}, raw, pebble.NoSync)
	})
	if err != nil {
		return false, diskFail(ctx, "queue write", err)
	}
	return swapped, nil
}

// Cursor returns the folded position.
func (j *DiskJobs) Cursor(ctx context.Context) (id event.ID, err error) {
	err = j.d.use("jobs cursor read", func(db *pebble.DB) error {
		id, err = jobsCursor(db)
		return err
	})
	if err != nil {
		return event.ID{}, diskFail(ctx, "jobs cursor read", err)
	}
	return id, nil
}

func jobsCursor(db *pebble.DB) (event.ID, error) {
	v, closer, err := db.Get([]byte{prefixJobsCursor})
	if errors.Is(err, pebble.ErrNotFound) {
		return event.ID{}, nil
	}
	if err != nil {
		return event.ID{}, err
	}
	defer closer.Close()
	id, ok := readID(v)
	if !ok {
		return event.ID{}, fmt.Errorf("jobs cursor: %w", errBadRecord)
	}
	return id, nil
}

// SetCursor records the folded position (never moving it back); not synced (see DiskJobs).
func (j *DiskJobs) SetCursor(ctx context.Context, id event.ID) error {
	j.d.jobsMu.Lock()
	defer j.d.jobsMu.Unlock()
	err := j.d.use("jobs cursor write", func(db *pebble.DB) error {
		cur, err := jobsCursor(db)
		if err != nil || !cur.Less(id) {
			return err
		}
		return db.Set([]byte{prefixJobsCursor}, appendID(nil, id), pebble.NoSync)
	})
	if err != nil {
		return diskFail(ctx, "jobs cursor write", err)
	}
	return nil
}
