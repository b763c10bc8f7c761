package event

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidPosition is returned for a resume position (Last-Event-ID, since, after) that is not a
// log ID. Callers map it to 400.
var ErrInvalidPosition = errors.New("invalid position")

// ID is a position in the log, in Redis Stream ID form <ms>-<seq>. IDs strictly increase in log
// order and compare numerically part by part. The zero ID ("0-0") is before every event.
type ID struct {
	MS  uint64
	Seq uint64
}

// ParseID parses "<ms>-<seq>" or a bare "<ms>" (which means "<ms>-0"). It is strict: no signs, no
// spaces, no leading '+', decimal digits only, each part fitting in a uint64.
func ParseID(s string) (ID, error) {
	msPart, seqPart, hasSeq := strings.Cut(s, "-")
	ms, err := parseUint(msPart)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %s is not a log id (want <ms>-<seq>)", ErrInvalidPosition, catQuote(s))
	}
	if !hasSeq {
		return ID{MS: ms}, nil
	}
	seq, err := parseUint(seqPart)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %s is not a log id (want <ms>-<seq>)", ErrInvalidPosition, catQuote(s))
	}
	return ID{MS: ms, Seq: seq}, nil
}

func parseUint(s string) (uint64, error) {
	if s == "" || len(s) > 20 {
		return 0, strconv.ErrSyntax
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, strconv.ErrSyntax
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// String formats the ID as "<ms>-<seq>".
func (id ID) String() string {
	return string(id.AppendTo(make([]byte, 0, 24)))
}

// AppendTo appends the "<ms>-<seq>" form to b without allocating beyond b's growth.
func (id ID) AppendTo(b []byte) []byte {
	b = strconv.AppendUint(b, id.MS, 10)
	b = append(b, '-')
	return strconv.AppendUint(b, id.Seq, 10)
}

// Compare returns -1, 0 or +1 as id is before, equal to or after other in log order.
func (id ID) Compare(other ID) int {
	switch {
	case id.MS < other.MS:
		return -1
	case id.MS > other.MS:
		return 1
	case id.Seq < other.Seq:
		return -1
	case id.Seq > other.Seq:
		return 1
	}
	return 0
}

// Less reports whether id is before other in log order.
func (id ID) Less(other ID) bool { return id.Compare(other) < 0 }

// IsZero reports whether id is "0-0", the position before every event.
func (id ID) IsZero() bool { return id == ID{} }

// Prev returns the largest ID before id (the zero ID for the zero ID).
func (id ID) Prev() ID {
	switch {
	case id.Seq > 0:
		return ID{MS: id.MS, Seq: id.Seq - 1}
	case id.MS > 0:
		return ID{MS: id.MS - 1, Seq: ^uint64(0)}
	}
	return id
}

// Next returns the smallest ID after id.
func (id ID) Next() ID {
	if id.Seq == ^uint64(0) {
		return ID{MS: id.MS + 1}
	}
	return ID{MS: id.MS, Seq: id.Seq + 1}
}
