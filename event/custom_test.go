package event_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/eventgate/eventgate/event"
)

// TestInstall swaps the installed catalogue, which every package-level function follows. It is
// not parallel: the other tests of the package run with the built-ins installed, after it.
func TestInstall(t *testing.T) {
	c := exampleTypes(t)
	if event.Current() != event.Builtin() {
		t.Fatal("the built-ins are not installed at start")
	}
	order := []byte(shipped(`{"order_id":"` + orderID + `","carrier":"ups"}`))
	if _, err := event.ParseDraft(order); err == nil || event.KnownType("order.shipped") {
		t.Fatal("a custom type is known before its catalogue is installed")
	}
	if prev := event.Install(c); prev != event.Builtin() {
		t.Fatalf("Install returned %p, want the built-ins", prev)
	}
	t.Cleanup(func() { event.Install(nil) })

	if d, err := event.ParseDraft(order); err != nil || d.Topic != "orders/"+orderID {
		t.Fatalf("ParseDraft after Install: %+v, %v", d, err)
	}
	if ds, err := event.ParseBatch(order); err != nil || len(ds) != 1 {
		t.Fatalf("ParseBatch after Install: %v", err)
	}
	if ev, err := event.DecodeEntry(event.ID{MS: 1}, order); err != nil || ev.Type != "order.shipped" {
		t.Fatalf("DecodeEntry after Install: %v", err)
	}
	if !event.KnownType("order.shipped") || !slices.Contains(event.Types(), "payment.declined") {
		t.Fatalf("KnownType/Types after Install: %v", event.Types())
	}
	if _, err := event.NewFilter([]string{"orders/*"}, []string{"order.shipped"}); err != nil {
		t.Fatalf("a filter on a custom type: %v", err)
	}

	if prev := event.Install(nil); prev != c {
		t.Fatal("Install(nil) did not return the example catalogue")
	}
	if event.Current() != event.Builtin() || event.KnownType("order.shipped") {
		t.Fatal("Install(nil) did not go back to the built-ins")
	}
	if _, err := event.NewFilter(nil, []string{"order.shipped"}); err == nil {
		t.Fatal("a filter on a type no longer installed was accepted")
	}
}

// TestListing: the listing holds every type, sorted, with its topic template, schema,
// description and sanitize rules; its ETag changes with the content.
func TestListing(t *testing.T) {
	t.Parallel()
	c := exampleTypes(t)
	body, etag := c.Listing()
	var l struct{ Types []event.ListingEntry }
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		t.Fatalf("listing %s: %v", body, err)
	}
	var names []string
	for _, e := range l.Types {
		names = append(names, e.Type)
		if e.Topic == "" || e.Description == "" || len(e.Schema) == 0 || e.Builtin == c.Custom(e.Type) {
			t.Errorf("incomplete entry %+v", e)
		}
	}
	if !slices.Equal(names, c.Types()) {
		t.Fatalf("listed %v, want %v", names, c.Types())
	}
	i := slices.Index(names, "order.shipped")
	if e := l.Types[i]; e.Topic != "orders/{order_id}" || e.Sanitize["note"] != 200 || !strings.Contains(string(e.Schema), `"carrier":{`) {
		t.Fatalf("order.shipped listed as %+v", e)
	}
	if _, builtinTag := event.Builtin().Listing(); builtinTag == etag || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %s of the example equals the built-ins' %s, or is not a strong ETag", etag, builtinTag)
	}
}

// TestBuiltinSchemas: the JSON Schemas listed for the built-in types compile and agree with
// ParseDraft on valid and invalid data, and their topic templates with the derived topics.
func TestBuiltinSchemas(t *testing.T) {
	t.Parallel()
	body, _ := event.Builtin().Listing()
	var l struct{ Types []event.ListingEntry }
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	job := `"job_id":"` + catTestJob + `"`
	samples := map[string][]string{
		"job.queued":    {`{` + job + `,"job_type":"export"}`, `{` + job + `,"job_type":"Export"}`, `{` + job + `}`, `{` + job + `,"job_type":"a","x":1}`},
		"job.started":   {`{` + job + `,"job_type":"e"}`, `{"job_id":"x","job_type":"e"}`},
		"job.completed": {`{` + job + `,"job_type":"e"}`, `{` + job + `,"job_type":""}`},
		"job.progress":  {`{` + job + `,"percent":0}`, `{` + job + `,"percent":100,"message":"m"}`, `{` + job + `,"percent":5,"message":null}`, `{` + job + `,"percent":101}`, `{` + job + `,"percent":-1}`, `{` + job + `,"percent":"5"}`},
		"job.failed":    {`{` + job + `,"job_type":"e","error":"boom"}`, `{` + job + `,"job_type":"e"}`, `{` + job + `,"job_type":"e","error":1}`},
		"note.created":  {`{"note_id":"` + catTestNote + `","title":"t"}`, `{"note_id":"` + catTestNote + `","title":"` + strings.Repeat("t", 501) + `"}`},
		"note.updated":  {`{"note_id":"` + catTestNote + `","title":""}`, `{"note_id":"` + catTestNote + `"}`},
		"note.deleted":  {`{"note_id":"` + catTestNote + `"}`, `{"note_id":"` + catTestNote + `","title":"t"}`},
		"queue.status":  {`{"pending":0,"active":9223372036854775807}`, `{"pending":-1,"active":0}`, `{"pending":1}`, `{"pending":1,"active":true}`},
	}
	for _, e := range l.Types {
		c := jsonschema.NewCompiler()
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(e.Schema))
		if err == nil {
			err = c.AddResource("urn:test:"+e.Type, doc)
		}
		c.AssertFormat()
		sch, err := c.Compile("urn:test:" + e.Type)
		if err != nil {
			t.Fatalf("%s: schema %s: %v", e.Type, e.Schema, err)
		}
		if len(samples[e.Type]) < 2 {
			t.Fatalf("%s: no samples", e.Type)
		}
		for _, data := range samples[e.Type] {
			d, perr := event.ParseDraft([]byte(catEv(e.Type, data)))
			inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(data))
			verr := sch.Validate(inst)
			if (perr == nil) != (verr == nil) {
				t.Errorf("%s %s: ParseDraft says %v, the listed schema says %v", e.Type, data, perr, verr)
			}
			if perr == nil {
				prefix, _, _ := strings.Cut(e.Topic, "{")
				if !strings.HasPrefix(d.Topic, prefix) {
					t.Errorf("%s: topic %q does not follow the listed template %q", e.Type, d.Topic, e.Topic)
				}
			}
		}
	}
}

// Benchmarks of validating one event: a built-in type against a custom type of the example
// catalogue with as many fields, with a free-text field to sanitize (message, note) and without
// (job.queued; order.shipped with its two required fields). The issue asks for the custom one to
// stay within 2x of the built-in one.
func BenchmarkParseDraftBuiltin(b *testing.B) {
	benchParse(b, event.Builtin(), map[string]string{
		"sanitized": catEv("job.progress", `{"job_id":"`+catTestJob+`","percent":40,"message":"row 3 of 9 at /srv/app/x.py:12"}`),
		"plain":     catEv("job.queued", `{"job_id":"`+catTestJob+`","job_type":"export"}`),
	})
}

func BenchmarkParseDraftCustom(b *testing.B) {
	benchParse(b, exampleTypes(b), map[string]string{
		"sanitized": shipped(`{"order_id":"` + orderID + `","carrier":"ups","note":"row 3 of 9 at /srv/app/x.py:12"}`),
		"plain":     shipped(`{"order_id":"` + orderID + `","carrier":"ups"}`),
	})
}

func benchParse(b *testing.B, c *event.Catalogue, cases map[string]string) {
	for _, name := range []string{"sanitized", "plain"} {
		raw := []byte(cases[name])
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.ParseDraft(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestRestoreFilter: a stored filter keeps working when one of its types is no longer in the
// installed catalogue; its topics are still checked.
func TestRestoreFilter(t *testing.T) {
	t.Parallel()
	if _, err := event.NewFilter(nil, []string{"order.gone"}); err == nil {
		t.Fatal("NewFilter accepted a type outside the catalogue")
	}
	f, err := event.RestoreFilter([]string{"orders/*"}, []string{"order.gone", "job.queued"})
	if err != nil {
		t.Fatalf("RestoreFilter: %v", err)
	}
	for _, tt := range []struct {
		typ, topic string
		want       bool
	}{
		{"order.gone", "orders/1", true},
		{"job.queued", "orders/1", true},
		{"order.shipped", "orders/1", false},
		{"order.gone", "jobs/1", false},
	} {
		if got := f.Match(&event.Event{Type: tt.typ, Topic: tt.topic}); got != tt.want {
			t.Errorf("Match(%s %s) = %v, want %v", tt.typ, tt.topic, got, tt.want)
		}
	}
	if _, err := event.RestoreFilter([]string{"Bad/*"}, nil); err == nil {
		t.Fatal("RestoreFilter accepted a bad topic pattern")
	}
}
