package main

// Compatibility of our SSE stream with a third-party Go client, r3labs/sse/v2. Only its parsing
// is tested: it does not reconnect after a clean EOF (r3labs/sse#147) and ignores retry:, which is
// why `eventgate tail` has its own reader (see PITFALLS).

import (
	"context"
	"testing"
	"time"

	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

// r3Event is what the r3labs client delivered (its Event buffers are reused, so copied).
type r3Event struct{ ID, Event, Data string }

// r3Subscribe reads url with the r3labs client (no reconnects) until the test ends.
func r3Subscribe(t *testing.T, url, lastEventID string) <-chan r3Event {
	t.Helper()
	c := sse.NewClient(url)
	c.Connection = streamClient // loopback, no proxy
	c.ReconnectStrategy = &backoff.StopBackOff{}
	if lastEventID != "" {
		c.LastEventID.Store([]byte(lastEventID))
	}
	ctx, cancel := context.WithCancel(context.Background())
	events, done := make(chan r3Event, 100), make(chan struct{})
	go func() {
		defer close(done)
		_ = c.SubscribeRawWithContext(ctx, func(m *sse.Event) {
			if len(m.Data) > 0 { // skip the retry: hint (it has no data)
				events <- r3Event{string(m.ID), string(m.Event), string(m.Data)}
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return events
}

func TestE2ECompatR3labsClient(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_HEARTBEAT": "1s"})
	note := newUUID()
	ids := mustPublish(t, s.URL(), batch(jobQueued(jobA), noteCreated(note, "ünïcode ✓ \"quotes\" \\ and / slashes"), queueStatus(1, 2)), 3)
	page := history(t, s.URL(), "after=0")
	types := []string{"job.queued", "note.created", "queue.status"}

	check := func(t *testing.T, got <-chan r3Event, from int, live []string) {
		t.Helper()
		want := append(append([]string{}, ids[from:]...), live...)
		for i, id := range want {
			var e r3Event
			select {
			case e = <-got:
			case <-s.done:
				t.Fatal("server exited")
			case <-time.After(frameTimeout):
				t.Fatalf("r3labs client: no event %d within %s", from+i, frameTimeout)
			}
			k := from + i
			if e.ID != id || (k < len(types) && (e.Event != types[k] || e.Data != string(page.Events[k]))) {
				t.Fatalf("event %d: r3labs read %+v, want id %s", k, e, id)
			}
			decodeEnvelope(t, e.Data)
		}
	}
	t.Run("replay and live", func(t *testing.T) {
		got := r3Subscribe(t, s.URL()+"/api/v1/stream?since=0", "")
		check(t, got, 0, nil)
		live := mustPublish(t, s.URL(), jobProgress(jobA, 5), 1)
		check(t, got, 3, live)
	})
	t.Run("resume with its Last-Event-ID", func(t *testing.T) {
		got := r3Subscribe(t, s.URL()+"/api/v1/stream", ids[0])
		check(t, got, 1, nil)
	})
}
