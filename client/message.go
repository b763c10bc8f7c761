package client

// What a Subscription delivers: events in their envelope, and the resync and shutdown control
// events.

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Kind says what a Message is.
type Kind int

const (
	// KindEvent is an event of the log; Message.Event holds its envelope.
	KindEvent Kind = iota + 1
	// KindResync: the log could not vouch for the events after the position asked for (trimmed,
	// or reset); delivery continues from Message.ID. Refetch your state (Message.Resync says
	// why).
	KindResync
	// KindShutdown: the server is shutting down. The Subscription reconnects by itself (to this
	// or another instance) and resumes; nothing is lost.
	KindShutdown
)

// String returns the kind's name: event, resync or shutdown.
func (k Kind) String() string {
	switch k {
	case KindEvent:
		return "event"
	case KindResync:
		return "resync"
	case KindShutdown:
		return "shutdown"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Event is an event's envelope (docs/api.md#envelope).
type Event struct {
	ID    string          `json:"id"`    // its position in the log, "<ms>-<seq>"
	Type  string          `json:"type"`  // e.g. job.progress
	Topic string          `json:"topic"` // e.g. jobs/<uuid>
	Time  time.Time       `json:"time"`  // when it was appended
	Data  json.RawMessage `json:"data"`  // the type's payload, as sent
}

// Resync is the body of a resync control event.
type Resync struct {
	Reason    string          `json:"reason"`          // history_truncated or position_unknown
	Requested string          `json:"requested"`       // the position asked for
	Oldest    string          `json:"oldest"`          // the oldest event the log still holds
	Queue     json.RawMessage `json:"queue,omitempty"` // the latest queue.status data, when known
}

// Message is what Subscription.Next delivers. It is a value the caller owns; Data and the
// envelope's Data are not reused.
type Message struct {
	Kind Kind
	// ID is the stream position after this message (what a resumed subscription starts after):
	// the event's id, the resync's continuation point, or the last position for a shutdown.
	ID string
	// Event is the envelope, for KindEvent.
	Event Event
	// Resync is set for KindResync (its fields are empty if the body could not be decoded).
	Resync Resync
	// Data is the message's data as the server sent it: the envelope for KindEvent (valid JSON),
	// the control event's JSON body otherwise.
	Data json.RawMessage
}

// position is a parsed "<ms>-<seq>" (or "<ms>") event id, to drop events replayed across a
// reconnect. Ids of another form are not compared.
type position struct{ ms, seq uint64 }

func parsePosition(s string) (position, bool) {
	msPart, seqPart, hasSeq := strings.Cut(s, "-")
	ms, err := strconv.ParseUint(msPart, 10, 64)
	if err != nil {
		return position{}, false
	}
	var seq uint64
	if hasSeq {
		if seq, err = strconv.ParseUint(seqPart, 10, 64); err != nil {
			return position{}, false
		}
	}
	return position{ms, seq}, true
}

func (p position) less(q position) bool {
	return p.ms < q.ms || (p.ms == q.ms && p.seq < q.seq)
}
