package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// Fault injection for the disk store's attack tests: a file system whose write-ahead log syncs
// can be held or failed, and small helpers shared by log_disk_append_attack_test.go and
// log_disk_crash_attack_test.go.

// walFS wraps a Pebble file system and calls onSync, when set, before every sync of a
// write-ahead log file: it can hold the fsync (to look at the store while a commit waits for it)
// or fail it (a disk error).
type walFS struct {
	vfs.FS
	onSync atomic.Pointer[func() error]
}

func (w *walFS) setOnSync(f func() error) { w.onSync.Store(&f) }

func (w *walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &walFile{File: f, fs: w}, nil
}

func (w *walFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.Create(name, c)
	return w.wrap(name, f, err)
}

func (w *walFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := w.FS.ReuseForWrite(oldname, newname, c)
	return w.wrap(newname, f, err)
}

func (w *walFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := w.FS.OpenReadWrite(name, c, opts...)
	return w.wrap(name, f, err)
}

type walFile struct {
	vfs.File
	fs *walFS
}

func (f *walFile) before() error {
	if h := f.fs.onSync.Load(); h != nil && *h != nil {
		return (*h)()
	}
	return nil
}

func (f *walFile) Sync() error {
	if err := f.before(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *walFile) SyncData() error {
	if err := f.before(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *walFile) SyncTo(n int64) (bool, error) {
	if err := f.before(); err != nil {
		return false, err
	}
	return f.File.SyncTo(n)
}

// openDiskOn opens a disk store on fs as OpenDisk does on the real disk (the marker file left
// out): the attacks below need to hold, fail or crash the write-ahead log.
func openDiskOn(t testing.TB, fs vfs.FS, opts DiskOptions) *Disk {
	t.Helper()
	opts = opts.withDefaults()
	const dir = "/data"
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := pebble.LockDirectory(dir, fs)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := &Disk{lock: lock, dir: dir, opts: opts, logger: logger}
	d.db, err = pebble.Open(dir, &pebble.Options{FS: fs, Lock: lock, Logger: pebbleLogger{logger}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.load(); err != nil {
		t.Fatal(err)
	}
	d.start()
	return d
}

// syncGate holds write-ahead log syncs once armed: entered receives when a sync waits, release
// lets it (and every later one) through.
type syncGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newSyncGate(fs *walFS) *syncGate {
	g := &syncGate{entered: make(chan struct{}, 1), release: make(chan struct{})}
	fs.setOnSync(func() error {
		if g.armed.Load() {
			select {
			case g.entered <- struct{}{}:
			default:
			}
			<-g.release
		}
		return nil
	})
	return g
}

func (g *syncGate) open() { g.once.Do(func() { close(g.release) }) }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitQueued waits until n requests are queued for the appender.
func waitQueued(t testing.TB, d *Disk, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d queued appends", n), func() bool { return len(d.reqs) >= n })
}

// await returns what ch carries, failing the test after a deadline (nothing may hang).
func await[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: hangs", what)
		panic("unreachable")
	}
}

type appendOutcome struct {
	ids   []event.ID
	prior []byte
	err   error
}

// appendAsync appends ds on a goroutine of its own; the channel gets the outcome.
func appendAsync(ctx context.Context, d *Disk, ds []event.Draft) chan appendOutcome {
	ch := make(chan appendOutcome, 1)
	go func() {
		ids, err := d.Append(ctx, ds)
		ch <- appendOutcome{ids: ids, err: err}
	}()
	return ch
}

func drafts(t testing.TB, n int) []event.Draft {
	t.Helper()
	out := make([]event.Draft, n)
	for i := range out {
		d, err := event.ParseDraft(fmt.Appendf(nil, `{"type":"queue.status","data":{"pending":%d,"active":0}}`, i))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// readAll reads the whole log from the start and checks that IDs strictly increase.
func readAll(t testing.TB, d *Disk) ([]event.ID, streams.Bounds) {
	t.Helper()
	var ids []event.ID
	var bounds streams.Bounds
	after := event.ID{}
	for {
		p, err := d.Read(context.Background(), after, 500)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			bounds = p.Bounds
		}
		for _, e := range p.Events {
			if len(ids) > 0 && !ids[len(ids)-1].Less(e.ID) {
				t.Fatalf("Read: %s after %s: IDs not strictly increasing", e.ID, ids[len(ids)-1])
			}
			ids = append(ids, e.ID)
		}
		if len(p.Events) == 0 {
			return ids, bounds
		}
		after = p.Next
	}
}

// gatedDisk opens a disk store on an in-memory file system whose syncs a syncGate can hold; the
// gate opens and the store closes at cleanup.
func gatedDisk(t testing.TB) (*Disk, *syncGate) {
	fs := &walFS{FS: vfs.NewMem()}
	gate := newSyncGate(fs)
	d := openDiskOn(t, fs, DiskOptions{Poll: 20 * time.Millisecond})
	t.Cleanup(func() { gate.open(); _ = d.Close() })
	return d, gate
}

// holdNextSync holds the next write-ahead log sync until release is closed (entered receives
// when it waits), then returns err from it; later syncs pass, or return after when it is set.
func holdNextSync(fs *walFS, err, after error) (entered chan struct{}, release chan struct{}) {
	entered, release = make(chan struct{}, 1), make(chan struct{})
	var held atomic.Bool
	fs.setOnSync(func() error {
		if held.CompareAndSwap(false, true) {
			entered <- struct{}{}
			<-release
			return err
		}
		return after
	})
	return entered, release
}
