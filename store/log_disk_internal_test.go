package store

import (
	"context"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
)

func internalDraft(t *testing.T) event.Draft {
	t.Helper()
	d, err := event.ParseDraft([]byte(`{"type":"queue.status","data":{"pending":1,"active":2}}`))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDiskUnsyncedIsInvisible: a batch committed to Pebble that the appender has not yet
// published (it does so after the commit's fsync) is not served by Read or Tail: until then a
// caller may not have heard of it, and with a commit that failed, a crash could take it back.
func TestDiskUnsyncedIsInvisible(t *testing.T) {
	t.Parallel()
	d, err := OpenDisk(t.TempDir(), DiskOptions{Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx := t.Context()
	synced, err := d.Append(ctx, []event.Draft{internalDraft(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Stage a batch as the appender does, without publishing it. The appender is idle
	// (nothing queued), so the test is its only writer here.
	cur := d.bounds
	s := d.stage([]*appendReq{{ctx: ctx, drafts: []event.Draft{internalDraft(t), internalDraft(t)}, done: make(chan appendResult, 1)}}, &cur)
	if s.results[0].err != nil || len(s.results[0].ids) != 2 {
		t.Fatalf("stage: %+v", s.results[0])
	}
	p, err := d.Read(ctx, event.ID{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Events) != 1 || p.Events[0].ID != synced[0] || p.Bounds.Last != synced[0] {
		t.Fatalf("Read shows %d events, Last %s; want only the synced %s", len(p.Events), p.Bounds.Last, synced[0])
	}
	tp, err := d.Tail(ctx, synced[0], 10)
	if err != nil || len(tp.Events) != 0 {
		t.Fatalf("Tail after the synced event: %d events, %v; want none", len(tp.Events), err)
	}
}

// TestDiskTailFromMemory: the hub's reader is served from the in-memory ring; only a reader
// further behind than the ring reads the disk.
func TestDiskTailFromMemory(t *testing.T) {
	t.Parallel()
	d, err := OpenDisk(t.TempDir(), DiskOptions{TailSize: 4, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	ctx := context.Background()
	drafts := []event.Draft{internalDraft(t), internalDraft(t), internalDraft(t), internalDraft(t), internalDraft(t), internalDraft(t)}
	ids, err := d.Append(ctx, drafts)
	if err != nil {
		t.Fatal(err)
	}
	// The disk is gone (as far as readers can tell): the ring still serves the newest four.
	d.dbMu.Lock()
	d.dbClosed = true
	d.dbMu.Unlock()
	defer func() { d.dbMu.Lock(); d.dbClosed = false; d.dbMu.Unlock() }()
	p, err := d.Tail(ctx, ids[1], 10)
	if err != nil || len(p.Events) != 4 || p.Events[0].ID != ids[2] || p.Bounds.Last != ids[5] {
		t.Fatalf("Tail(%s) from memory: %d events, bounds %+v, %v", ids[1], len(p.Events), p.Bounds, err)
	}
	// Further behind than the ring: the disk it is (and here it fails).
	if _, err := d.Tail(ctx, ids[0], 10); err == nil {
		t.Fatalf("Tail(%s), behind the ring, did not read the disk", ids[0])
	}
}
