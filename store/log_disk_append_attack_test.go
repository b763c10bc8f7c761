package store

import (
	"bytes"
	"context"
	"errors"
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
	if opts.Poll <= 0 {
		opts.Poll = defaultMemoryPoll
	}
	if opts.TailSize <= 0 {
		opts.TailSize = 4096
	}
	if opts.Retention > 0 {
		opts.TailSize = min(opts.TailSize, opts.Retention)
	}
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
	d.reqs = make(chan *appendReq, 1024)
	d.closing = make(chan struct{})
	d.stopped = make(chan struct{})
	d.wake = make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(d.appender)
	wg.Go(d.janitor)
	go func() { wg.Wait(); close(d.stopped) }()
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

// TestDiskUnsyncedCommitInvisibleAttack: while a group's fsync is held, the commit is in Pebble
// (visible to its iterators) but Read, Tail and Bounds must not show it, and its caller must not
// hear of it; once the fsync returns, all three show it.
func TestDiskUnsyncedCommitInvisibleAttack(t *testing.T) {
	t.Parallel()
	fs := &walFS{FS: vfs.NewMem()}
	gate := newSyncGate(fs)
	d := openDiskOn(t, fs, DiskOptions{Poll: 20 * time.Millisecond})
	defer gate.open()
	t.Cleanup(func() { _ = d.Close() })
	ctx := t.Context()
	first, err := d.Append(ctx, drafts(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	gate.armed.Store(true)
	done := make(chan appendOutcome, 1)
	three := drafts(t, 3)
	go func() {
		ids, err := d.Append(ctx, three)
		done <- appendOutcome{ids: ids, err: err}
	}()
	await(t, "the held fsync", gate.entered)
	// The commit is in Pebble's memtable now: a raw iterator would see it.
	for range 3 {
		p, err := d.Read(ctx, event.ID{}, 100)
		if err != nil || len(p.Events) != 1 || p.Bounds.Last != first[0] || d.Stats().Events != 1 {
			t.Fatalf("Read during the fsync: %d events, bounds %+v, %v; want only %s", len(p.Events), p.Bounds, err, first[0])
		}
		tp, err := d.Tail(ctx, first[0], 100)
		if err != nil || len(tp.Events) != 0 {
			t.Fatalf("Tail during the fsync: %d events, %v; want none", len(tp.Events), err)
		}
		if b, _ := d.Bounds(ctx); b.Last != first[0] {
			t.Fatalf("Bounds during the fsync: Last %s, want %s", b.Last, first[0])
		}
		select {
		case r := <-done:
			t.Fatalf("the caller heard %+v before the fsync", r)
		default:
		}
	}
	gate.open()
	r := await(t, "the append", done)
	if r.err != nil || len(r.ids) != 3 {
		t.Fatalf("append: %+v", r)
	}
	ids, b := readAll(t, d)
	if len(ids) != 4 || ids[3] != r.ids[2] || b.Last != r.ids[2] {
		t.Fatalf("after the fsync: %v, bounds %+v", ids, b)
	}
}

// TestDiskGroupCommitAttack: requests queued behind a held fsync go out as one group: a
// repeated key gets the first request's IDs, a request whose context ends while queued is not
// appended, IDs keep increasing, and a key seen again in a later group gets the same receipt.
func TestDiskGroupCommitAttack(t *testing.T) {
	t.Parallel()
	fs := &walFS{FS: vfs.NewMem()}
	gate := newSyncGate(fs)
	d := openDiskOn(t, fs, DiskOptions{Poll: 20 * time.Millisecond})
	defer gate.open()
	t.Cleanup(func() { _ = d.Close() })
	rec := NewDiskReceipts(d)
	ctx := t.Context()
	gate.armed.Store(true)
	head := make(chan appendOutcome, 1)
	one := drafts(t, 1)
	go func() {
		ids, err := d.Append(ctx, one)
		head <- appendOutcome{ids: ids, err: err}
	}()
	await(t, "the held fsync", gate.entered)

	type req struct {
		name   string
		key    string
		n      int
		cancel bool // its context ends while it is queued
	}
	reqs := []req{
		{name: "once K", key: "K", n: 2},
		{name: "plain", n: 1},
		{name: "once K again", key: "K", n: 5},
		{name: "cancelled", n: 3, cancel: true},
		{name: "cancelled once L", key: "L", n: 1, cancel: true},
		{name: "once L", key: "L", n: 1},
		{name: "once K thrice", key: "K", n: 1},
	}
	outs := make([]chan appendOutcome, len(reqs))
	cancels := make([]context.CancelFunc, len(reqs))
	for i, r := range reqs {
		rctx, cancel := context.WithCancel(ctx)
		cancels[i] = cancel
		outs[i] = make(chan appendOutcome, 1)
		ds := drafts(t, r.n)
		go func() {
			var o appendOutcome
			if r.key != "" {
				o.ids, o.prior, _, o.err = rec.AppendOnce(rctx, d, r.key, ds, time.Hour)
			} else {
				o.ids, o.err = d.Append(rctx, ds)
			}
			outs[i] <- o
		}()
		waitQueued(t, d, i+1) // one at a time: the queue's order is the table's
	}
	for i, r := range reqs {
		if r.cancel {
			cancels[i]()
		}
	}
	got := make([]appendOutcome, len(reqs))
	for i, r := range reqs {
		if r.cancel {
			got[i] = await(t, r.name, outs[i])
		}
	}
	gate.open()
	h := await(t, "the first append", head)
	if h.err != nil {
		t.Fatal(h.err)
	}
	for i, r := range reqs {
		if !r.cancel {
			got[i] = await(t, r.name, outs[i])
		}
		cancels[i]()
	}
	last := h.ids[0]
	var want []event.ID
	want = append(want, h.ids...)
	for i, r := range reqs {
		o := got[i]
		switch {
		case r.cancel:
			if !errors.Is(o.err, context.Canceled) {
				t.Errorf("%s: %+v, want context.Canceled", r.name, o)
			}
		case r.name == "once K again" || r.name == "once K thrice":
			if o.err != nil || o.ids != nil || !bytes.Equal(o.prior, streams.ReceiptBody(got[0].ids)) {
				t.Errorf("%s: ids %v prior %s err %v; want the first K's receipt %s", r.name, o.ids, o.prior, o.err, streams.ReceiptBody(got[0].ids))
			}
		default:
			if o.err != nil || len(o.ids) != r.n {
				t.Errorf("%s: %+v", r.name, o)
				continue
			}
			for _, id := range o.ids {
				if !last.Less(id) {
					t.Errorf("%s: id %s not after %s", r.name, id, last)
				}
				last = id
			}
			want = append(want, o.ids...)
		}
	}
	ids, b := readAll(t, d)
	if n := d.Stats().Events; fmt.Sprint(ids) != fmt.Sprint(want) || n != int64(len(want)) || b.Last != want[len(want)-1] {
		t.Fatalf("log holds %v (count %d, last %s), want %v (the cancelled requests left out)", ids, n, b.Last, want)
	}
	// A later group: K and L answer with their receipts, nothing is appended.
	for _, k := range []struct {
		key  string
		body []byte
	}{{"K", streams.ReceiptBody(got[0].ids)}, {"L", streams.ReceiptBody(got[5].ids)}} {
		ids, prior, ok, err := rec.AppendOnce(ctx, d, k.key, drafts(t, 1), time.Hour)
		if !ok || err != nil || ids != nil || !bytes.Equal(prior, k.body) {
			t.Errorf("AppendOnce(%s) later: ids %v prior %s err %v; want %s", k.key, ids, prior, err, k.body)
		}
	}
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

// TestDiskCloseFailsQueuedAttack: appends queued while Close runs fail with ErrUnavailable
// (Close: "appends queued behind it fail"), even when the appender is busy with an fsync as
// Close starts and finds them queued afterwards. Several rounds: the appender must not pick
// between the queue and the closing signal by chance.
func TestDiskCloseFailsQueuedAttack(t *testing.T) {
	t.Parallel()
	for round := range 12 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			t.Parallel()
			fs := &walFS{FS: vfs.NewMem()}
			d := openDiskOn(t, fs, DiskOptions{Poll: 20 * time.Millisecond})
			ctx := t.Context()
			entered, release := holdNextSync(fs, nil, nil)
			head := make(chan appendOutcome, 1)
			ds := drafts(t, 1)
			go func() {
				ids, err := d.Append(ctx, ds)
				head <- appendOutcome{ids: ids, err: err}
			}()
			await(t, "the held fsync", entered)
			var queued []chan appendOutcome
			for i := range 3 {
				ch := make(chan appendOutcome, 1)
				queued = append(queued, ch)
				ds := drafts(t, 2)
				go func() {
					ids, err := d.Append(ctx, ds)
					ch <- appendOutcome{ids: ids, err: err}
				}()
				waitQueued(t, d, i+1)
			}
			closed := make(chan error, 1)
			go func() { closed <- d.Close() }()
			waitFor(t, "Close to start", func() bool {
				select {
				case <-d.closing:
					return true
				default:
					return false
				}
			})
			close(release)
			if o := await(t, "the append being synced", head); o.err != nil {
				t.Errorf("the append whose fsync ran as Close started: %v", o.err)
			}
			for i, ch := range queued {
				if o := await(t, fmt.Sprintf("queued append %d", i), ch); !errors.Is(o.err, streams.ErrUnavailable) {
					t.Errorf("queued append %d: ids %v err %v; want ErrUnavailable (the store was closing)", i, o.ids, o.err)
				}
			}
			await(t, "Close", closed)
		})
	}
}

// TestDiskAckedSurvivesCrashAttack: concurrent publishers (plain and idempotent) run while the
// machine "crashes" (a copy of the file system keeping only what was synced). Every append
// acknowledged before the crash is in the log after reopening, with its receipt; IDs increase
// strictly across the restart.
func TestDiskAckedSurvivesCrashAttack(t *testing.T) {
	t.Parallel()
	mem := vfs.NewCrashableMem()
	d := openDiskOn(t, mem, DiskOptions{Poll: 20 * time.Millisecond})
	rec := NewDiskReceipts(d)
	ctx := t.Context()
	var (
		mu       sync.Mutex
		acked    []event.ID
		receipts = map[string][]byte{}
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	const publishers = 8
	ds := make([][]event.Draft, publishers)
	for p := range publishers {
		ds[p] = drafts(t, 1+p%3)
	}
	for p := range publishers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				var ids []event.ID
				var prior []byte
				var err error
				key := ""
				if p%2 == 0 {
					key = fmt.Sprintf("p%d-%d", p, i/2) // every key twice in a row: the second is a repeat
					ids, prior, _, err = rec.AppendOnce(ctx, d, key, ds[p], time.Hour)
				} else {
					ids, err = d.Append(ctx, ds[p])
				}
				if err != nil {
					if stop.Load() && errors.Is(err, streams.ErrUnavailable) {
						return
					}
					t.Errorf("publisher %d: %v", p, err)
					return
				}
				mu.Lock()
				acked = append(acked, ids...)
				if key != "" {
					body := prior
					if ids != nil {
						body = streams.ReceiptBody(ids)
					}
					if was, ok := receipts[key]; ok && !bytes.Equal(was, body) {
						t.Errorf("key %s answered %s, then %s", key, was, body)
					}
					receipts[key] = body
				}
				mu.Unlock()
			}
		})
	}
	waitFor(t, "200 acknowledged events", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 200 })
	mu.Lock() // nothing is acknowledged while the crash image is taken
	crashed := mem.CrashClone(vfs.CrashCloneCfg{})
	ackedBefore := append([]event.ID(nil), acked...)
	receiptsBefore := make(map[string][]byte, len(receipts))
	for k, v := range receipts {
		receiptsBefore[k] = v
	}
	mu.Unlock()
	stop.Store(true)
	_ = d.Close()
	wg.Wait()

	r := openDiskOn(t, crashed, DiskOptions{Poll: 20 * time.Millisecond})
	t.Cleanup(func() { _ = r.Close() })
	ids, _ := readAll(t, r)
	have := make(map[event.ID]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	lost := 0
	for _, id := range ackedBefore {
		if !have[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d events acknowledged before the crash are not in the log after it", lost, len(ackedBefore))
	}
	rrec := NewDiskReceipts(r)
	for key, body := range receiptsBefore {
		ids, prior, _, err := rrec.AppendOnce(ctx, r, key, drafts(t, 1), time.Hour)
		if err != nil || ids != nil || !bytes.Equal(prior, body) {
			t.Fatalf("key %s after the crash: ids %v prior %s err %v; want %s", key, ids, prior, err, body)
		}
	}
	next, err := r.Append(ctx, drafts(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	if !ids[len(ids)-1].Less(next[0]) {
		t.Fatalf("first ID after the crash %s is not after the log's last %s", next[0], ids[len(ids)-1])
	}
}

// TestDiskTrimAcrossGroupsAttack: retention trimming stays exact when groups of several
// requests commit at once, when one group alone is larger than the retention (its own first
// events are never written) and across a reopen: the log is always a contiguous suffix of what
// was appended, its bounds and count say so, and Tail (the ring) agrees with Read (the disk).
func TestDiskTrimAcrossGroupsAttack(t *testing.T) {
	t.Parallel()
	const retention = 10 // slack 1: trimmed back to 10 past 11
	groups := [][]int{
		{3}, {4, 4}, {2, 1, 1}, {12}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {5, 20}, {1}, {11}, {6, 6}, {1, 2, 3, 4, 5},
	}
	fs := &walFS{FS: vfs.NewMem()}
	d := openDiskOn(t, fs, DiskOptions{Retention: retention, Poll: 20 * time.Millisecond})
	ctx := t.Context()
	var all []event.ID
	check := func(d *Disk, when string) {
		t.Helper()
		ids, b := readAll(t, d)
		n := len(ids)
		if n == 0 || n > retention+int(trimSlack(retention)) || int64(n) != d.Stats().Events {
			t.Fatalf("%s: %d events in the log, count %d", when, n, d.Stats().Events)
		}
		if fmt.Sprint(ids) != fmt.Sprint(all[len(all)-n:]) {
			t.Fatalf("%s: log %v is not the newest %d of %v", when, ids, n, all)
		}
		if b.First != ids[0] || b.Last != all[len(all)-1] {
			t.Fatalf("%s: bounds %+v, log %s..%s", when, b, ids[0], all[len(all)-1])
		}
		if trimmed := len(all) > n; trimmed && (b.MaxDeleted != all[len(all)-n-1] || !b.Trimmed) {
			t.Fatalf("%s: bounds %+v, want MaxDeleted %s", when, b, all[len(all)-n-1])
		}
		for k := -1; k < n; k++ {
			after := b.MaxDeleted
			if k >= 0 {
				after = ids[k]
			}
			if k == n-1 {
				continue // Tail would wait for the poll
			}
			p, err := d.Tail(ctx, after, 100)
			if err != nil {
				t.Fatalf("%s: Tail(%s): %v", when, after, err)
			}
			var got []event.ID
			for _, e := range p.Events {
				got = append(got, e.ID)
			}
			if fmt.Sprint(got) != fmt.Sprint(ids[k+1:]) {
				t.Fatalf("%s: Tail(%s) = %v, want %v", when, after, got, ids[k+1:])
			}
		}
	}
	for gi, g := range groups {
		entered, release := holdNextSync(fs, nil, nil)
		outs := make([]chan appendOutcome, len(g))
		for i, n := range g {
			outs[i] = make(chan appendOutcome, 1)
			ds := drafts(t, n)
			go func() {
				ids, err := d.Append(ctx, ds)
				outs[i] <- appendOutcome{ids: ids, err: err}
			}()
			if i == 0 {
				await(t, "the held fsync", entered)
			} else {
				waitQueued(t, d, i)
			}
		}
		close(release)
		for i, ch := range outs {
			o := await(t, "an append", ch)
			if o.err != nil || len(o.ids) != g[i] {
				t.Fatalf("group %d append %d: %+v", gi, i, o)
			}
			if len(all) > 0 && !all[len(all)-1].Less(o.ids[0]) {
				t.Fatalf("group %d: id %s not after %s", gi, o.ids[0], all[len(all)-1])
			}
			all = append(all, o.ids...)
		}
		check(d, fmt.Sprintf("after group %d %v", gi, g))
	}
	fs.setOnSync(nil)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	r := openDiskOn(t, fs, DiskOptions{Retention: retention, Poll: 20 * time.Millisecond})
	t.Cleanup(func() { _ = r.Close() })
	check(r, "after reopening")
}

// TestDiskCloseRacingAppendsAttack: publishers keep appending while Close runs on the real
// disk. Each append either succeeds or fails with ErrUnavailable, none hangs, and after
// reopening every acknowledged event is in the log, IDs strictly increasing.
func TestDiskCloseRacingAppendsAttack(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d, err := OpenDisk(dir, DiskOptions{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		acked []event.ID
		wg    sync.WaitGroup
	)
	ds := drafts(t, 2)
	for p := range 8 {
		wg.Go(func() {
			for {
				ids, err := d.Append(context.Background(), ds)
				if err != nil {
					if !errors.Is(err, streams.ErrUnavailable) {
						t.Errorf("publisher %d: %v, want ErrUnavailable once closed", p, err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, ids...)
				mu.Unlock()
			}
		})
	}
	waitFor(t, "some acknowledged events", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 50 })
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	if err := await(t, "Close", closed); err != nil {
		t.Fatal(err)
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	await(t, "the publishers", all)
	r, err := OpenDisk(dir, DiskOptions{Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	ids, _ := readAll(t, r)
	have := make(map[event.ID]bool, len(ids))
	for _, id := range ids {
		have[id] = true
	}
	for _, id := range acked {
		if !have[id] {
			t.Fatalf("acknowledged %s is not in the log after Close and reopen", id)
		}
	}
	if len(ids) != len(acked) {
		t.Fatalf("the log holds %d events, %d were acknowledged: an append that failed was written", len(ids), len(acked))
	}
}
