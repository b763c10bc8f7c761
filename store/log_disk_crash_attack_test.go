package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

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
			outs[i] = appendAsync(ctx, d, drafts(t, n))
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
