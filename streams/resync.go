package streams

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/eventgate/eventgate/event"
)

// Resync reasons (docs/api.md#control-events).
const (
	// ReasonTruncated: events after the requested position were trimmed from the ring.
	ReasonTruncated = "history_truncated"
	// ReasonUnknown: the requested position is newer than anything the log holds (reset or lost).
	ReasonUnknown = "position_unknown"
)

// TypeResync is the type of the resync control event.
const TypeResync = "resync"

type resyncBody struct {
	Type      string `json:"type"`
	Reason    string `json:"reason"`
	Requested string `json:"requested"`
	Oldest    string `json:"oldest"`
}

// NewResync builds a resync control event: the log could not vouch for requested; delivery
// continues after position at, and oldest is the oldest event still held. extra holds further
// fields (HubOptions.Resync), appended after the fixed ones in key order so the encoding is
// stable; a key naming a fixed field, or a value that is not valid JSON, is left out.
func NewResync(reason string, requested, oldest, at event.ID, extra map[string]json.RawMessage) *event.Event {
	b, _ := json.Marshal(resyncBody{Type: TypeResync, Reason: reason, Requested: requested.String(), Oldest: oldest.String()})
	if len(extra) > 0 {
		keys := slices.Sorted(maps.Keys(extra))
		b = b[:len(b)-1] // reopen the object
		for _, k := range keys {
			v := extra[k]
			if resyncFixed[k] || !json.Valid(v) {
				continue
			}
			key, _ := json.Marshal(k)
			b = append(append(append(append(b, ','), key...), ':'), v...)
		}
		b = append(b, '}')
	}
	return &event.Event{ID: at, Type: TypeResync, JSON: b, Control: true}
}

// resyncFixed are the resync fields extra may not repeat: a duplicate key would make the
// object ambiguous to clients.
var resyncFixed = map[string]bool{"type": true, "reason": true, "requested": true, "oldest": true}
