package event

import (
	"bytes"
	"encoding/json"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// customType is one operator-defined event type, checked and compiled by LoadCatalogue.
// Immutable once built; its schema is safe for concurrent validation.
type customType struct {
	name        string
	description string
	topic       topicTemplate
	schema      *jsonschema.Schema
	schemaJSON  json.RawMessage // the data schema as JSON, for the listing
	sanitize    []sanitizeRule  // by property name
	uuids       []string        // top-level properties with format uuid, normalized to lowercase
}

// sanitizeRule runs a top-level string property through the sanitizer with its own cap.
type sanitizeRule struct {
	prop  string
	limit int // characters
}

// parse validates raw as the data of an event of type t, in this order: decoded strictly
// (duplicate keys at any depth are refused); sanitize rules applied; UUID-format properties
// lowercased; the schema checked (formats asserted); the topic built from the data. The Draft's
// Data is canonical: compact, object keys sorted, HTML characters not escaped, numbers as sent.
// The order makes parsing idempotent: parsing a draft's payload again yields the same draft.
func (t *customType) parse(raw json.RawMessage) (Draft, *ValidationError) {
	v, verr := decodeStrict(raw)
	if verr != nil {
		return Draft{}, verr
	}
	data, ok := v.(map[string]any)
	if !ok {
		return Draft{}, catInvalid("data", "must be a JSON object, got %s", catJSONKind(bytes.TrimLeft(raw, " \t\r\n")))
	}
	for _, r := range t.sanitize {
		if s, ok := data[r.prop].(string); ok {
			data[r.prop] = sanitize(s, r.limit)
		}
	}
	for _, p := range t.uuids {
		if s, ok := data[p].(string); ok {
			if u, ok := catUUIDNorm(s); ok {
				data[p] = u
			}
		}
	}
	if err := t.schema.Validate(data); err != nil {
		return Draft{}, schemaError(t.name, data, err)
	}
	topic, verr := t.topic.expand(data)
	if verr != nil {
		return Draft{}, verr
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(data); err != nil { // decoded JSON always encodes
		return Draft{}, catInvalid("data", "cannot be encoded: %v", err)
	}
	return Draft{Type: t.name, Topic: topic, Data: bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})}, nil
}
