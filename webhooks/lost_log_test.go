package webhooks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/webhooks"
)

// TestCursorInLostLogRecorded: an endpoint whose cursor lies in a stretch the log lost (Redis
// restarted empty and was appended to before the dispatcher read it) records the loss in its
// delivery log, then delivers the new events: nothing is skipped silently.
func TestCursorInLostLogRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2*time.Second)
	rc := newReceiver(t, nil)
	h.publish(progress(1))
	w := h.register(rc.URL) // its cursor: the event above
	lost := h.publish(progress(2))

	// The log is lost; a new one is appended to (its ids are larger) before anyone reads it.
	for uint64(time.Now().UnixMilli()) <= lost[0].MS {
		time.Sleep(time.Millisecond) // the next millisecond: the new ids pass the old ones
	}
	h.log = store.NewMemory(100)
	fresh := h.publish(progress(3))
	hub := streams.NewHub(h.log, streams.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.hub = hub
	h.dispatcher(webhooks.Options{})

	if got := ids(rc.waitRequests(t, 1)); got[0] != fresh[0].String() {
		t.Fatalf("delivered %v, want the new event %s", got, fresh[0])
	}
	ds, err := h.st.Deliveries(t.Context(), w.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	noted := false
	for _, d := range ds {
		noted = noted || (d.Outcome == webhooks.OutcomeNote && strings.Contains(d.Error, "position_unknown"))
	}
	if !noted {
		t.Fatalf("deliveries %+v: the lost event %s is not recorded", ds, lost[0])
	}
}
