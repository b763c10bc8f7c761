package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// TestDiskUnsyncedCommitInvisibleAttack: while a group's fsync is held, the commit is in Pebble
// (visible to its iterators) but Read, Tail and Bounds must not show it, and its caller must not
// hear of it; once the fsync returns, all three show it.
func TestDiskUnsyncedCommitInvisibleAttack(t *testing.T) {
	t.Parallel()
	d, gate := gatedDisk(t)
	ctx := t.Context()
	first, err := d.Append(ctx, drafts(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	gate.armed.Store(true)
	done := appendAsync(ctx, d, drafts(t, 3))
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
	d, gate := gatedDisk(t)
	rec := NewDiskReceipts(d)
	ctx := t.Context()
	gate.armed.Store(true)
	head := appendAsync(ctx, d, drafts(t, 1))
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
			head := appendAsync(ctx, d, drafts(t, 1))
			await(t, "the held fsync", entered)
			var queued []chan appendOutcome
			for i := range 3 {
				queued = append(queued, appendAsync(ctx, d, drafts(t, 2)))
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
