package streams_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

const jobA = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"

func draft(t testing.TB, typ, data string) event.Draft {
	t.Helper()
	d, err := event.ParseDraft([]byte(`{"type":"` + typ + `","data":` + data + `}`))
	if err != nil {
		t.Fatalf("ParseDraft: %v", err)
	}
	return d
}

func progress(t testing.TB, pct int) event.Draft {
	return draft(t, "job.progress", fmt.Sprintf(`{"job_id":%q,"percent":%d}`, jobA, pct%101))
}

// startHub runs a hub over a memory ring until the test ends.
func startHub(t *testing.T, retention, buffer int) (*streams.Hub, *store.Memory) {
	t.Helper()
	return startHubWith(t, retention, streams.HubOptions{Buffer: buffer, PageSize: 32})
}

// startHubTrimmed is startHub for tests of a trimmed log: its hub keeps no window, which would
// serve the events the log trimmed from memory (TestWindowOutlivesTrim) whenever the reader
// kept up.
func startHubTrimmed(t *testing.T, retention, buffer int) (*streams.Hub, *store.Memory) {
	t.Helper()
	return startHubWith(t, retention, streams.HubOptions{Buffer: buffer, PageSize: 32, Window: -1})
}

func startHubWith(t *testing.T, retention int, opts streams.HubOptions) (*streams.Hub, *store.Memory) {
	t.Helper()
	log := store.NewMemory(retention)
	log.SetPoll(50 * time.Millisecond)
	h := streams.NewHub(log, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h, log
}

func appendN(t testing.TB, log streams.Log, n int) []event.ID {
	t.Helper()
	var ids []event.ID
	for i := 0; i < n; i++ {
		got, err := log.Append(context.Background(), []event.Draft{progress(t, i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	return ids
}

// collect drains sub until it has n events or the deadline passes.
func collect(t *testing.T, sub *streams.Subscription, n int) []*event.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*event.Event
	for len(out) < n {
		select {
		case <-sub.Ready():
			var err error
			out, err = sub.Next(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
		case <-ctx.Done():
			for _, e := range out {
				t.Logf("got %v %s %s", e.ID, e.Type, e.JSON)
			}
			t.Fatalf("got %d of %d events", len(out), n)
		}
	}
	return out
}

func wantIDs(t *testing.T, got []*event.Event, want []event.ID) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].ID != want[i] {
			t.Fatalf("event %d: id %v, want %v", i, got[i].ID, want[i])
		}
	}
}

func TestLiveInOrder(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 1000, 8)
	sub, err := h.Subscribe(context.Background(), event.Filter{}, streams.Live)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ids := appendN(t, log, 100)
	wantIDs(t, collect(t, sub, 100), ids)
}

func TestResumeNoGapNoDuplicate(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 10000, 4)
	before := appendN(t, log, 50)
	// Publish concurrently with the subscription's replay so the seam falls somewhere inside.
	var wg sync.WaitGroup
	var later []event.ID
	wg.Add(1)
	go func() { defer wg.Done(); later = appendN(t, log, 500) }()
	sub, err := h.Subscribe(context.Background(), event.Filter{}, streams.After(before[9]))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	wg.Wait()
	want := append(before[10:], later...)
	got := collect(t, sub, len(want))
	wantIDs(t, got, want)
}

func TestSlowSubscriberCatchesUpFromLog(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 10000, 4)
	slow, _ := h.Subscribe(context.Background(), event.Filter{}, streams.Live)
	fast, _ := h.Subscribe(context.Background(), event.Filter{}, streams.Live)
	defer slow.Close()
	defer fast.Close()
	var fastGot []*event.Event
	done := make(chan struct{})
	go func() { defer close(done); fastGot = collect(t, fast, 2000) }()
	ids := appendN(t, log, 2000) // slow does not read meanwhile
	<-done
	wantIDs(t, fastGot, ids)
	wantIDs(t, collect(t, slow, 2000), ids)
}

func TestResyncAfterTrim(t *testing.T) {
	t.Parallel()
	h, log := startHubTrimmed(t, 10, 4)
	ids := appendN(t, log, 30)
	sub, _ := h.Subscribe(context.Background(), event.Filter{}, streams.After(ids[2]))
	defer sub.Close()
	got := collect(t, sub, 11)
	if got[0].Type != streams.TypeResync || !got[0].Control || got[0].ID != ids[19] {
		t.Fatalf("first = %s %v, want resync at %v", got[0].Type, got[0].ID, ids[19])
	}
	want := fmt.Sprintf(`{"type":"resync","reason":"history_truncated","requested":"%s","oldest":"%s"}`, ids[2], ids[20])
	if string(got[0].JSON) != want {
		t.Fatalf("resync = %s, want %s", got[0].JSON, want)
	}
	wantIDs(t, got[1:], ids[20:])
}

func TestResyncUnknownPosition(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 100, 4)
	ids := appendN(t, log, 3)
	future := event.ID{MS: ids[2].MS + 1_000_000}
	sub, _ := h.Subscribe(context.Background(), event.Filter{}, streams.After(future))
	defer sub.Close()
	got := collect(t, sub, 1)
	if got[0].Type != streams.TypeResync || got[0].ID != ids[2] {
		t.Fatalf("got %s at %v, want resync at %v", got[0].Type, got[0].ID, ids[2])
	}
	more := appendN(t, log, 2)
	wantIDs(t, collect(t, sub, 2), more)
}

func TestFromOldestNeedsNoResync(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 10, 4) // the window never answers "from the oldest"
	ids := appendN(t, log, 25)
	sub, _ := h.Subscribe(context.Background(), event.Filter{}, streams.After(event.ID{}))
	defer sub.Close()
	wantIDs(t, collect(t, sub, 10), ids[15:])
}

func TestFilterOnReplayAndLive(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 100, 4)
	note := draft(t, "note.deleted", `{"note_id":"`+jobA+`"}`)
	mixed := func() []event.ID {
		ids, err := log.Append(context.Background(), []event.Draft{progress(t, 1), note, progress(t, 2)})
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	first := mixed()
	f, err := event.NewFilter([]string{"notes/*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := h.Subscribe(context.Background(), f, streams.After(event.ID{}))
	defer sub.Close()
	got := collect(t, sub, 1)
	second := mixed()
	got = append(got, collect(t, sub, 1)...)
	wantIDs(t, got, []event.ID{first[1], second[1]})
}

func TestManySubscribersConcurrent(t *testing.T) {
	t.Parallel()
	h, log := startHub(t, 100000, 16)
	const subs, events = 20, 300
	var wg sync.WaitGroup
	ready := make(chan struct{}, subs)
	results := make([][]*event.Event, subs)
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, _ := h.Subscribe(context.Background(), event.Filter{}, streams.Live)
			defer sub.Close()
			ready <- struct{}{}
			results[i] = collect(t, sub, events)
		}()
	}
	for range subs {
		<-ready
	}
	ids := appendN(t, log, events)
	wg.Wait()
	for i := range subs {
		wantIDs(t, results[i], ids)
	}
	if n := h.Len(); n != 0 {
		t.Fatalf("%d subscriptions left open", n)
	}
}

// swappableLog lets a test take the store down and bring back an empty one (a Redis restart
// without persistence).
type swappableLog struct {
	mu   sync.Mutex
	log  *store.Memory
	down bool
}

func (l *swappableLog) get() (*store.Memory, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil, streams.ErrUnavailable
	}
	return l.log, nil
}

func (l *swappableLog) Append(ctx context.Context, d []event.Draft) ([]event.ID, error) {
	m, err := l.get()
	if err != nil {
		return nil, err
	}
	return m.Append(ctx, d)
}

func (l *swappableLog) Read(ctx context.Context, after event.ID, n int) (streams.Page, error) {
	m, err := l.get()
	if err != nil {
		return streams.Page{}, err
	}
	return m.Read(ctx, after, n)
}

func (l *swappableLog) Bounds(ctx context.Context) (streams.Bounds, error) {
	m, err := l.get()
	if err != nil {
		return streams.Bounds{}, err
	}
	return m.Bounds(ctx)
}

func (l *swappableLog) Tail(ctx context.Context, after event.ID, n int) (streams.Page, error) {
	m, err := l.get()
	if err != nil {
		return streams.Page{Next: after}, err
	}
	return m.Tail(ctx, after, n)
}

// quickRing is a memory log whose Tail polls every 20ms, so idle checks come fast in tests.
func quickRing(retention int) *store.Memory {
	m := store.NewMemory(retention)
	m.SetPoll(20 * time.Millisecond)
	return m
}

// runHub runs a hub over log until the test ends.
func runHub(t *testing.T, log streams.Log, opts streams.HubOptions) *streams.Hub {
	t.Helper()
	h := streams.NewHub(log, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func (l *swappableLog) set(m *store.Memory, down bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log, l.down = m, down
}

func TestLogResetResyncsLiveSubscribers(t *testing.T) {
	t.Parallel()
	log := &swappableLog{log: quickRing(100)}
	h := runHub(t, log, streams.HubOptions{Buffer: 8})
	ctx := t.Context()
	sub, err := h.Subscribe(ctx, event.Filter{}, streams.Live)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ids := appendN(t, log, 3)
	wantIDs(t, collect(t, sub, 3), ids)

	log.set(nil, true)             // the store goes away …
	log.set(quickRing(100), false) // … and comes back empty
	got := collect(t, sub, 1)
	if got[0].Type != streams.TypeResync || !strings.Contains(string(got[0].JSON), streams.ReasonUnknown) {
		t.Fatalf("got %s %s, want a position_unknown resync", got[0].Type, got[0].JSON)
	}
	ids = appendN(t, log, 2)
	wantIDs(t, collect(t, sub, 2), ids)
}
