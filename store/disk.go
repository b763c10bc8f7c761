package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// The disk store keeps the log and its companions in one Pebble database in a folder of its own
// (EVENTGATE_DATA_DIR). Pebble is a log-structured store: a synced commit is one append to its
// write-ahead log and one fsync, and a batch is one WAL record, so a process killed mid-commit
// leaves either the whole batch or none of it.
//
// Keys are one prefix byte and a body:
//
//	'b'                         the log's bounds (diskBounds)
//	'e' <ms:8> <seq:8>          an event record (disk_record.go)
//	'r' <key>                   an idempotency receipt: <expires ms:8> <response> (empty: in flight)
//	'R' <expires ms:8> <key>    the receipts' expiry index
//	'j' <job id>                a job's folded state: <expires ms:8> <JSON>
//	'J' <expires ms:8> <job id> the jobs' expiry index
//	'q'                         the queue state (JSON)
//	'c'                         the jobs projector's cursor <ms:8> <seq:8>
//	'w' <hook id>               a webhook endpoint (JSON)
//	't' <n:1> <hook id> <ms:8> <seq:8>   a webhook retry (JSON)
//	'd' <n:1> <hook id> <seq:8>          a webhook delivery record (JSON)
const (
	prefixBounds         = 'b'
	prefixEvent          = 'e'
	prefixReceipt        = 'r'
	prefixReceiptExpiry  = 'R'
	prefixJob            = 'j'
	prefixJobExpiry      = 'J'
	prefixQueue          = 'q'
	prefixJobsCursor     = 'c'
	prefixWebhook        = 'w'
	prefixWebhookRetry   = 't'
	prefixWebhookHistory = 'd'
)

// DiskMarker is the file that makes a folder an eventgate data folder. It holds the store's
// format and the log's identity, a random id made when the folder's log was created: a replaced
// folder has another.
const DiskMarker = "EVENTGATE"

// diskFormat is the version of the key layout and record encoding.
const diskFormat = 1

var (
	// ErrDiskLocked is returned by OpenDisk when another process (or another OpenDisk in this
	// one) holds the folder: one process per folder.
	ErrDiskLocked = errors.New("the data folder is in use by another process")
	// ErrDiskUnreadable is returned by OpenDisk when the folder's files cannot be read as an
	// eventgate store (corrupt, missing, or a folder of something else). The error names the
	// file; the store never starts on an empty log in their place.
	ErrDiskUnreadable = errors.New("the data folder cannot be read")
)

// DiskOptions are the optional settings of a disk store. The zero value is usable.
type DiskOptions struct {
	// Retention caps the log: past about Retention events, the oldest are trimmed (in steps of
	// up to a tenth of it, as Redis's MAXLEN ~ does). ≤ 0 disables trimming.
	Retention int
	// Poll bounds how long Tail waits for new events (default 2s).
	Poll time.Duration
	// TailSize is how many of the newest events are kept in memory for the hub's reader
	// (default 4096, at most Retention): live fan-out never reads the disk.
	TailSize int
	// Logger receives Pebble's messages (nil: slog.Default()).
	Logger *slog.Logger
	// OnInvalid is called for every stored record that cannot be decoded, which is then skipped
	// (as store.RedisOptions.OnInvalid).
	OnInvalid func(id event.ID, err error)
	// OnCommit is called after every commit of the log with its duration (the fsync included)
	// and the number of events it appended. It runs on the appender goroutine: keep it fast.
	OnCommit func(d time.Duration, events int)
}

// Disk is a durable, capped streams.Log in a folder, with the companions the handlers need
// (NewDiskReceipts, NewDiskJobs, NewDiskWebhooks). One process owns the folder: OpenDisk takes
// an exclusive lock, and the process is the only writer, so the newest events and the bounds are
// also kept in memory.
//
// Appends go to one appender goroutine, which commits whatever is queued in one synced batch
// (group commit): Append returns after the events are on disk, and concurrent publishes share an
// fsync. Safe for concurrent use; Close ends it.
type Disk struct {
	db     *pebble.DB
	lock   *pebble.Lock
	dir    string
	logID  string
	opts   DiskOptions
	logger *slog.Logger

	reqs    chan *appendReq
	closing chan struct{}
	stopped chan struct{} // closed when the appender and janitor returned
	once    sync.Once

	// receiptsMu serialises the read-modify-write of receipts (the appender's AppendOnce and
	// Claim, Complete, Release); jobsMu that of job and queue state; hooks is the webhooks'
	// in-process state (leases) and serialises their changes.
	receiptsMu sync.Mutex
	jobsMu     sync.Mutex
	hooks      diskHooks

	// dbMu guards db against use after Close: every call from outside the appender holds it
	// for reading (use).
	dbMu     sync.RWMutex
	dbClosed bool

	mu     sync.Mutex    // guards the fields below
	bounds diskBounds    // what the log holds, as last committed
	ring   eventRing     // the newest events, for Tail
	wake   chan struct{} // closed and replaced on every commit, waking Tail
	closed bool
	failed error // a write-ahead log sync failed: appends fail from then on

	trimmed int64 // events trimmed since open, for metrics (guarded by mu)
}

var _ streams.Log = (*Disk)(nil)

// diskMarker is the marker file's content.
type diskMarker struct {
	Format  int       `json:"format"`
	LogID   string    `json:"log_id"`
	Created time.Time `json:"created"`
}

// OpenDisk opens (or creates) the store in dir. A folder that is held by another process gives an
// error wrapping ErrDiskLocked at once; one that holds files but no readable store gives an error
// wrapping ErrDiskUnreadable that names the file.
func OpenDisk(dir string, opts DiskOptions) (*Disk, error) {
	opts = opts.withDefaults()
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDiskUnreadable, err)
	}
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDiskLocked, filepath.Join(dir, "LOCK"), err)
	}
	d := &Disk{lock: lock, dir: dir, opts: opts, logger: logger}
	if err := d.open(); err != nil {
		_ = lock.Close()
		return nil, err
	}
	d.start()
	return d, nil
}

// withDefaults fills in the options left zero.
func (o DiskOptions) withDefaults() DiskOptions {
	if o.Poll <= 0 {
		o.Poll = defaultMemoryPoll
	}
	if o.TailSize <= 0 {
		o.TailSize = 4096
	}
	if o.Retention > 0 {
		o.TailSize = min(o.TailSize, o.Retention)
	}
	return o
}

// start starts the appender and the janitor on an opened store.
func (d *Disk) start() {
	d.reqs = make(chan *appendReq, 1024)
	d.closing = make(chan struct{})
	d.stopped = make(chan struct{})
	d.wake = make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(d.appender)
	wg.Go(d.janitor)
	go func() { wg.Wait(); close(d.stopped) }()
}

// open reads the marker, opens Pebble and loads the bounds and the newest events.
func (d *Disk) open() error {
	markerPath := filepath.Join(d.dir, DiskMarker)
	raw, err := os.ReadFile(markerPath)
	create := false
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if name, err := firstForeignFile(d.dir); err != nil {
			return fmt.Errorf("%w: %w", ErrDiskUnreadable, err)
		} else if name != "" {
			return fmt.Errorf("%w: %s has no %s marker but holds %s: not an eventgate data folder, or one whose marker was lost", ErrDiskUnreadable, d.dir, DiskMarker, name)
		}
		create = true
	case err != nil:
		return fmt.Errorf("%w: %w", ErrDiskUnreadable, err)
	default:
		var m diskMarker
		if err := json.Unmarshal(raw, &m); err != nil || m.LogID == "" {
			return fmt.Errorf("%w: %s: not a valid marker", ErrDiskUnreadable, markerPath)
		}
		if m.Format != diskFormat {
			return fmt.Errorf("%w: %s: format %d, this version reads %d", ErrDiskUnreadable, markerPath, m.Format, diskFormat)
		}
		d.logID = m.LogID
	}
	d.db, err = pebble.Open(d.dir, &pebble.Options{
		Lock:             d.lock,
		Logger:           pebbleLogger{d.logger},
		ErrorIfExists:    create,
		ErrorIfNotExists: !create,
	})
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrDiskUnreadable, d.dir, err)
	}
	if create {
		if err := d.writeMarker(markerPath); err != nil {
			_ = d.db.Close()
			return fmt.Errorf("%w: %w", ErrDiskUnreadable, err)
		}
	}
	if err := d.load(); err != nil {
		_ = d.db.Close()
		return fmt.Errorf("%w: %s: %w", ErrDiskUnreadable, d.dir, err)
	}
	return nil
}

// firstForeignFile returns the name of an entry of dir other than Pebble's lock file ("" if
// none).
func firstForeignFile(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name() != "LOCK" {
			return e.Name(), nil
		}
	}
	return "", nil
}

// writeMarker writes the marker with a new log identity, durably (temporary file, fsync,
// rename, fsync of the folder).
func (d *Disk) writeMarker(path string) error {
	var id [16]byte
	_, _ = rand.Read(id[:])
	d.logID = hex.EncodeToString(id[:])
	raw, _ := json.Marshal(diskMarker{Format: diskFormat, LogID: d.logID, Created: time.Now().UTC()})
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err = f.Write(append(raw, '\n')); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	dirf, err := os.Open(d.dir)
	if err != nil {
		return err
	}
	defer dirf.Close()
	return dirf.Sync()
}

// load reads the bounds and fills the ring with the newest events.
func (d *Disk) load() error {
	raw, closer, err := d.db.Get([]byte{prefixBounds})
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return err
	default:
		d.bounds, err = decodeBounds(raw)
		_ = closer.Close()
		if err != nil {
			return err
		}
	}
	d.ring = newEventRing(d.opts.TailSize)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixEvent}, UpperBound: []byte{prefixEvent + 1}})
	if err != nil {
		return err
	}
	var newest []*event.Event
	for ok := it.Last(); ok && len(newest) < d.opts.TailSize; ok = it.Prev() {
		ev, err := decodeRecord(it.Key(), it.Value())
		if err != nil {
			d.invalid(it.Key(), err)
			continue
		}
		newest = append(newest, ev)
	}
	if err := it.Close(); err != nil {
		return err
	}
	for i := len(newest) - 1; i >= 0; i-- {
		d.ring.push(newest[i])
	}
	return nil
}

// Dir returns the data folder.
func (d *Disk) Dir() string { return d.dir }

// LogID returns the log's identity, made when the folder's log was created.
func (d *Disk) LogID() string { return d.logID }

// Ping reports whether the store is open.
func (d *Disk) Ping(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("disk: %w: closed", streams.ErrUnavailable)
	}
	if d.failed != nil {
		return fmt.Errorf("disk: %w: %w", streams.ErrUnavailable, d.failed)
	}
	return nil
}

// DiskStats are a disk store's figures for metrics.
type DiskStats struct {
	// Bytes is the size of the store's files.
	Bytes uint64
	// Events is the number of events in the log.
	Events int64
	// Trimmed is the number of events trimmed since the store was opened.
	Trimmed int64
}

// Stats returns the store's figures.
func (d *Disk) Stats() DiskStats {
	d.mu.Lock()
	s := DiskStats{Events: d.bounds.Count, Trimmed: d.trimmed}
	d.mu.Unlock()
	_ = d.use("stats", func(db *pebble.DB) error {
		s.Bytes = db.Metrics().DiskSpaceUsage()
		return nil
	})
	return s
}

// Close stops the appender (appends queued behind it fail) and closes the database and the
// folder's lock. It is safe to call more than once.
func (d *Disk) Close() error {
	var err error
	d.once.Do(func() {
		close(d.closing)
		<-d.stopped
		d.mu.Lock()
		d.closed = true
		close(d.wake)
		d.mu.Unlock()
		d.dbMu.Lock()
		d.dbClosed = true
		d.dbMu.Unlock()
		err = d.db.Close()
		if lerr := d.lock.Close(); err == nil {
			err = lerr
		}
	})
	return err
}

func (d *Disk) invalid(key []byte, err error) {
	id, _ := eventKeyID(key)
	err = fmt.Errorf("%w: %s record %s: %w", event.ErrInvalidEvent, d.dir, id, err)
	d.logger.Warn("skipping unreadable event record", "id", id.String(), "err", err)
	if d.opts.OnInvalid != nil {
		d.opts.OnInvalid(id, err)
	}
}

// diskFail wraps a database error as store unavailability (or the context's error).
func diskFail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("disk %s: %w", op, ctxErr)
	}
	return fmt.Errorf("disk %s: %w: %w", op, streams.ErrUnavailable, err)
}

// pebbleLogger sends Pebble's messages to slog: its routine notes at debug level.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("pebble: " + fmt.Sprintf(format, args...))
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error("pebble: " + fmt.Sprintf(format, args...))
}

// Fatalf is called for invariant violations Pebble cannot continue after.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := "pebble: " + fmt.Sprintf(format, args...)
	p.l.Error(msg)
	panic(msg)
}
