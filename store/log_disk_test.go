package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

// openDisk opens a disk store in dir, closed when t ends.
func openDisk(t testing.TB, dir string, opts store.DiskOptions) *store.Disk {
	t.Helper()
	if opts.Poll == 0 {
		opts.Poll = 200 * time.Millisecond
	}
	d, err := store.OpenDisk(dir, opts)
	if err != nil {
		t.Fatalf("OpenDisk(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestDiskLog(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, retention int) streams.Log {
		return openDisk(t, t.TempDir(), store.DiskOptions{Retention: retention})
	})
}

// TestDiskReopen: what was appended is there after the store is closed and opened again, with the
// same bounds, and new IDs keep increasing.
func TestDiskReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	d, err := store.OpenDisk(dir, store.DiskOptions{Retention: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := d.Append(ctx, storetest.Drafts(t, 50))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := d.Bounds(ctx)
	logID := d.LogID()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openDisk(t, dir, store.DiskOptions{Retention: 1000})
	if d.LogID() != logID || logID == "" {
		t.Fatalf("log id %q after reopening, want %q", d.LogID(), logID)
	}
	if b, _ := d.Bounds(ctx); b != before || b.Last != ids[49] {
		t.Fatalf("bounds after reopening %+v, want %+v", b, before)
	}
	p, err := d.Read(ctx, ids[9], 100)
	if err != nil || len(p.Events) != 40 || p.Events[0].ID != ids[10] || p.Bounds != before {
		t.Fatalf("Read after reopening: %d events, bounds %+v, err %v", len(p.Events), p.Bounds, err)
	}
	// The hub's reader, restarted at the last position it saw, is served from memory.
	tp, err := d.Tail(ctx, ids[47], 10)
	if err != nil || len(tp.Events) != 2 || tp.Events[1].ID != ids[49] {
		t.Fatalf("Tail after reopening: %d events, err %v", len(tp.Events), err)
	}
	if string(tp.Events[1].JSON) != string(p.Events[39].JSON) {
		t.Fatalf("ring and disk disagree: %s vs %s", tp.Events[1].JSON, p.Events[39].JSON)
	}
	more, err := d.Append(ctx, storetest.Drafts(t, 1))
	if err != nil || !ids[49].Less(more[0]) {
		t.Fatalf("append after reopening: %v, %v; want an id after %s", more, err, ids[49])
	}
}

// TestDiskOneProcessPerFolder: a second open of a folder in use fails at once with ErrDiskLocked,
// and the first keeps working.
func TestDiskOneProcessPerFolder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := openDisk(t, dir, store.DiskOptions{})
	start := time.Now()
	if _, err := store.OpenDisk(dir, store.DiskOptions{}); !errors.Is(err, store.ErrDiskLocked) {
		t.Fatalf("second OpenDisk: %v, want ErrDiskLocked", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("the refusal took %s", time.Since(start))
	}
	if _, err := d.Append(t.Context(), storetest.Drafts(t, 1)); err != nil {
		t.Fatalf("the first store after the refusal: %v", err)
	}
}

// TestDiskUnreadable: a folder that is not (or no longer) a readable store is an error naming
// what is wrong, never an empty log.
func TestDiskUnreadable(t *testing.T) {
	t.Parallel()
	populated := func(t *testing.T) string {
		dir := t.TempDir()
		d, err := store.OpenDisk(dir, store.DiskOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Append(t.Context(), storetest.Drafts(t, 3)); err != nil {
			t.Fatal(err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	tests := []struct {
		name  string
		setup func(t *testing.T) string
		want  string // in the error
	}{
		{"foreign folder", func(t *testing.T) string {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, "notes.txt"},
		{"marker lost", func(t *testing.T) string {
			dir := populated(t)
			if err := os.Remove(filepath.Join(dir, store.DiskMarker)); err != nil {
				t.Fatal(err)
			}
			return dir
		}, store.DiskMarker},
		{"marker corrupt", func(t *testing.T) string {
			dir := populated(t)
			if err := os.WriteFile(filepath.Join(dir, store.DiskMarker), []byte("{"), 0o600); err != nil {
				t.Fatal(err)
			}
			return dir
		}, store.DiskMarker},
		{"database files gone", func(t *testing.T) string {
			dir := populated(t)
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if e.Name() != store.DiskMarker {
					_ = os.RemoveAll(filepath.Join(dir, e.Name()))
				}
			}
			return dir
		}, "does not exist"},
		{"manifest corrupt", func(t *testing.T) string {
			dir := populated(t)
			matches, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
			for _, m := range matches {
				if err := os.WriteFile(m, []byte("garbage, not a manifest"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			return dir
		}, "MANIFEST"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := tc.setup(t)
			d, err := store.OpenDisk(dir, store.DiskOptions{})
			if err == nil {
				_ = d.Close()
				t.Fatal("OpenDisk succeeded")
			}
			if !errors.Is(err, store.ErrDiskUnreadable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenDisk: %v; want ErrDiskUnreadable naming %q", err, tc.want)
			}
		})
	}
}

// TestDiskWipedFolderIsNewLog: positions from the log of a wiped folder are not vouched for by
// the new one, even after it was appended to.
func TestDiskWipedFolderIsNewLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	d := openDisk(t, dir, store.DiskOptions{})
	old, _ := d.Append(ctx, storetest.Drafts(t, 5))
	oldID := d.LogID()
	_ = d.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	d = openDisk(t, dir, store.DiskOptions{})
	if d.LogID() == oldID {
		t.Fatal("a new folder kept the old log id")
	}
	if b, _ := d.Bounds(ctx); b.Holds(old[2]) {
		t.Fatalf("empty new log %+v vouches for %s", b, old[2])
	}
	if _, err := d.Append(ctx, storetest.Drafts(t, 1)); err != nil {
		t.Fatal(err)
	}
	if b, _ := d.Bounds(ctx); b.Holds(old[2]) || b.Holds(old[4]) {
		t.Fatalf("new log %+v vouches for old positions %s, %s", b, old[2], old[4])
	}
}

// TestDiskRetentionAfterReopen: the cap holds across restarts, also when it is lowered.
func TestDiskRetentionAfterReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	d, err := store.OpenDisk(dir, store.DiskOptions{Retention: 100})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := d.Append(ctx, storetest.Drafts(t, 100))
	_ = d.Close()
	d = openDisk(t, dir, store.DiskOptions{Retention: 50})
	var last []event.ID
	for range 3 {
		if last, err = d.Append(ctx, storetest.Drafts(t, 10)); err != nil {
			t.Fatal(err)
		}
	}
	p, err := d.Read(ctx, event.ID{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Events); n < 50 || n > 55 || p.Events[n-1].ID != last[9] {
		t.Fatalf("%d events held after lowering the retention to 50", n)
	}
	if !first[0].Less(p.Bounds.MaxDeleted) || !p.Bounds.Trimmed {
		t.Fatalf("bounds %+v do not show that %s was trimmed", p.Bounds, first[0])
	}
	if s := d.Stats(); s.Events != int64(len(p.Events)) || s.Trimmed < 80 || s.Bytes == 0 {
		t.Fatalf("stats %+v, want %d events, ≥ 80 trimmed", s, len(p.Events))
	}
}

// TestDiskGroupCommit: concurrent appends share commits (and so fsyncs).
func TestDiskGroupCommit(t *testing.T) {
	t.Parallel()
	const writers, each = 16, 20
	var commits, events atomic.Int64
	d := openDisk(t, t.TempDir(), store.DiskOptions{OnCommit: func(_ time.Duration, n int) {
		commits.Add(1)
		events.Add(int64(n))
	}})
	ctx := t.Context()
	drafts := storetest.Drafts(t, 1)
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range each {
				if _, err := d.Append(ctx, drafts); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if events.Load() != writers*each {
		t.Fatalf("%d events committed, want %d", events.Load(), writers*each)
	}
	if c := commits.Load(); c >= writers*each*3/4 {
		t.Fatalf("%d commits for %d concurrent appends: fsyncs are not shared", c, writers*each)
	}
	t.Logf("%d appends in %d commits", writers*each, commits.Load())
}

// TestDiskAppendAfterClose: appends after Close fail as unavailable rather than hang.
func TestDiskAppendAfterClose(t *testing.T) {
	t.Parallel()
	d, err := store.OpenDisk(t.TempDir(), store.DiskOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = d.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := d.Append(ctx, storetest.Drafts(t, 1)); !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("Append after Close: %v", err)
	}
	if _, err := d.Read(ctx, event.ID{}, 10); !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("Read after Close: %v", err)
	}
	if err := d.Ping(ctx); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}
