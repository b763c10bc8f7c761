package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// Encodings of the disk store's log keys, records and bounds.

// recordVersion is the first byte of an event record.
const recordVersion = 1

// eventKey returns 'e' <ms:8> <seq:8>: big-endian, so keys sort in log order.
func eventKey(id event.ID) []byte {
	return appendID(append(make([]byte, 0, 17), prefixEvent), id)
}

func appendID(b []byte, id event.ID) []byte {
	b = binary.BigEndian.AppendUint64(b, id.MS)
	return binary.BigEndian.AppendUint64(b, id.Seq)
}

func readID(b []byte) (event.ID, bool) {
	if len(b) < 16 {
		return event.ID{}, false
	}
	return event.ID{MS: binary.BigEndian.Uint64(b), Seq: binary.BigEndian.Uint64(b[8:])}, true
}

func eventKeyID(key []byte) (event.ID, error) {
	if len(key) != 17 || key[0] != prefixEvent {
		return event.ID{}, fmt.Errorf("not an event key: %x", key)
	}
	id, _ := readID(key[1:])
	return id, nil
}

// encodeRecord stores an event as <version:1> <len type> type <len topic> topic <data offset>
// envelope, lengths as uvarints: the envelope (SPEC §1) is kept whole, so reading an event back
// copies it once and parses no JSON.
func encodeRecord(e *event.Event) []byte {
	off := len(e.JSON) - len(e.Data) - 1 // the envelope ends with the data object and '}'
	b := make([]byte, 0, 1+3*binary.MaxVarintLen32+len(e.Type)+len(e.Topic)+len(e.JSON))
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, uint64(len(e.Type)))
	b = append(b, e.Type...)
	b = binary.AppendUvarint(b, uint64(len(e.Topic)))
	b = append(b, e.Topic...)
	b = binary.AppendUvarint(b, uint64(off))
	return append(b, e.JSON...)
}

var errBadRecord = errors.New("malformed record")

// decodeRecord rebuilds the event stored under key. It copies what it keeps: val may be reused
// by the database after the call.
func decodeRecord(key, val []byte) (*event.Event, error) {
	id, err := eventKeyID(key)
	if err != nil {
		return nil, err
	}
	if len(val) == 0 || val[0] != recordVersion {
		return nil, fmt.Errorf("%w: unknown version", errBadRecord)
	}
	rest := val[1:]
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, false
		}
		f := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return f, true
	}
	typ, ok1 := field()
	topic, ok2 := field()
	off, k := binary.Uvarint(rest)
	if !ok1 || !ok2 || k <= 0 {
		return nil, fmt.Errorf("%w: truncated", errBadRecord)
	}
	rest = rest[k:]
	if off >= uint64(len(rest)) || rest[len(rest)-1] != '}' {
		return nil, fmt.Errorf("%w: bad envelope", errBadRecord)
	}
	js := make([]byte, len(rest))
	copy(js, rest)
	return &event.Event{ID: id, Type: internType(typ), Topic: string(topic), Data: js[off : len(js)-1], JSON: js}, nil
}

// internType returns the catalogue's string for a known type, so that replayed events share
// one copy of each type name.
func internType(b []byte) string {
	for _, t := range internedTypes {
		if string(b) == t { // no allocation: compared in place
			return t
		}
	}
	return string(b)
}

var internedTypes = [...]string{event.TypeJobProgress, event.TypeQueueStatus, event.TypeJobQueued,
	event.TypeJobStarted, event.TypeJobCompleted, event.TypeJobFailed, event.TypeNoteCreated,
	event.TypeNoteUpdated, event.TypeNoteDeleted}

// diskBounds are the log's bounds with its length, stored under 'b' in the batch of every
// commit that changes them.
type diskBounds struct {
	First, Last, MaxDeleted event.ID
	Trimmed                 bool
	Count                   int64
}

func (b diskBounds) public() streams.Bounds {
	return streams.Bounds{First: b.First, Last: b.Last, MaxDeleted: b.MaxDeleted, Trimmed: b.Trimmed}
}

func encodeBounds(b diskBounds) []byte {
	out := make([]byte, 0, 58)
	out = appendID(out, b.First)
	out = appendID(out, b.Last)
	out = appendID(out, b.MaxDeleted)
	t := byte(0)
	if b.Trimmed {
		t = 1
	}
	out = append(out, t)
	return binary.BigEndian.AppendUint64(out, uint64(b.Count))
}

func decodeBounds(raw []byte) (diskBounds, error) {
	if len(raw) != 57 {
		return diskBounds{}, fmt.Errorf("bounds record: %w: %d bytes", errBadRecord, len(raw))
	}
	var b diskBounds
	b.First, _ = readID(raw)
	b.Last, _ = readID(raw[16:])
	b.MaxDeleted, _ = readID(raw[32:])
	b.Trimmed = raw[48] == 1
	b.Count = int64(binary.BigEndian.Uint64(raw[49:]))
	return b, nil
}
