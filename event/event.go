package event

import (
	"encoding/json"
	"errors"
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
// producer may XADD directly (docs/api.md#producers-that-write-to-redis), so one decoder reads
// both.
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
	// JSON is the complete envelope (docs/api.md#envelope), or the control object, encoded once.
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

// DecodeEntry validates a stored payload (ours or a producer's direct XADD) with the installed
// catalogue (Current) and builds its event. Invalid payloads return an error wrapping
// ErrInvalidEvent; stores skip and count them.
func DecodeEntry(id ID, payload []byte) (*Event, error) { return Current().DecodeEntry(id, payload) }
