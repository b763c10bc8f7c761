package streams

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"time"
)

// ErrInvalidEvent is wrapped by every validation error of a published or stored event (see
// ValidationError). Callers map it to 400.
var ErrInvalidEvent = errors.New("invalid event")

// Draft is a validated, sanitized event that is not in the log yet. Drafts are immutable values;
// Data is the canonical JSON object of the event's fields.
type Draft struct {
	Type  string
	Topic string
	Data  json.RawMessage
}

// Payload returns the form stores persist: {"type":...,"data":{...}}. It is the same form a
// producer may XADD directly (SPEC §4), so one decoder reads both.
func (d Draft) Payload() []byte {
	b := make([]byte, 0, len(d.Data)+len(d.Type)+20)
	b = append(b, `{"type":`...)
	b = strconv.AppendQuote(b, d.Type)
	b = append(b, `,"data":`...)
	b = append(b, d.Data...)
	return append(b, '}')
}

// Event is an event in the log, or a control event made for one subscriber. An *Event is shared
// read-only by every subscriber it is delivered to: nothing may modify it after construction.
type Event struct {
	// ID is the log position. For a control event it is the position delivery continues from.
	ID    ID
	Type  string
	Topic string
	// Data is the event's data object (nil for control events).
	Data json.RawMessage
	// JSON is the complete envelope (SPEC §1), or the control object, encoded once.
	JSON []byte
	// Control marks events that are not in the log (resync); webhooks skip them.
	Control bool
}

// Time is the server time of append: the millisecond part of the ID.
func (e *Event) Time() time.Time { return time.UnixMilli(int64(e.ID.MS)).UTC() }

// NewEvent builds the log event for d placed at id, encoding its envelope once.
func NewEvent(id ID, d Draft) *Event {
	b := make([]byte, 0, len(d.Data)+len(d.Type)+len(d.Topic)+96)
	b = append(b, `{"id":"`...)
	b = id.AppendTo(b)
	b = append(b, `","type":`...)
	b = strconv.AppendQuote(b, d.Type)
	b = append(b, `,"topic":`...)
	b = strconv.AppendQuote(b, d.Topic)
	b = append(b, `,"time":"`...)
	b = time.UnixMilli(int64(id.MS)).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","data":`...)
	b = append(b, d.Data...)
	b = append(b, '}')
	return &Event{ID: id, Type: d.Type, Topic: d.Topic, Data: d.Data, JSON: b}
}

// DecodeEntry validates a stored payload (ours or a producer's direct XADD) and builds its event.
// Invalid payloads return an error wrapping ErrInvalidEvent; stores skip and count them.
func DecodeEntry(id ID, payload []byte) (*Event, error) {
	d, err := ParseDraft(payload)
	if err != nil {
		return nil, err
	}
	return NewEvent(id, d), nil
}

// Resync reasons (SPEC §1).
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
func NewResync(reason string, requested, oldest, at ID, extra map[string]json.RawMessage) *Event {
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
	return &Event{ID: at, Type: TypeResync, JSON: b, Control: true}
}

// resyncFixed are the resync fields extra may not repeat: a duplicate key would make the
// object ambiguous to clients.
var resyncFixed = map[string]bool{"type": true, "reason": true, "requested": true, "oldest": true}
