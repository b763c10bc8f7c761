package event_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/event"
)

// exampleCatalogue is the repository's example file, which the end-to-end tests use too.
const exampleCatalogue = "../examples/catalogue.yaml"

// mustCatalogue parses a catalogue document or fails t.
func mustCatalogue(t testing.TB, src string) *event.Catalogue {
	t.Helper()
	c, err := event.ParseCatalogue([]byte(src))
	if err != nil {
		t.Fatalf("ParseCatalogue: %v\n%s", err, src)
	}
	return c
}

// oneType is a catalogue of one type named order.shipped with the given topic, schema
// properties (a YAML flow mapping), required list and extra entry lines.
func oneType(topic, props, required, extra string) string {
	return "types:\n  order.shipped:\n    topic: \"" + topic + "\"\n" +
		"    schema:\n      type: object\n      additionalProperties: false\n" +
		"      required: " + required + "\n      properties: " + props + "\n" + extra
}

const (
	okProps    = `{order_id: {type: string, format: uuid}, carrier: {type: string, maxLength: 64}}`
	okRequired = `[order_id, carrier]`
)

func TestParseCatalogueAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src string }{
		{"minimal", oneType("orders/{order_id}", okProps, okRequired, "")},
		{"json", `{"types":{"order.shipped":{"topic":"orders","schema":{"type":"object","additionalProperties":false}}}}`},
		{"no types", "types: {}\n"},
		{"fixed topic", oneType("orders", okProps, okRequired, "")},
		{"two placeholders in a segment", oneType("orders/{carrier}-{order_id}", okProps, okRequired, "")},
		{"sanitized free text", oneType("orders/{order_id}", `{order_id: {type: string, format: uuid}, note: {type: string}}`, `[order_id]`, "    sanitize: {note: 200}\n")},
		{"enum and const bound strings", oneType("o", `{a: {enum: [x, y]}, b: {const: z}}`, `[]`, "")},
		{"bounded formats", oneType("o", `{a: {type: string, format: date}, b: {type: string, format: ipv4}}`, `[]`, "")},
		{"nested objects and arrays", oneType("o", `{a: {type: object, additionalProperties: false, properties: {b: {type: array, items: {type: string, maxLength: 3}}}}}`, `[]`, "")},
		{"map with bounded keys and values", oneType("o", `{m: {type: object, propertyNames: {maxLength: 20}, additionalProperties: {type: integer}}}`, `[]`, "")},
		{"prefixItems closed", oneType("o", `{t: {type: array, prefixItems: [{type: integer}, {type: string, maxLength: 2}], items: false}}`, `[]`, "")},
		{"non-string types", oneType("o", `{n: {type: [integer, "null", boolean]}}`, `[]`, "")},
		{"anyOf every branch bounded", oneType("o", `{a: {anyOf: [{type: string, maxLength: 5}, {type: integer}]}}`, `[]`, "")},
		{"allOf one branch bounds", oneType("o", `{a: {type: string, allOf: [{maxLength: 5}, {pattern: "^a"}]}}`, `[]`, "")},
		{"local ref", "types:\n  order.shipped:\n    topic: o\n    schema:\n      type: object\n      additionalProperties: false\n" +
			"      properties: {a: {$ref: \"#/$defs/code\"}}\n      $defs: {code: {type: string, maxLength: 8}}\n"},
		{"recursive ref", "types:\n  tree.changed:\n    topic: o\n    schema:\n      type: object\n      additionalProperties: false\n" +
			"      properties: {root: {$ref: \"#/$defs/node\"}}\n" +
			"      $defs: {node: {type: object, additionalProperties: false, properties: {name: {type: string, maxLength: 8}, kids: {type: array, items: {$ref: \"#/$defs/node\"}}}}}\n"},
		{"explicit dialect", oneType("o", `{}`, `[]`, "") + "" /* $schema is added below */},
		{"description", oneType("o", okProps, okRequired, "    description: \"Shipped \u00e9\"\n")},
	}
	tests[len(tests)-2].src = strings.Replace(tests[len(tests)-2].src, "type: object\n", "type: object\n      $schema: https://json-schema.org/draft/2020-12/schema\n", 1)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mustCatalogue(t, tt.src)
		})
	}
}

// TestParseCatalogueRules: every start-up rule, each failure one line naming the type (when
// there is one) and the problem.
func TestParseCatalogueRules(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, src, want string }{
		{"empty file", "", "is empty"},
		{"not YAML", "types: [", "yaml"},
		{"two documents", "types: {}\n---\ntypes: {}\n", "more than one YAML document"},
		{"not a mapping", "- a\n", `must be a mapping with the key "types"`},
		{"unknown top key", "types: {}\ntype: {}\n", `unknown key "type" at the top`},
		{"types not a mapping", "types: [a]\n", `"types" must be a mapping`},
		{"duplicate type", "types:\n  a.b: {}\n  a.b: {}\n", "already defined"},
		{"bad name", "types:\n  Order.Shipped: {}\n", `type "Order.Shipped": the name must match`},
		{"name without dot", "types:\n  order: {}\n", `type "order": the name must match`},
		{"name too long", "types:\n  a." + strings.Repeat("b", 100) + ": {}\n", "at most 100 characters"},
		{"built-in", "types:\n  job.queued: {}\n", `type "job.queued": is a built-in type`},
		{"reserved namespace", "types:\n  job.paused: {}\n", `type "job.paused": the job., note. and queue. namespaces`},
		{"entry not a mapping", "types:\n  order.shipped: 1\n", "must be a mapping with topic and schema"},
		{"unknown key", oneType("o", okProps, okRequired, "    sanitise: {note: 1}\n"), `type "order.shipped": unknown key "sanitise"`},
		{"description not text", oneType("o", okProps, okRequired, "    description: [a]\n"), "description must be a string"},
		{"description too long", oneType("o", okProps, okRequired, "    description: "+strings.Repeat("d", 1001)+"\n"), "at most 1000 characters"},
		{"no schema", "types:\n  order.shipped: {topic: o}\n", "schema is required"},
		{"schema not an object", "types:\n  order.shipped: {topic: o, schema: [1]}\n", "schema: must be a JSON Schema object"},
		{"schema with non-string keys", "types:\n  order.shipped: {topic: o, schema: {1: a}}\n", "schema: cannot be read as JSON"},
		{"other dialect", strings.Replace(oneType("o", okProps, okRequired, ""), "type: object\n", "type: object\n      $schema: http://json-schema.org/draft-07/schema#\n", 1), "$schema must be https://json-schema.org/draft/2020-12/schema"},
		{"not type object", strings.Replace(oneType("o", okProps, okRequired, ""), "type: object", "type: array", 1), `schema: type must be "object"`},
		{"additionalProperties missing", strings.Replace(oneType("o", okProps, okRequired, ""), "      additionalProperties: false\n", "", 1), "additionalProperties must be false at the top level"},
		{"additionalProperties true", strings.Replace(oneType("o", okProps, okRequired, ""), "additionalProperties: false", "additionalProperties: true", 1), "additionalProperties must be false"},
		{"schema does not compile", oneType("o", `{a: {type: strin}}`, `[]`, ""), `type "order.shipped": schema:`},
		{"bad regexp", oneType("o", `{a: {type: string, maxLength: 3, pattern: "(?=x)"}}`, `[]`, ""), `type "order.shipped": schema:`},
		{"remote ref", oneType("o", `{a: {$ref: "https://example.com/s.json"}}`, `[]`, ""), "references to other documents are not supported"},
		{"no topic", strings.Replace(oneType("o", okProps, okRequired, ""), "    topic: \"o\"\n", "", 1), "topic: is required"},
		{"topic not a string", strings.Replace(oneType("o", okProps, okRequired, ""), `topic: "o"`, "topic: [o]", 1), "topic: is required"},
		{"topic grammar", oneType("Orders/{order_id}", okProps, okRequired, ""), `topic: "Orders/{order_id}" does not make a topic`},
		{"topic empty segment", oneType("orders//{order_id}", okProps, okRequired, ""), "does not make a topic"},
		{"topic wildcard", oneType("orders/*", okProps, okRequired, ""), "has a *"},
		{"topic unclosed", oneType("orders/{order_id", okProps, okRequired, ""), "without its }"},
		{"topic stray brace", oneType("orders/order_id}", okProps, okRequired, ""), "} without a {"},
		{"topic bad placeholder", oneType("orders/{order-id}", okProps, okRequired, ""), "placeholder {order-id} must name a property"},
		{"topic unknown property", oneType("orders/{id}", okProps, okRequired, ""), "placeholder {id} must name a top-level property of type string"},
		{"topic not a string property", oneType("o/{n}", `{n: {type: integer}}`, `[n]`, ""), "placeholder {n} must name a top-level property of type string"},
		{"topic property not required", oneType("orders/{carrier}", okProps, `[order_id]`, ""), "placeholder {carrier} names a property that is not required"},
		{"topic property sanitized", oneType("orders/{carrier}", okProps, okRequired, "    sanitize: {carrier: 10}\n"), "placeholder {carrier} names a sanitized property"},
		{"topic too long", oneType("o/"+strings.Repeat("x", 130), okProps, okRequired, ""), "longer than 128 characters"},
		{"sanitize not a mapping", oneType("o", okProps, okRequired, "    sanitize: [note]\n"), "sanitize: must be a mapping"},
		{"sanitize cap zero", oneType("o", `{note: {type: string}}`, `[]`, "    sanitize: {note: 0}\n"), `sanitize: "note": the cap must be an integer from 1 to 65536`},
		{"sanitize cap text", oneType("o", `{note: {type: string}}`, `[]`, "    sanitize: {note: long}\n"), "the cap must be an integer"},
		{"sanitize unknown property", oneType("o", okProps, okRequired, "    sanitize: {note: 10}\n"), `sanitize: "note" is not a top-level property of type string`},
		{"sanitize non-string property", oneType("o", `{n: {type: integer}}`, `[]`, "    sanitize: {n: 10}\n"), "is not a top-level property of type string"},
		{"unbounded string", oneType("o", `{note: {type: string}}`, `[]`, ""), "schema admits strings of any length at data.note"},
		{"untyped property", oneType("o", `{x: {}}`, `[]`, ""), "at data.x"},
		{"true property", oneType("o", `{x: true}`, `[]`, ""), "at data.x"},
		{"nested unbounded", oneType("o", `{a: {type: object, additionalProperties: false, properties: {b: {type: string}}}}`, `[]`, ""), "at data.a.b"},
		{"nested open object", oneType("o", `{a: {type: object, properties: {b: {type: integer}}}}`, `[]`, ""), "at data.a.*"},
		{"map with unbounded keys", oneType("o", `{m: {type: object, additionalProperties: {type: integer}}}`, `[]`, ""), "at data.m (field names)"},
		{"array without items", oneType("o", `{a: {type: array}}`, `[]`, ""), "at data.a[]"},
		{"array of unbounded strings", oneType("o", `{a: {type: array, items: {type: string}}}`, `[]`, ""), "at data.a[]"},
		{"prefixItems open", oneType("o", `{t: {type: array, prefixItems: [{type: integer}]}}`, `[]`, ""), "at data.t[]"},
		{"prefixItems unbounded", oneType("o", `{t: {type: array, prefixItems: [{type: string}], items: false}}`, `[]`, ""), "at data.t[0]"},
		{"anyOf one branch unbounded", oneType("o", `{a: {anyOf: [{type: string, maxLength: 5}, {type: string}]}}`, `[]`, ""), "at data.a"},
		{"pattern does not count", oneType("o", `{a: {type: string, pattern: "^[a-z]{1,5}$"}}`, `[]`, ""), "at data.a"},
		{"unbounded format", oneType("o", `{a: {type: string, format: date-time}}`, `[]`, ""), "at data.a"},
		{"sanitize does not reach nested", oneType("o", `{a: {type: object, additionalProperties: false, properties: {note: {type: string}}}}`, `[]`, "    sanitize: {note: 5}\n"), "is not a top-level property"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := event.ParseCatalogue([]byte(tt.src))
			if err == nil {
				t.Fatalf("accepted (%d types):\n%s", len(c.Types()), tt.src)
			}
			msg := err.Error()
			if !errors.Is(err, event.ErrInvalidCatalogue) || !strings.Contains(msg, tt.want) || strings.ContainsAny(msg, "\r\n") {
				t.Fatalf("error %q, want one line wrapping ErrInvalidCatalogue and containing %q", msg, tt.want)
			}
		})
	}
}

func TestLoadCatalogue(t *testing.T) {
	t.Parallel()
	c, err := event.LoadCatalogue(exampleCatalogue)
	if err != nil {
		t.Fatalf("the example catalogue: %v", err)
	}
	for _, typ := range []string{"order.shipped", "payment.declined", "job.queued"} {
		if !c.KnownType(typ) {
			t.Errorf("the example catalogue lacks %s", typ)
		}
	}
	if !c.Custom("order.shipped") || c.Custom("job.queued") {
		t.Error("Custom does not tell custom from built-in types")
	}

	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	if _, err := event.LoadCatalogue(missing); !errors.Is(err, event.ErrInvalidCatalogue) || !strings.Contains(err.Error(), missing) {
		t.Errorf("a missing file: %v, want ErrInvalidCatalogue naming the path", err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("types:\n  job.queued: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := event.LoadCatalogue(bad); err == nil || !strings.HasPrefix(err.Error(), bad+": invalid catalogue: type \"job.queued\"") {
		t.Errorf("an invalid file: %v, want the path, then the type and the problem", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("types: {}\n#"+strings.Repeat("x", 4<<20)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := event.LoadCatalogue(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("a 4 MiB file: %v, want refused", err)
	}
}
