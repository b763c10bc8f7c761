package jobs_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// queueHub runs, until the test ends, a hub whose resyncs carry the queue status q, over a ring
// of 5 that was handed 20 events; it returns the hub and the events' positions.
func queueHub(t *testing.T, q jobs.QueueState) (*streams.Hub, []event.ID) {
	t.Helper()
	log := store.NewMemory(5)
	log.SetPoll(20 * time.Millisecond)
	state := store.NewMemoryJobs(time.Hour)
	if ok, _ := state.SwapQueue(context.Background(), "", q); !ok {
		t.Fatal("swap")
	}
	h := streams.NewHub(log, streams.HubOptions{Resync: jobs.ResyncQueue(state)})
	go func() { _ = h.Run(t.Context()) }()
	drafts := make([]event.Draft, 20)
	for pct := range drafts {
		d, err := event.ParseDraft(fmt.Appendf(nil, `{"type":"job.progress","data":{"job_id":%q,"percent":%d}}`, jobA, pct))
		if err != nil {
			t.Fatal(err)
		}
		drafts[pct] = d
	}
	ids, err := log.Append(context.Background(), drafts) // one batch: the ring keeps the last 5
	if err != nil {
		t.Fatal(err)
	}
	return h, ids
}

// firstEvent subscribes to h with topics from start and returns the first event delivered.
func firstEvent(t *testing.T, h *streams.Hub, topics []string, start streams.Start) *event.Event {
	t.Helper()
	f, err := event.NewFilter(topics, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sub, err := h.Subscribe(ctx, f, start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for {
		select {
		case <-sub.Ready():
		case <-ctx.Done():
			t.Fatal("nothing delivered")
		}
		got, err := sub.Next(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > 0 {
			return got[0]
		}
	}
}

func TestResyncCarriesQueueStatus(t *testing.T) {
	t.Parallel()
	h, ids := queueHub(t, jobs.QueueState{Pending: 9, Active: 1, LastEventID: "1-0"})
	got := firstEvent(t, h, nil, streams.After(ids[0]))
	if !strings.Contains(string(got.JSON), `"queue":{"pending":9,"active":1`) {
		t.Fatalf("resync %s does not carry the queue status", got.JSON)
	}
}

// TestResyncQueueOnlyWhenGranted: a resync carries the queue status only to a subscriber whose
// filter admits the queue topic.
func TestResyncQueueOnlyWhenGranted(t *testing.T) {
	t.Parallel()
	h, ids := queueHub(t, jobs.QueueState{Pending: 9, LastEventID: "1-0"})
	for _, tt := range []struct {
		topics []string
		want   bool
	}{{nil, true}, {[]string{"queue"}, true}, {[]string{"jobs/*"}, false}} {
		got := firstEvent(t, h, tt.topics, streams.After(ids[0]))
		if has := strings.Contains(string(got.JSON), `"queue"`); has != tt.want {
			t.Fatalf("topics %v: resync %s, want queue included: %v", tt.topics, got.JSON, tt.want)
		}
	}
}

// TestResyncQueueWireForm: the queue status rides in the resync object after its fixed fields,
// exactly as clients have always read it.
func TestResyncQueueWireForm(t *testing.T) {
	t.Parallel()
	state := store.NewMemoryJobs(time.Hour)
	q := jobs.QueueState{Pending: 9, Active: 1, UpdatedAt: time.UnixMilli(1732650000123).UTC(), LastEventID: "1732650000123-0"}
	if ok, _ := state.SwapQueue(context.Background(), "", q); !ok {
		t.Fatal("swap")
	}
	extra := jobs.ResyncQueue(state)(context.Background(), event.Filter{})
	got := streams.NewResync(streams.ReasonTruncated, event.ID{MS: 1}, event.ID{MS: 2}, event.ID{MS: 2}, extra)
	want := `{"type":"resync","reason":"history_truncated","requested":"1-0","oldest":"2-0",` +
		`"queue":{"pending":9,"active":1,"updated_at":"2024-11-26T19:40:00.123Z","last_event_id":"1732650000123-0"}}`
	if string(got.JSON) != want {
		t.Fatalf("resync\n%s\nwant\n%s", got.JSON, want)
	}
}
