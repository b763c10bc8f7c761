package event

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// ListingEntry is one type of the catalogue listing (GET /api/v1/catalogue), the
// machine-readable contract of what may be published.
type ListingEntry struct {
	// Type is the event type.
	Type string `json:"type"`
	// Builtin is true for the built-in types (docs/api.md#catalogue), false for the operator's.
	Builtin bool `json:"builtin"`
	// Topic is the topic template: {name} stands for the value of the data's field name.
	Topic string `json:"topic"`
	// Description says what the event means.
	Description string `json:"description"`
	// Schema is the JSON Schema (2020-12) of the event's data.
	Schema json.RawMessage `json:"schema"`
	// Sanitize lists the fields that are sanitized on publish, with their cap in characters.
	Sanitize map[string]int `json:"sanitize,omitempty"`
}

// Listing returns the catalogue listing, {"types":[ListingEntry...]} sorted by type, as JSON,
// and its strong ETag. Both are computed once per catalogue; the caller must not modify body.
func (c *Catalogue) Listing() (body []byte, etag string) { return c.listing, c.etag }

func (c *Catalogue) buildListing() ([]byte, string) {
	entries := make([]ListingEntry, 0, len(c.types))
	for _, t := range c.types {
		if e, ok := builtinListing[t]; ok {
			e.Type, e.Builtin = t, true
			entries = append(entries, e)
			continue
		}
		ct := c.custom[t]
		e := ListingEntry{Type: t, Topic: ct.topic.text, Description: ct.description, Schema: ct.schemaJSON}
		for _, r := range ct.sanitize {
			if e.Sanitize == nil {
				e.Sanitize = map[string]int{}
			}
			e.Sanitize[r.prop] = r.limit
		}
		entries = append(entries, e)
	}
	body, err := json.Marshal(struct {
		Types []ListingEntry `json:"types"`
	}{entries})
	if err != nil {
		panic("event: catalogue listing: " + err.Error()) // every part is JSON already
	}
	sum := sha256.Sum256(body)
	return body, `"` + hex.EncodeToString(sum[:16]) + `"`
}

// JSON Schemas of the built-in types' data. They describe ParseDraft's rules; ParseDraft is
// stricter in one place: integers must be written without a fraction or exponent.
const (
	lsUUID    = `{"type":"string","format":"uuid"}`
	lsJobType = `{"type":"string","pattern":"^[a-z][a-z0-9_]{0,63}$"}`
	lsJob     = `{"type":"object","required":["job_id","job_type"],"additionalProperties":false,` +
		`"properties":{"job_id":` + lsUUID + `,"job_type":` + lsJobType + `}}`
	lsNote = `{"type":"object","required":["note_id","title"],"additionalProperties":false,` +
		`"properties":{"note_id":` + lsUUID + `,"title":{"type":"string","maxLength":500}}}`
)

// builtinListing holds the listing entries of the built-in types (Type and Builtin are set by
// buildListing).
var builtinListing = map[string]ListingEntry{
	TypeJobQueued:    {Topic: "jobs/{job_id}", Description: "A job was queued.", Schema: json.RawMessage(lsJob)},
	TypeJobStarted:   {Topic: "jobs/{job_id}", Description: "A job started running.", Schema: json.RawMessage(lsJob)},
	TypeJobCompleted: {Topic: "jobs/{job_id}", Description: "A job finished successfully.", Schema: json.RawMessage(lsJob)},
	TypeJobProgress: {Topic: "jobs/{job_id}", Description: "A running job reports progress; message is optional (null counts as absent).",
		Sanitize: map[string]int{"message": MaxMessageLen},
		Schema: json.RawMessage(`{"type":"object","required":["job_id","percent"],"additionalProperties":false,` +
			`"properties":{"job_id":` + lsUUID + `,"percent":{"type":"integer","minimum":0,"maximum":100},` +
			`"message":{"type":["string","null"]}}}`)},
	TypeJobFailed: {Topic: "jobs/{job_id}", Description: "A job failed.",
		Sanitize: map[string]int{"error": MaxErrorLen},
		Schema: json.RawMessage(`{"type":"object","required":["job_id","job_type","error"],"additionalProperties":false,` +
			`"properties":{"job_id":` + lsUUID + `,"job_type":` + lsJobType + `,"error":{"type":"string"}}}`)},
	TypeNoteCreated: {Topic: "notes/{note_id}", Description: "A note was created.", Schema: json.RawMessage(lsNote)},
	TypeNoteUpdated: {Topic: "notes/{note_id}", Description: "A note was changed.", Schema: json.RawMessage(lsNote)},
	TypeNoteDeleted: {Topic: "notes/{note_id}", Description: "A note was deleted.",
		Schema: json.RawMessage(`{"type":"object","required":["note_id"],"additionalProperties":false,` +
			`"properties":{"note_id":` + lsUUID + `}}`)},
	TypeQueueStatus: {Topic: "queue", Description: "A snapshot of the job queue.",
		Schema: json.RawMessage(`{"type":"object","required":["pending","active"],"additionalProperties":false,` +
			`"properties":{"pending":{"type":"integer","minimum":0,"maximum":9223372036854775807},` +
			`"active":{"type":"integer","minimum":0,"maximum":9223372036854775807}}}`)},
}
