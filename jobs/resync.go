package jobs

import (
	"context"
	"encoding/json"

	"github.com/eventgate/eventgate/event"
)

// queueProbe stands for a queue.status event when deciding whether a filter may see the queue.
var queueProbe = &event.Event{Type: event.TypeQueueStatus, Topic: "queue"}

// ResyncQueue returns a streams.HubOptions.Resync that adds the latest queue status from s as
// "queue" to a resync, so a client can refresh without another request. Only a subscriber whose
// filter (bounded by its token's grant) admits queue.status gets it; when s has no queue status
// or cannot be read, the resync goes out without it. Safe for concurrent use if s is.
func ResyncQueue(s Store) func(ctx context.Context, f event.Filter) map[string]json.RawMessage {
	return func(ctx context.Context, f event.Filter) map[string]json.RawMessage {
		if !f.Match(queueProbe) {
			return nil
		}
		q, ok, err := s.Queue(ctx)
		if err != nil || !ok {
			return nil
		}
		b, err := json.Marshal(q)
		if err != nil {
			return nil
		}
		return map[string]json.RawMessage{"queue": b}
	}
}
