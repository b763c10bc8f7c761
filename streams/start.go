package streams

import "github.com/eventgate/eventgate/event"

// Start is where a subscription begins: live (only events appended from now on) or after a log
// position. Start values are immutable.
type Start struct {
	// After is the last position the subscriber has seen; delivery starts with the next event.
	After event.ID
	// Live means "from now": After is ignored.
	Live bool
}

// Live is the Start of a subscriber that wants only events from now on.
var Live = Start{Live: true}

// After returns the Start that resumes after id. The zero ID means "from the oldest retained event".
func After(id event.ID) Start { return Start{After: id} }

// ParseStart parses a resume position as clients send it: "" or "now" (live), "0" (oldest
// retained), or a log ID. Anything else wraps ErrInvalidPosition.
func ParseStart(s string) (Start, error) {
	switch s {
	case "", "now":
		return Live, nil
	case "0":
		return After(event.ID{}), nil
	}
	id, err := event.ParseID(s)
	if err != nil {
		return Start{}, err
	}
	return After(id), nil
}
