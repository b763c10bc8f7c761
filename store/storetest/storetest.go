// Package storetest is the contract suite every streams.Log and streams.Receipts implementation
// must pass. Backends call Run and RunReceipts from their own tests.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// NewLog makes an empty log keeping about retention events, owned by t (the factory registers its
// own cleanup). Its Tail should give up within a second or so when nothing arrives.
type NewLog func(t *testing.T, retention int) streams.Log

// waitFor bounds every polling loop of the suite.
const waitFor = 10 * time.Second

// Run runs the Log contract suite. Every subtest is parallel and makes its own log.
func Run(t *testing.T, newLog NewLog) {
	tests := []struct {
		name string
		run  func(t *testing.T, newLog NewLog)
	}{
		{"AppendReturnsIncreasingIDs", testAppendIDs},
		{"AppendNothing", testAppendNothing},
		{"ReadAll", testReadAll},
		{"ReadAfterIsExclusive", testReadAfter},
		{"ReadLimit", testReadLimit},
		{"ReadEmpty", testReadEmpty},
		{"Bounds", testBounds},
		{"Trimming", testTrimming},
		{"TailExisting", testTailExisting},
		{"TailTimeout", testTailTimeout},
		{"TailWakesOnAppend", testTailWakes},
		{"ConcurrentAppends", testConcurrentAppends},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newLog)
		})
	}
}

// Job and Queue are the payloads the suite publishes.
const (
	JobID = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"
	Job   = `{"type":"job.progress","data":{"job_id":"` + JobID + `","percent":40}}`
	Queue = `{"type":"queue.status","data":{"pending":1,"active":2}}`
)

// Draft parses raw with event.ParseDraft, failing t if it is invalid.
func Draft(t testing.TB, raw string) event.Draft {
	t.Helper()
	d, err := event.ParseDraft([]byte(raw))
	if err != nil {
		t.Fatalf("ParseDraft(%s): %v", raw, err)
	}
	return d
}

// Drafts returns n drafts alternating job.progress (percent = i % 101) and queue.status
// (pending = i).
func Drafts(t testing.TB, n int) []event.Draft {
	t.Helper()
	ds := make([]event.Draft, n)
	for i := range ds {
		if i%2 == 0 {
			ds[i] = Draft(t, fmt.Sprintf(`{"type":"job.progress","data":{"job_id":%q,"percent":%d}}`, JobID, i%101))
		} else {
			ds[i] = Draft(t, fmt.Sprintf(`{"type":"queue.status","data":{"pending":%d,"active":2}}`, i))
		}
	}
	return ds
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustAppend(t *testing.T, ctx context.Context, log streams.Log, ds []event.Draft) []event.ID {
	t.Helper()
	ids, err := log.Append(ctx, ds)
	if err != nil {
		t.Fatalf("Append(%d drafts): %v", len(ds), err)
	}
	if len(ids) != len(ds) {
		t.Fatalf("Append(%d drafts) returned %d ids", len(ds), len(ids))
	}
	return ids
}

func mustRead(t *testing.T, ctx context.Context, log streams.Log, after event.ID, limit int) streams.Page {
	t.Helper()
	p, err := log.Read(ctx, after, limit)
	if err != nil {
		t.Fatalf("Read(%s, %d): %v", after, limit, err)
	}
	return p
}

func checkIncreasing(t *testing.T, ids []event.ID) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		if !ids[i-1].Less(ids[i]) {
			t.Fatalf("ids not strictly increasing at %d: %s then %s", i, ids[i-1], ids[i])
		}
	}
}

func eventIDs(evs []*event.Event) []event.ID {
	ids := make([]event.ID, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

func checkIDs(t *testing.T, what string, got, want []event.ID) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %d ids %v, want %d ids %v", what, len(got), got, len(want), want)
	}
}

func testAppendIDs(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	var all []event.ID
	for _, n := range []int{1, 3, 10} {
		all = append(all, mustAppend(t, ctx, log, Drafts(t, n))...)
	}
	if all[0].IsZero() {
		t.Fatalf("first id is 0-0")
	}
	checkIncreasing(t, all)
}

func testAppendNothing(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 10), ctxFor(t)
	for _, ds := range [][]event.Draft{nil, {}} {
		ids, err := log.Append(ctx, ds)
		if err != nil || len(ids) != 0 {
			t.Fatalf("Append(%v) = %v, %v; want no ids, nil", ds, ids, err)
		}
	}
	p := mustRead(t, ctx, log, event.ID{}, 10)
	if len(p.Events) != 0 || p.Bounds != (streams.Bounds{}) {
		t.Fatalf("after empty appends: %d events, bounds %+v", len(p.Events), p.Bounds)
	}
	if b, err := log.Bounds(ctx); err != nil || b != (streams.Bounds{}) {
		t.Fatalf("Bounds() after empty appends = %+v, %v", b, err)
	}
}

// envelope is the event envelope (docs/api.md#envelope).
type envelope struct {
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	Time  string          `json:"time"`
	Data  json.RawMessage `json:"data"`
}

func testReadAll(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	before := time.Now().Add(-time.Minute)
	ids := mustAppend(t, ctx, log, []event.Draft{Draft(t, Job), Draft(t, Queue)})
	p := mustRead(t, ctx, log, event.ID{}, 100)
	checkIDs(t, "Read(0-0)", eventIDs(p.Events), ids)
	if p.Next != ids[1] {
		t.Errorf("Next = %s, want %s", p.Next, ids[1])
	}
	want := []struct{ typ, topic, data string }{
		{"job.progress", "jobs/" + JobID, `{"job_id":"` + JobID + `","percent":40}`},
		{"queue.status", "queue", `{"pending":1,"active":2}`},
	}
	for i, e := range p.Events {
		var env envelope
		dec := json.NewDecoder(bytes.NewReader(e.JSON))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&env); err != nil {
			t.Fatalf("event %d: envelope %s: %v", i, e.JSON, err)
		}
		wantTime := time.UnixMilli(int64(ids[i].MS)).UTC().Format("2006-01-02T15:04:05.000Z07:00")
		ts, err := time.Parse(time.RFC3339Nano, env.Time)
		switch {
		case err != nil:
			t.Errorf("event %d: time %q: %v", i, env.Time, err)
		case env.Time != wantTime:
			t.Errorf("event %d: time %q, want %q (from the id)", i, env.Time, wantTime)
		case ts.Before(before) || ts.After(time.Now().Add(time.Minute)):
			t.Errorf("event %d: time %s is not about now", i, env.Time)
		}
		if env.ID != ids[i].String() || env.Type != want[i].typ || env.Topic != want[i].topic {
			t.Errorf("event %d: envelope %s: want id %s, type %s, topic %s", i, e.JSON, ids[i], want[i].typ, want[i].topic)
		}
		if e.Type != want[i].typ || e.Topic != want[i].topic || e.Control {
			t.Errorf("event %d: fields type %q topic %q control %v", i, e.Type, e.Topic, e.Control)
		}
		if !jsonEqual(t, env.Data, []byte(want[i].data)) || !jsonEqual(t, e.Data, []byte(want[i].data)) {
			t.Errorf("event %d: data %s / %s, want %s", i, env.Data, e.Data, want[i].data)
		}
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Errorf("invalid JSON %s: %v", a, err)
		return false
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Errorf("invalid JSON %s: %v", b, err)
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

func testReadAfter(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	ids := mustAppend(t, ctx, log, Drafts(t, 6))
	for i, after := range ids {
		p := mustRead(t, ctx, log, after, 100)
		checkIDs(t, fmt.Sprintf("Read(ids[%d])", i), eventIDs(p.Events), ids[i+1:])
		if want := ids[len(ids)-1]; p.Next != want {
			t.Errorf("Read(ids[%d]).Next = %s, want %s", i, p.Next, want)
		}
	}
	// A position between two events (not an event's id) works too.
	between := event.ID{MS: ids[2].MS, Seq: ids[2].Seq}.Next()
	if between.Less(ids[3]) {
		p := mustRead(t, ctx, log, between, 100)
		checkIDs(t, "Read(between)", eventIDs(p.Events), ids[3:])
	}
}

func testReadLimit(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	ids := mustAppend(t, ctx, log, Drafts(t, 10))
	for _, limit := range []int{1, 3, 4, 10, 11} {
		var got []event.ID
		after := event.ID{}
		for range 20 {
			p := mustRead(t, ctx, log, after, limit)
			if len(p.Events) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(p.Events))
			}
			if len(p.Events) == 0 {
				if p.Next != after {
					t.Fatalf("limit %d: empty page Next = %s, want %s", limit, p.Next, after)
				}
				break
			}
			got = append(got, eventIDs(p.Events)...)
			after = p.Next
		}
		checkIDs(t, fmt.Sprintf("paging with limit %d", limit), got, ids)
	}
}

func testReadEmpty(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 10), ctxFor(t)
	for _, after := range []event.ID{{}, {MS: 1}, {MS: uint64(time.Now().UnixMilli()), Seq: 5}} {
		p := mustRead(t, ctx, log, after, 10)
		if len(p.Events) != 0 || p.Next != after || p.Bounds != (streams.Bounds{}) {
			t.Errorf("Read(%s) on empty log = %d events, Next %s, Bounds %+v", after, len(p.Events), p.Next, p.Bounds)
		}
	}
}

func testBounds(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	ids := mustAppend(t, ctx, log, Drafts(t, 5))
	want := streams.Bounds{First: ids[0], Last: ids[4]}
	for _, after := range []event.ID{{}, ids[2], ids[4]} {
		for _, limit := range []int{0, 2} {
			if p := mustRead(t, ctx, log, after, limit); p.Bounds != want {
				t.Errorf("Read(%s, %d).Bounds = %+v, want %+v", after, limit, p.Bounds, want)
			}
		}
	}
	if b, err := log.Bounds(ctx); err != nil || b != want {
		t.Errorf("Bounds() = %+v, %v; want %+v", b, err, want)
	}
	// Tail pages carry bounds too: the hub's reader checks that the log still holds its position.
	if p := mustTail(t, ctx, log, ids[2], 10); p.Bounds != want {
		t.Errorf("Tail(%s).Bounds = %+v, want %+v", ids[2], p.Bounds, want)
	}
	// A log that never removed an entry cannot vouch for a position before its first: such a
	// position comes from a log that was lost (ids are time-based, so it is smaller).
	if before := ids[0].Prev().Prev(); want.Holds(before) {
		t.Errorf("%+v.Holds(%s) = true: an untrimmed log vouched for a position before its first entry", want, before)
	}
}

func testTrimming(t *testing.T, newLog NewLog) {
	const retention, total, batch = 10, 500, 50
	log, ctx := newLog(t, retention), ctxFor(t)
	var ids []event.ID
	for len(ids) < total {
		ids = append(ids, mustAppend(t, ctx, log, Drafts(t, batch))...)
	}
	p := mustRead(t, ctx, log, event.ID{}, 1000)
	b := p.Bounds
	n := len(p.Events)
	if n < retention || n >= total {
		t.Fatalf("retained %d events, want between %d and %d", n, retention, total-1)
	}
	// What is retained is exactly the newest n events, and the bounds describe it.
	checkIDs(t, "retained events", eventIDs(p.Events), ids[total-n:])
	if b.First != ids[total-n] || b.Last != ids[total-1] {
		t.Errorf("Bounds %+v: want First %s, Last %s", b, ids[total-n], ids[total-1])
	}
	// MaxDeleted is at least the last trimmed id and before First. (Stores may not know exactly
	// which id was trimmed last; the ID just before First is a safe bound.)
	if lastTrimmed := ids[total-n-1]; b.MaxDeleted.Less(lastTrimmed) || !b.MaxDeleted.Less(b.First) {
		t.Errorf("Bounds.MaxDeleted = %s, want in [%s, %s)", b.MaxDeleted, lastTrimmed, b.First)
	}
	// A reader at a trimmed position gets what is left and bounds that show the gap.
	p = mustRead(t, ctx, log, ids[0], 1000)
	checkIDs(t, "Read(trimmed position)", eventIDs(p.Events), ids[total-n:])
	if got, err := log.Bounds(ctx); err != nil || got != b {
		t.Errorf("Bounds() = %+v, %v; want %+v", got, err, b)
	}
	if !ids[0].Less(p.Bounds.MaxDeleted) {
		t.Errorf("Read(%s).Bounds.MaxDeleted = %s: the gap is not visible", ids[0], p.Bounds.MaxDeleted)
	}
	if !b.Trimmed {
		t.Errorf("Bounds %+v: Trimmed is false after trimming", b)
	}
}

func mustTail(t *testing.T, ctx context.Context, log streams.Log, after event.ID, limit int) streams.Page {
	t.Helper()
	p, err := log.Tail(ctx, after, limit)
	if err != nil {
		t.Fatalf("Tail(%s, %d): %v", after, limit, err)
	}
	return p
}

func testTailExisting(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	ids := mustAppend(t, ctx, log, Drafts(t, 5))
	p := mustTail(t, ctx, log, ids[1], 10)
	checkIDs(t, "Tail(ids[1])", eventIDs(p.Events), ids[2:])
	if p.Next != ids[4] {
		t.Errorf("Tail.Next = %s, want %s", p.Next, ids[4])
	}
	p = mustTail(t, ctx, log, event.ID{}, 2)
	checkIDs(t, "Tail(0-0, 2)", eventIDs(p.Events), ids[:2])
}

// testTailTimeout: with nothing new, Tail returns an empty page at its own poll interval or
// stops at the context's deadline, whichever comes first.
func testTailTimeout(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	ids := mustAppend(t, ctx, log, Drafts(t, 2))
	for _, after := range []event.ID{ids[1], {}} {
		if after.IsZero() {
			// An empty log: a fresh one.
			log = newLog(t, 1000)
		}
		tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		start := time.Now()
		p, err := log.Tail(tctx, after, 10)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Tail(%s) with nothing new: %v", after, err)
		}
		if len(p.Events) != 0 || p.Next != after {
			t.Fatalf("Tail(%s) with nothing new = %d events, Next %s", after, len(p.Events), p.Next)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Tail(%s) took %v with a 300ms deadline", after, d)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := log.Tail(cctx, event.ID{}, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("Tail with a cancelled context: err %v, want context.Canceled", err)
	}
}

// testTailWakes: a reader blocked in Tail gets an event appended by another goroutine.
func testTailWakes(t *testing.T, newLog NewLog) {
	log, ctx := newLog(t, 1000), ctxFor(t)
	start := mustAppend(t, ctx, log, Drafts(t, 1))[0]
	type result struct {
		events []*event.Event
		err    error
	}
	done := make(chan result, 1)
	go func() {
		deadline := time.Now().Add(waitFor)
		for time.Now().Before(deadline) {
			p, err := log.Tail(ctx, start, 10)
			if err != nil || len(p.Events) > 0 {
				done <- result{p.Events, err}
				return
			}
			if p.Next != start {
				done <- result{err: fmt.Errorf("empty Tail page moved Next to %s", p.Next)}
				return
			}
		}
		done <- result{err: errors.New("no event within the deadline")}
	}()
	ids := mustAppend(t, ctx, log, Drafts(t, 3))
	r := <-done
	if r.err != nil {
		t.Fatalf("Tail: %v", r.err)
	}
	got := eventIDs(r.events)
	// The reader may have woken on the first entries of the batch only if the store delivers a
	// batch in parts; every event it got must be the batch's prefix.
	if len(got) == 0 || !slices.Equal(got, ids[:len(got)]) {
		t.Fatalf("Tail woke with %v, want a prefix of %v", got, ids)
	}
}

func testConcurrentAppends(t *testing.T, newLog NewLog) {
	const writers, each = 8, 50
	log, ctx := newLog(t, 10*writers*each), ctxFor(t)
	var (
		mu  sync.Mutex
		all []event.ID
		wg  sync.WaitGroup
	)
	errs := make(chan error, writers)
	batches := [][]event.Draft{nil, Drafts(t, 1), Drafts(t, 2)} // built here: no t.Fatal in goroutines
	for w := range writers {
		wg.Go(func() {
			var mine []event.ID
			for i := 0; i < each; {
				n := 1 + (w+i)%2 // batches of 1 and 2
				n = min(n, each-i)
				ids, err := log.Append(ctx, batches[n])
				if err != nil {
					errs <- err
					return
				}
				mine = append(mine, ids...)
				i += n
			}
			for i := 1; i < len(mine); i++ {
				if !mine[i-1].Less(mine[i]) {
					errs <- fmt.Errorf("writer %d: ids not increasing: %s then %s", w, mine[i-1], mine[i])
					return
				}
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.SortFunc(all, event.ID.Compare)
	if c := slices.Compact(slices.Clone(all)); len(c) != writers*each {
		t.Fatalf("%d unique ids, want %d", len(c), writers*each)
	}
	p := mustRead(t, ctx, log, event.ID{}, 2*writers*each)
	checkIDs(t, "Read after concurrent appends", eventIDs(p.Events), all)
}
