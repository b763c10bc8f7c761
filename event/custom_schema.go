package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaDialect is the JSON Schema draft of custom types' schemas (the only one accepted, so
// that boundsCheck reads every keyword as the validator does).
const schemaDialect = "https://json-schema.org/draft/2020-12/schema"

// noLoader refuses every schema reference outside the type's own schema: compiling a catalogue
// never reads a file or the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, errors.New("references to other documents are not supported (use $defs and #/$defs/...)")
}

// compileSchema checks the shape of a type's data schema (v, as decoded from YAML), compiles it
// with format assertions on, and sets ct.schema and ct.schemaJSON. It returns the schema document
// as the validator reads it, for the other rules.
func compileSchema(ct *customType, v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot be read as JSON (are all keys strings?): %w", err)
	}
	parsed, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	doc, ok := parsed.(map[string]any)
	if !ok {
		return nil, errors.New("must be a JSON Schema object")
	}
	if d, ok := doc["$schema"]; ok && d != schemaDialect {
		return nil, fmt.Errorf("$schema must be %s (or left out)", schemaDialect)
	}
	if doc["type"] != "object" {
		return nil, errors.New(`type must be "object" (data is an object)`)
	}
	if doc["additionalProperties"] != false {
		return nil, errors.New("additionalProperties must be false at the top level (unknown fields are always refused)")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	url := "urn:eventgate:catalogue:" + ct.name
	if err := c.AddResource(url, parsed); err != nil {
		return nil, err
	}
	sch, err := c.Compile(url)
	if err != nil {
		return nil, err
	}
	ct.schema, ct.schemaJSON = sch, raw
	return doc, nil
}
