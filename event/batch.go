package event

import (
	"bytes"
	"encoding/json"
	"io"
)

// ParseBatch decodes a publish body (docs/api.md#publishing): one event object, or a JSON array of 1 to MaxBatch
// events; JSON whitespace may surround it. Each event is validated as by ParseDraft, with the
// installed catalogue. A body that is empty, not an object or array, an empty array or an array
// of more than MaxBatch elements yields a *ValidationError with Field "body" and Index -1; an
// error inside array element i carries Index i. A single-object body reports its errors with
// Index -1. On error no drafts are returned.
func ParseBatch(body []byte) ([]Draft, error) { return Current().ParseBatch(body) }

// ParseBatch is the package-level ParseBatch for this catalogue: one catalogue validates the
// whole body, even if another is installed meanwhile.
func (c *Catalogue) ParseBatch(body []byte) ([]Draft, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, catInvalid("body", "is empty (want an event object or an array of 1 to %d events)", MaxBatch)
	}
	switch trimmed[0] {
	case '{':
		d, verr := c.parse(body)
		if verr != nil {
			return nil, verr
		}
		return []Draft{d}, nil
	case '[':
	default:
		return nil, catInvalid("body", "must be an event object or an array of 1 to %d events", MaxBatch)
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // '['
		return nil, catMalformed("body", err)
	}
	var drafts []Draft
	for dec.More() {
		i := len(drafts)
		if i == MaxBatch {
			return nil, catInvalid("body", "has too many events (at most %d per request)", MaxBatch)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			verr := catMalformed("", err)
			verr.Index = i
			return nil, verr
		}
		d, verr := c.parse(raw)
		if verr != nil {
			verr.Index = i
			return nil, verr
		}
		drafts = append(drafts, d)
	}
	if _, err := dec.Token(); err != nil { // ']'
		return nil, catMalformed("body", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, catInvalid("body", "has unexpected data after the array")
	}
	if len(drafts) == 0 {
		return nil, catInvalid("body", "must contain at least one event")
	}
	return drafts, nil
}
