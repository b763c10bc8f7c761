package event_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eventgate/eventgate/event"
)

const (
	catTestJob  = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"
	catTestNote = "0b7e3f0a-89ab-4cde-8f01-23456789abcd"
)

// catEv builds an event body from a type and a data object literal.
func catEv(typ, data string) string { return `{"type":"` + typ + `","data":` + data + `}` }

func TestTypesAndKnownType(t *testing.T) {
	t.Parallel()
	want := []string{"job.completed", "job.failed", "job.progress", "job.queued", "job.started",
		"note.created", "note.deleted", "note.updated", "queue.status"}
	got := event.Types()
	if !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	got[0] = "mutated"
	if event.Types()[0] != want[0] {
		t.Fatal("Types() returned shared storage")
	}
	for _, typ := range want {
		if !event.KnownType(typ) {
			t.Errorf("KnownType(%q) = false", typ)
		}
	}
	consts := []string{event.TypeJobQueued, event.TypeJobStarted, event.TypeJobProgress,
		event.TypeJobCompleted, event.TypeJobFailed, event.TypeNoteCreated,
		event.TypeNoteUpdated, event.TypeNoteDeleted, event.TypeQueueStatus}
	slices.Sort(consts)
	if !slices.Equal(consts, want) {
		t.Errorf("type constants = %v, want %v", consts, want)
	}
	for _, typ := range []string{"", "job", "Job.queued", "job.queued ", "resync", "job.*", "queue"} {
		if event.KnownType(typ) {
			t.Errorf("KnownType(%q) = true", typ)
		}
	}
}

func TestValidationErrorFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  event.ValidationError
		want string
	}{
		{event.ValidationError{Index: 3, Field: "data.percent", Message: "must be an integer from 0 to 100"},
			"event[3]: data.percent: must be an integer from 0 to 100"},
		{event.ValidationError{Index: -1, Field: "type", Message: "is required"}, "type: is required"},
		{event.ValidationError{Index: 0, Field: "", Message: "malformed JSON: x"}, "event[0]: malformed JSON: x"},
		{event.ValidationError{Index: -1, Message: "bad"}, "bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		var err error = &tt.err
		if !errors.Is(err, event.ErrInvalidEvent) {
			t.Errorf("%v does not wrap ErrInvalidEvent", err)
		}
	}
}

func TestParseDraftValid(t *testing.T) {
	t.Parallel()
	upper := strings.ToUpper(catTestJob)
	tests := []struct {
		name, in, typ, topic, data string
	}{
		{"queued", catEv("job.queued", `{"job_id":"`+catTestJob+`","job_type":"resize_image"}`),
			"job.queued", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","job_type":"resize_image"}`},
		{"started, field order and uppercase uuid normalized",
			`{"data":{"job_type":"a","job_id":"` + upper + `"},"type":"job.started"}`,
			"job.started", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","job_type":"a"}`},
		{"completed, whitespace everywhere", " \n\t{ \"type\" : \"job.completed\" ,\r\n \"data\" : { \"job_id\" : \"" + catTestJob + "\" , \"job_type\" : \"x9_\" } } \n",
			"job.completed", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","job_type":"x9_"}`},
		{"job_type 64 chars", catEv("job.queued", `{"job_id":"`+catTestJob+`","job_type":"a`+strings.Repeat("_", 63)+`"}`),
			"job.queued", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","job_type":"a` + strings.Repeat("_", 63) + `"}`},
		{"progress no message", catEv("job.progress", `{"job_id":"`+catTestJob+`","percent":40}`),
			"job.progress", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","percent":40}`},
		{"progress null message is absent", catEv("job.progress", `{"message":null,"job_id":"`+catTestJob+`","percent":0}`),
			"job.progress", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","percent":0}`},
		{"progress 100, -0, message sanitized, html not escaped",
			catEv("job.progress", `{"job_id":"`+catTestJob+`","percent":100,"message":"  <b>R&D</b>  at /srv/app/x.go:12\nsecond line"}`),
			"job.progress", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","percent":100,"message":"<b>R&D</b> at [path]"}`},
		{"progress -0", catEv("job.progress", `{"job_id":"`+catTestJob+`","percent":-0}`),
			"job.progress", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","percent":0}`},
		{"progress empty message kept", catEv("job.progress", `{"job_id":"`+catTestJob+`","percent":5,"message":""}`),
			"job.progress", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","percent":5,"message":""}`},
		{"failed", catEv("job.failed", `{"job_id":"`+catTestJob+`","job_type":"export","error":"query failed: SELECT * FROM users WHERE id=1"}`),
			"job.failed", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","job_type":"export","error":"query failed: [sql]"}`},
		{"failed with escapes", catEv("job.failed", `{"job_id":"`+catTestJob+`","job_type":"export","error":"say \"hi\" \\ \u00e9 \u2028 x"}`),
			"job.failed", "jobs/" + catTestJob, `{"job_id":"` + catTestJob + `","job_type":"export","error":"say \"hi\" \\ é"}`},
		{"note created", catEv("note.created", `{"note_id":"`+catTestNote+`","title":"Hello <world> & \"you\""}`),
			"note.created", "notes/" + catTestNote, `{"note_id":"` + catTestNote + `","title":"Hello <world> & \"you\""}`},
		{"note updated empty title", catEv("note.updated", `{"note_id":"`+catTestNote+`","title":""}`),
			"note.updated", "notes/" + catTestNote, `{"note_id":"` + catTestNote + `","title":""}`},
		{"note title keeps newlines (not sanitized)", catEv("note.updated", `{"note_id":"`+catTestNote+`","title":"a\nb"}`),
			"note.updated", "notes/" + catTestNote, `{"note_id":"` + catTestNote + `","title":"a\nb"}`},
		{"note deleted", catEv("note.deleted", `{"note_id":"`+catTestNote+`"}`),
			"note.deleted", "notes/" + catTestNote, `{"note_id":"` + catTestNote + `"}`},
		{"queue status", catEv("queue.status", `{"pending":0,"active":9223372036854775807}`),
			"queue.status", "queue", `{"pending":0,"active":9223372036854775807}`},
		{"escaped key", catEv("queue.status", `{"pend\u0069ng":1,"active":2}`),
			"queue.status", "queue", `{"pending":1,"active":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := event.ParseDraft([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseDraft: %v", err)
			}
			if d.Type != tt.typ || d.Topic != tt.topic || string(d.Data) != tt.data {
				t.Fatalf("got {%s %s %s}\nwant {%s %s %s}", d.Type, d.Topic, d.Data, tt.typ, tt.topic, tt.data)
			}
			catRoundTrip(t, d)
		})
	}
}

func catRoundTrip(t *testing.T, d event.Draft) {
	t.Helper()
	again, err := event.ParseDraft(d.Payload())
	if err != nil {
		t.Fatalf("ParseDraft(Payload()) of %s: %v", d.Payload(), err)
	}
	if again.Type != d.Type || again.Topic != d.Topic || !bytes.Equal(again.Data, d.Data) {
		t.Fatalf("round trip changed the draft:\n%+v\n%+v", d, again)
	}
}

func TestParseDraftTitleLength(t *testing.T) {
	t.Parallel()
	for _, unit := range []string{"a", "é", "€", "😀"} {
		for _, n := range []int{event.MaxTitleLen, event.MaxTitleLen + 1} {
			title := strings.Repeat(unit, n)
			_, err := event.ParseDraft([]byte(catEv("note.created", `{"note_id":"`+catTestNote+`","title":"`+title+`"}`)))
			if ok := n <= event.MaxTitleLen; (err == nil) != ok {
				t.Errorf("title of %d × %q: err = %v, want ok=%v", n, unit, err, ok)
			}
			if err != nil && !strings.Contains(err.Error(), "data.title: must be a string of at most 500 characters (got 501)") {
				t.Errorf("title error = %v", err)
			}
		}
	}
}

func TestParseDraftInvalid(t *testing.T) {
	t.Parallel()
	job := `"job_id":"` + catTestJob + `"`
	tests := []struct {
		name, in, field, msg string
	}{
		{"empty", ``, "", "malformed JSON"},
		{"spaces only", "  \n", "", "malformed JSON"},
		{"not json", `hello`, "", "malformed JSON"},
		{"truncated", `{"type":"job.queued","data":{`, "", "unexpected end of input"},
		{"array", `[]`, "", "must be a JSON object"},
		{"string", `"job.queued"`, "", "got string"},
		{"null", `null`, "", "got null"},
		{"number", `12`, "", "got number"},
		{"trailing garbage", catEv("note.deleted", `{"note_id":"`+catTestNote+`"}`) + ` x`, "", "unexpected data after the JSON object"},
		{"trailing object", catEv("note.deleted", `{"note_id":"`+catTestNote+`"}`) + `{}`, "", "unexpected data after"},
		{"trailing comma", `{"type":"note.deleted","data":{"note_id":"` + catTestNote + `"},}`, "", "malformed JSON"},
		{"missing type", `{"data":{}}`, "type", "is required"},
		{"null type", `{"type":null,"data":{}}`, "type", "must be a string, got null"},
		{"numeric type", `{"type":1,"data":{}}`, "type", "must be a string, got number"},
		{"unknown type", catEv("job.exploded", `{}`), "type", `unknown event type "job.exploded"`},
		{"type wrong case", catEv("Job.Queued", `{}`), "type", "unknown event type"},
		{"control type", `{"type":"resync","data":{}}`, "type", "unknown event type"},
		{"huge type quoted short", catEv(strings.Repeat("x", 5000), `{}`), "type", `"... (want one of`},
		{"unknown top field", `{"type":"note.deleted","data":{"note_id":"` + catTestNote + `"},"id":"1-0"}`, "id", "unknown field"},
		{"case-different top field", `{"Type":"note.deleted","data":{"note_id":"` + catTestNote + `"}}`, "Type", "unknown field"},
		{"weird unknown key quoted", `{"type":"note.deleted","data":{"note_id":"` + catTestNote + `"},"a b\n":1}`, `"a b\n"`, "unknown field"},
		{"duplicate type", `{"type":"note.deleted","type":"note.deleted","data":{"note_id":"` + catTestNote + `"}}`, "type", "duplicate field"},
		{"missing data", `{"type":"note.deleted"}`, "data", "is required"},
		{"null data", `{"type":"note.deleted","data":null}`, "data", "must be a JSON object, got null"},
		{"array data", `{"type":"note.deleted","data":[]}`, "data", "got array"},
		{"string data", `{"type":"note.deleted","data":"{}"}`, "data", "got string"},
		{"unknown data field", catEv("note.deleted", `{"note_id":"`+catTestNote+`","title":"x"}`), "data.title", "unknown field for note.deleted"},
		{"unknown data field nested", catEv("note.deleted", `{"note_id":"`+catTestNote+`","x":{"y":[1]}}`), "data.x", "unknown field"},
		{"duplicate data field", catEv("note.deleted", `{"note_id":"`+catTestNote+`","note_id":"`+catTestNote+`"}`), "data.note_id", "duplicate field"},
		{"case-different data field", catEv("note.deleted", `{"Note_ID":"`+catTestNote+`"}`), "data.Note_ID", "unknown field"},
		{"missing job_id", catEv("job.queued", `{"job_type":"a"}`), "data.job_id", "is required"},
		{"missing job_type", catEv("job.queued", `{`+job+`}`), "data.job_type", "is required"},
		{"null job_id", catEv("job.queued", `{"job_id":null,"job_type":"a"}`), "data.job_id", "must be a UUID (8-4-4-4-12 hex digits), got null"},
		{"numeric job_id", catEv("job.queued", `{"job_id":5,"job_type":"a"}`), "data.job_id", "got number"},
		{"uuid no hyphens", catEv("job.queued", `{"job_id":"6f1c2a9e1d4b4c599d1e6a2b3c4d5e6f","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"uuid braces", catEv("job.queued", `{"job_id":"{`+catTestJob+`}","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"uuid urn", catEv("job.queued", `{"job_id":"urn:uuid:`+catTestJob+`","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"uuid non-hex", catEv("job.queued", `{"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6g","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"uuid hyphen misplaced", catEv("job.queued", `{"job_id":"6f1c2a9e1-d4b-4c59-9d1e-6a2b3c4d5e6f","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"uuid padded", catEv("job.queued", `{"job_id":" `+catTestJob+`","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"uuid slash (topic injection)", catEv("job.queued", `{"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d/e6f","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"uuid fullwidth digit", catEv("job.queued", `{"job_id":"６f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6","job_type":"a"}`), "data.job_id", "must be a UUID"},
		{"job_type upper", catEv("job.queued", `{`+job+`,"job_type":"Resize"}`), "data.job_type", "must be a string matching"},
		{"job_type digit first", catEv("job.queued", `{`+job+`,"job_type":"1a"}`), "data.job_type", "matching"},
		{"job_type empty", catEv("job.queued", `{`+job+`,"job_type":""}`), "data.job_type", "matching"},
		{"job_type 65", catEv("job.queued", `{`+job+`,"job_type":"a`+strings.Repeat("b", 64)+`"}`), "data.job_type", "matching"},
		{"job_type dash", catEv("job.queued", `{`+job+`,"job_type":"a-b"}`), "data.job_type", "matching"},
		{"job_type trailing newline", catEv("job.queued", `{`+job+`,"job_type":"ab\n"}`), "data.job_type", "matching"},
		{"job_type number", catEv("job.queued", `{`+job+`,"job_type":1}`), "data.job_type", "got number"},
		{"percent float", catEv("job.progress", `{`+job+`,"percent":40.5}`), "data.percent", "must be an integer from 0 to 100, got 40.5"},
		{"percent 40.0", catEv("job.progress", `{`+job+`,"percent":40.0}`), "data.percent", "must be an integer from 0 to 100"},
		{"percent exponent", catEv("job.progress", `{`+job+`,"percent":1e2}`), "data.percent", "must be an integer from 0 to 100"},
		{"percent string", catEv("job.progress", `{`+job+`,"percent":"40"}`), "data.percent", "must be an integer from 0 to 100, got string"},
		{"percent bool", catEv("job.progress", `{`+job+`,"percent":true}`), "data.percent", "got boolean"},
		{"percent null", catEv("job.progress", `{`+job+`,"percent":null}`), "data.percent", "got null"},
		{"percent negative", catEv("job.progress", `{`+job+`,"percent":-1}`), "data.percent", "got -1"},
		{"percent 101", catEv("job.progress", `{`+job+`,"percent":101}`), "data.percent", "got 101"},
		{"percent huge", catEv("job.progress", `{`+job+`,"percent":`+strings.Repeat("9", 400)+`}`), "data.percent", "must be an integer from 0 to 100"},
		{"percent leading zero", catEv("job.progress", `{`+job+`,"percent":01}`), "", "malformed JSON"},
		{"percent plus", catEv("job.progress", `{`+job+`,"percent":+1}`), "", "malformed JSON"},
		{"percent NaN", catEv("job.progress", `{`+job+`,"percent":NaN}`), "", "malformed JSON"},
		{"missing percent", catEv("job.progress", `{`+job+`}`), "data.percent", "is required"},
		{"message number", catEv("job.progress", `{`+job+`,"percent":1,"message":1}`), "data.message", "must be a string, got number"},
		{"message object", catEv("job.progress", `{`+job+`,"percent":1,"message":{}}`), "data.message", "got object"},
		{"missing error", catEv("job.failed", `{`+job+`,"job_type":"a"}`), "data.error", "is required"},
		{"null error", catEv("job.failed", `{`+job+`,"job_type":"a","error":null}`), "data.error", "must be a string, got null"},
		{"array error", catEv("job.failed", `{`+job+`,"job_type":"a","error":["x"]}`), "data.error", "got array"},
		{"failed extra percent", catEv("job.failed", `{`+job+`,"job_type":"a","error":"x","percent":1}`), "data.percent", "unknown field"},
		{"missing title", catEv("note.created", `{"note_id":"`+catTestNote+`"}`), "data.title", "is required"},
		{"null title", catEv("note.updated", `{"note_id":"`+catTestNote+`","title":null}`), "data.title", "got null"},
		{"title number", catEv("note.updated", `{"note_id":"`+catTestNote+`","title":5}`), "data.title", "got number"},
		{"note with job_id", catEv("note.created", `{"job_id":"`+catTestJob+`","title":"x"}`), "data.job_id", "unknown field"},
		{"pending negative", catEv("queue.status", `{"pending":-5,"active":0}`), "data.pending", "must be an integer from 0 to 9223372036854775807"},
		{"active overflow", catEv("queue.status", `{"pending":0,"active":9223372036854775808}`), "data.active", "must be an integer from 0"},
		{"active float", catEv("queue.status", `{"pending":0,"active":1.5}`), "data.active", "got 1.5"},
		{"active string", catEv("queue.status", `{"pending":0,"active":"1"}`), "data.active", "got string"},
		{"missing active", catEv("queue.status", `{"pending":0}`), "data.active", "is required"},
		{"queue empty data", catEv("queue.status", `{}`), "data.pending", "is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := event.ParseDraft([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseDraft accepted %s: %+v", tt.in, d)
			}
			catCheckErr(t, err, -1, tt.field, tt.msg)
			if d.Type != "" || d.Data != nil {
				t.Errorf("draft not zero on error: %+v", d)
			}
		})
	}
}

func catCheckErr(t *testing.T, err error, index int, field, msg string) {
	t.Helper()
	if !errors.Is(err, event.ErrInvalidEvent) {
		t.Fatalf("error %v does not wrap ErrInvalidEvent", err)
	}
	var ve *event.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %T is not a *ValidationError", err)
	}
	if ve.Index != index || ve.Field != field || !strings.Contains(ve.Message, msg) {
		t.Fatalf("got Index=%d Field=%q Message=%q\nwant Index=%d Field=%q Message containing %q",
			ve.Index, ve.Field, ve.Message, index, field, msg)
	}
	if !utf8.ValidString(ve.Error()) || len(ve.Error()) > 1000 {
		t.Errorf("error text is invalid UTF-8 or too long: %q", ve.Error())
	}
}

func catBatch(n int, bad int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",\n ")
		}
		pct := i % 101
		if i == bad {
			pct = 101
		}
		fmt.Fprintf(&b, `{"type":"job.progress","data":{"job_id":"%s","percent":%d}}`, catTestJob, pct)
	}
	b.WriteString("]")
	return b.String()
}

func TestParseBatch(t *testing.T) {
	t.Parallel()
	one := catEv("note.deleted", `{"note_id":"`+catTestNote+`"}`)
	valid := []struct {
		name, in string
		n        int
	}{
		{"single object", one, 1},
		{"single object with whitespace", " \r\n\t" + one + "\n", 1},
		{"array of one", "[" + one + "]", 1},
		{"array with whitespace", " \n[ " + one + " ,\n\t" + one + " ]\n ", 2},
		{"max batch", catBatch(event.MaxBatch, -1), event.MaxBatch},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, err := event.ParseBatch([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseBatch: %v", err)
			}
			if len(ds) != tt.n {
				t.Fatalf("got %d drafts, want %d", len(ds), tt.n)
			}
			for i, d := range ds {
				if d.Type == "" || d.Topic == "" || len(d.Data) == 0 {
					t.Fatalf("draft %d empty: %+v", i, d)
				}
			}
		})
	}
	if ds, _ := event.ParseBatch([]byte(catBatch(3, -1))); string(ds[2].Data) != `{"job_id":"`+catTestJob+`","percent":2}` {
		t.Errorf("batch order not kept: %s", ds[2].Data)
	}

	invalid := []struct {
		name, in   string
		index      int
		field, msg string
	}{
		{"empty body", "", -1, "body", "is empty"},
		{"whitespace body", " \n\t ", -1, "body", "is empty"},
		{"string body", `"x"`, -1, "body", "must be an event object or an array of 1 to 1000 events"},
		{"number body", `1`, -1, "body", "must be an event object or an array"},
		{"null body", `null`, -1, "body", "must be an event object or an array"},
		{"bom", "\ufeff" + one, -1, "body", "must be an event object or an array"},
		{"empty array", `[]`, -1, "body", "at least one event"},
		{"empty array spaced", " [ \n ] ", -1, "body", "at least one event"},
		{"too many", catBatch(event.MaxBatch+1, -1), -1, "body", "too many events (at most 1000"},
		{"way too many", "[" + strings.Repeat(one+",", 5000) + one + "]", -1, "body", "too many events"},
		{"bad element first", catBatch(3, 0), 0, "data.percent", "must be an integer from 0 to 100"},
		{"bad element last of max", catBatch(event.MaxBatch, event.MaxBatch-1), 999, "data.percent", "got 101"},
		{"non-object element", "[" + one + ",1]", 1, "", "must be a JSON object"},
		{"null element", "[" + one + "," + one + ",null]", 2, "", "got null"},
		{"nested array element", "[[" + one + "]]", 0, "", "got array"},
		{"unknown field in element", "[" + one + `,{"type":"note.deleted","data":{"note_id":"` + catTestNote + `","x":1}}]`, 1, "data.x", "unknown field"},
		{"single object error has no index", catEv("note.deleted", `{}`), -1, "data.note_id", "is required"},
		{"trailing garbage after array", "[" + one + "] x", -1, "body", "unexpected data after the array"},
		{"second array", "[" + one + "][" + one + "]", -1, "body", "unexpected data after the array"},
		{"unterminated array", "[" + one, -1, "body", "malformed JSON"},
		{"trailing comma", "[" + one + ",]", 1, "", "malformed JSON"},
		{"missing comma", "[" + one + " " + one + "]", 1, "", "malformed JSON"},
		{"trailing garbage after object", one + " x", -1, "", "unexpected data after"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, err := event.ParseBatch([]byte(tt.in))
			if err == nil {
				t.Fatalf("ParseBatch accepted it: %d drafts", len(ds))
			}
			if ds != nil {
				t.Errorf("drafts returned with an error: %d", len(ds))
			}
			catCheckErr(t, err, tt.index, tt.field, tt.msg)
		})
	}
	_, err := event.ParseBatch([]byte(catBatch(5, 3)))
	if got, want := err.Error(), "event[3]: data.percent: must be an integer from 0 to 100, got 101"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// FuzzParseDraft: ParseDraft never panics, errors are validation errors, and an accepted draft
// survives a round trip through its payload unchanged.
func FuzzParseDraft(f *testing.F) {
	job := `"job_id":"` + catTestJob + `"`
	for _, s := range []string{
		catEv("job.queued", `{`+job+`,"job_type":"a"}`),
		catEv("job.started", `{`+job+`,"job_type":"resize_image"}`),
		catEv("job.completed", `{`+job+`,"job_type":"z9"}`),
		catEv("job.progress", `{`+job+`,"percent":40,"message":"row 3 of /var/x.csv:12 <ok>"}`),
		catEv("job.progress", `{`+job+`,"percent":100,"message":null}`),
		catEv("job.failed", `{`+job+`,"job_type":"a","error":"Traceback (most recent call last):\n  File \"/x.py\", line 1\nValueError: SELECT * FROM t"}`),
		catEv("job.failed", `{`+job+`,"job_type":"a","error":"\u2028\u0000\ud800 at x(y)"}`),
		catEv("note.created", `{"note_id":"`+catTestNote+`","title":"\u00e9\u2028\u0001 <b>"}`),
		catEv("note.updated", `{"note_id":"`+strings.ToUpper(catTestNote)+`","title":""}`),
		catEv("note.deleted", `{"note_id":"`+catTestNote+`"}`),
		catEv("queue.status", `{"pending":0,"active":9223372036854775807}`),
		catEv("queue.status", `{"pending":1e2,"active":-0}`),
		`{"type":"job.queued","data":{}} {}`,
		`{"type":"x"`, `[]`, `null`, ``, `{"a":1,"a":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		d, err := event.ParseDraft(raw)
		if err != nil {
			var ve *event.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, event.ErrInvalidEvent) || ve.Index != -1 {
				t.Fatalf("bad error %T %v", err, err)
			}
			return
		}
		if !event.KnownType(d.Type) || d.Topic == "" {
			t.Fatalf("bad draft %+v", d)
		}
		catRoundTrip(t, d)
	})
}
