package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Event types of the catalogue (docs/api.md#catalogue). They are the only types ParseDraft accepts.
const (
	// TypeJobQueued: a job was queued. Data: job_id, job_type.
	TypeJobQueued = "job.queued"
	// TypeJobStarted: a job started running. Data: job_id, job_type.
	TypeJobStarted = "job.started"
	// TypeJobProgress: a running job reports progress. Data: job_id, percent, optional message.
	TypeJobProgress = "job.progress"
	// TypeJobCompleted: a job finished successfully. Data: job_id, job_type.
	TypeJobCompleted = "job.completed"
	// TypeJobFailed: a job failed. Data: job_id, job_type, error.
	TypeJobFailed = "job.failed"
	// TypeNoteCreated: a note was created. Data: note_id, title.
	TypeNoteCreated = "note.created"
	// TypeNoteUpdated: a note was changed. Data: note_id, title.
	TypeNoteUpdated = "note.updated"
	// TypeNoteDeleted: a note was deleted. Data: note_id.
	TypeNoteDeleted = "note.deleted"
	// TypeQueueStatus: a snapshot of the job queue. Data: pending, active.
	TypeQueueStatus = "queue.status"
)

// MaxBatch is the largest number of events one publish body may carry (docs/api.md#publishing).
const MaxBatch = 1000

// MaxTitleLen is the longest accepted note title, in characters (Unicode code points).
const MaxTitleLen = 500

// ValidationError says why an event, or a publish body, was rejected. It wraps ErrInvalidEvent.
// ParseDraft and ParseBatch return it as a *ValidationError.
type ValidationError struct {
	// Index is the position of the offending event in a batch (an array body), or -1 when the
	// error is not about one element of an array.
	Index int
	// Field names what is wrong: "type", "data", "data.job_id", an unknown top-level key, "body"
	// for the publish body as a whole, or "" for the event as a whole (e.g. malformed JSON).
	Field string
	// Message describes the problem, e.g. "must be an integer from 0 to 100".
	Message string
}

// Error formats the error as "event[3]: data.percent: must be an integer from 0 to 100"; the
// "event[i]: " part is omitted when Index < 0 and the field part when Field is empty.
func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.Index >= 0 {
		b.WriteString("event[")
		b.WriteString(strconv.Itoa(e.Index))
		b.WriteString("]: ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap returns ErrInvalidEvent, so errors.Is(err, ErrInvalidEvent) holds for every
// validation error.
func (e *ValidationError) Unwrap() error { return ErrInvalidEvent }

// catKind is how one data field is validated and encoded.
type catKind uint8

const (
	catUUID    catKind = iota // UUID string, normalized to lowercase
	catJobType                // [a-z][a-z0-9_]{0,63}
	catPercent                // integer 0..100
	catCount                  // integer 0..MaxInt64
	catTitle                  // string of at most MaxTitleLen runes, kept as sent
	catMessage                // string, sanitized with SanitizeMessage
	catError                  // string, sanitized with SanitizeError
)

// catDesc is the "must be ..." part of the error for a field of each kind.
var catDesc = [...]string{
	catUUID:    "must be a UUID (8-4-4-4-12 hex digits)",
	catJobType: "must be a string matching [a-z][a-z0-9_]{0,63}",
	catPercent: "must be an integer from 0 to 100",
	catCount:   "must be an integer from 0 to 9223372036854775807",
	catTitle:   "must be a string of at most 500 characters",
	catMessage: "must be a string",
	catError:   "must be a string",
}

type catField struct {
	name     string
	kind     catKind
	optional bool // absent or null: omitted from the canonical data
}

type catSpec struct {
	// topic is a prefix ("jobs/", "notes/") completed by the first field's value (the id), or
	// the whole topic ("queue") when it does not end in "/".
	topic  string
	fields []catField // in canonical order
}

var (
	catFJobID   = catField{name: "job_id", kind: catUUID}
	catFJobType = catField{name: "job_type", kind: catJobType}
	catFNoteID  = catField{name: "note_id", kind: catUUID}
	catFTitle   = catField{name: "title", kind: catTitle}

	catJobSpec  = catSpec{topic: "jobs/", fields: []catField{catFJobID, catFJobType}}
	catNoteSpec = catSpec{topic: "notes/", fields: []catField{catFNoteID, catFTitle}}
)

var catSpecs = map[string]catSpec{
	TypeJobQueued:    catJobSpec,
	TypeJobStarted:   catJobSpec,
	TypeJobCompleted: catJobSpec,
	TypeJobProgress: {topic: "jobs/", fields: []catField{
		catFJobID, {name: "percent", kind: catPercent}, {name: "message", kind: catMessage, optional: true}}},
	TypeJobFailed: {topic: "jobs/", fields: []catField{
		catFJobID, catFJobType, {name: "error", kind: catError}}},
	TypeNoteCreated: catNoteSpec,
	TypeNoteUpdated: catNoteSpec,
	TypeNoteDeleted: {topic: "notes/", fields: []catField{catFNoteID}},
	TypeQueueStatus: {topic: "queue", fields: []catField{
		{name: "pending", kind: catCount}, {name: "active", kind: catCount}}},
}

var catTypes = func() []string {
	ts := make([]string, 0, len(catSpecs))
	for t := range catSpecs {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}()

// KnownType reports whether t is a type of the installed catalogue (Current).
func KnownType(t string) bool { return Current().KnownType(t) }

// Types returns the installed catalogue's event types, built-in and custom, sorted. The caller
// owns the returned slice.
func Types() []string { return Current().Types() }

// ParseDraft strictly decodes and validates one event {"type":...,"data":{...}} (docs/api.md#catalogue) with
// the installed catalogue (Current): the type must be in the catalogue; data must hold exactly
// the type's fields with the right JSON types (unknown, duplicate, missing or null required
// fields are errors; an optional message that is null counts as absent); nothing may follow the
// object. UUIDs are normalized to lowercase, and message and error are sanitized
// (SanitizeMessage, SanitizeError). The returned Draft's Topic is derived from the data and its
// Data is canonical JSON: fields in the catalogue's order, no insignificant space, HTML
// characters (<, >, &) not escaped. Custom types are validated by their JSON Schema (see
// LoadCatalogue); their canonical Data has its object keys sorted.
//
// Every error is a *ValidationError with Index -1.
func ParseDraft(raw []byte) (Draft, error) { return Current().ParseDraft(raw) }

// ParseDraft is the package-level ParseDraft for this catalogue.
func (c *Catalogue) ParseDraft(raw []byte) (Draft, error) {
	d, verr := c.parse(raw)
	if verr != nil {
		return Draft{}, verr
	}
	return d, nil
}

func (c *Catalogue) parse(raw []byte) (Draft, *ValidationError) {
	members, verr := catObject(raw, "")
	if verr != nil {
		return Draft{}, verr
	}
	var typRaw, dataRaw json.RawMessage
	for _, m := range members {
		switch m.key {
		case "type":
			typRaw = m.val
		case "data":
			dataRaw = m.val
		default:
			return Draft{}, catInvalid(catJoin("", m.key), "unknown field (an event has only type and data)")
		}
	}
	if typRaw == nil {
		return Draft{}, catInvalid("type", "is required")
	}
	if k := catJSONKind(typRaw); k != "string" {
		return Draft{}, catInvalid("type", "must be a string, got %s", k)
	}
	var typ string
	if err := json.Unmarshal(typRaw, &typ); err != nil {
		return Draft{}, catInvalid("type", "must be a string")
	}
	spec, ok := catSpecs[typ]
	if !ok {
		ct := c.custom[typ]
		if ct == nil {
			return Draft{}, catInvalid("type", "unknown event type %s (want one of %s)", catQuote(typ), c.want)
		}
		if dataRaw == nil {
			return Draft{}, catInvalid("data", "is required")
		}
		return ct.parse(dataRaw)
	}
	if dataRaw == nil {
		return Draft{}, catInvalid("data", "is required")
	}
	fields, verr := catObject(dataRaw, "data")
	if verr != nil {
		return Draft{}, verr
	}
	for _, m := range fields {
		if !slices.ContainsFunc(spec.fields, func(f catField) bool { return f.name == m.key }) {
			return Draft{}, catInvalid(catJoin("data", m.key), "unknown field for %s", typ)
		}
	}

	w := catWriter{}
	w.buf.WriteByte('{')
	topic := spec.topic
	for i, f := range spec.fields {
		var val json.RawMessage
		for _, m := range fields {
			if m.key == f.name {
				val = m.val
				break
			}
		}
		name := "data." + f.name
		if val == nil || (f.optional && catJSONKind(val) == "null") {
			if f.optional {
				continue
			}
			return Draft{}, catInvalid(name, "is required")
		}
		if w.buf.Len() > 1 {
			w.buf.WriteByte(',')
		}
		w.buf.WriteByte('"')
		w.buf.WriteString(f.name)
		w.buf.WriteString(`":`)
		s, verr := w.value(f.kind, name, val)
		if verr != nil {
			return Draft{}, verr
		}
		if i == 0 && strings.HasSuffix(spec.topic, "/") {
			topic += s
		}
	}
	w.buf.WriteByte('}')
	return Draft{Type: typ, Topic: topic, Data: bytes.Clone(w.buf.Bytes())}, nil
}

// catWriter builds the canonical data object.
type catWriter struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// value validates val as a field of kind k and appends its canonical encoding. For string kinds
// it returns the (normalized) string.
func (w *catWriter) value(k catKind, name string, val json.RawMessage) (string, *ValidationError) {
	kind := catJSONKind(val)
	switch k {
	case catPercent, catCount:
		if kind != "number" {
			return "", catInvalid(name, "%s, got %s", catDesc[k], kind)
		}
		limit := int64(1<<63 - 1)
		if k == catPercent {
			limit = 100
		}
		n, ok := catInteger(val)
		if !ok || n < 0 || n > limit {
			if len(val) <= 32 {
				return "", catInvalid(name, "%s, got %s", catDesc[k], val)
			}
			return "", catInvalid(name, "%s", catDesc[k])
		}
		w.buf.WriteString(strconv.FormatInt(n, 10))
		return "", nil
	}
	if kind != "string" {
		return "", catInvalid(name, "%s, got %s", catDesc[k], kind)
	}
	var s string
	if err := json.Unmarshal(val, &s); err != nil {
		return "", catInvalid(name, "%s", catDesc[k])
	}
	switch k {
	case catUUID:
		u, ok := catUUIDNorm(s)
		if !ok {
			return "", catInvalid(name, "%s", catDesc[k])
		}
		s = u
	case catJobType:
		if !catJobTypeOK(s) {
			return "", catInvalid(name, "%s", catDesc[k])
		}
	case catTitle:
		if n := utf8.RuneCountInString(s); n > MaxTitleLen {
			return "", catInvalid(name, "%s (got %d)", catDesc[k], n)
		}
	case catMessage:
		s = SanitizeMessage(s)
	case catError:
		s = SanitizeError(s)
	}
	if w.enc == nil {
		w.enc = json.NewEncoder(&w.buf)
		w.enc.SetEscapeHTML(false)
	}
	_ = w.enc.Encode(s) // a string always encodes
	w.buf.Truncate(w.buf.Len() - 1)
	return s, nil
}

func catInvalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Index: -1, Field: field, Message: fmt.Sprintf(format, args...)}
}

func catMalformed(field string, err error) *ValidationError {
	msg := err.Error()
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		msg = "unexpected end of input"
	}
	return &ValidationError{Index: -1, Field: field, Message: "malformed JSON: " + msg}
}

// catJSONKind names the JSON type of a syntactically valid value.
func catJSONKind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

// catInteger parses a JSON number that is written as an integer (no fraction, no exponent)
// and fits an int64.
func catInteger(v []byte) (int64, bool) {
	for i, c := range v {
		if (c < '0' || c > '9') && !(i == 0 && c == '-') {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

// catUUIDNorm checks the 8-4-4-4-12 hex form (either case) and returns it in lowercase.
func catUUIDNorm(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return "", false
			}
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			b[i] = c + ('a' - 'A')
		default:
			return "", false
		}
	}
	return string(b), true
}

func catJobTypeOK(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// catJoin builds the error field name of key inside field, quoting keys that are not plain.
func catJoin(field, key string) string {
	plain := len(key) > 0 && len(key) <= 64
	for i := 0; plain && i < len(key); i++ {
		c := key[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if !plain {
		key = catQuote(key)
	}
	if field == "" {
		return key
	}
	return field + "." + key
}

// catQuote quotes s for an error message, cut to 64 bytes at a rune boundary.
func catQuote(s string) string {
	if len(s) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}
