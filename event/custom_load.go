package event

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidCatalogue is wrapped by every error of LoadCatalogue and ParseCatalogue.
var ErrInvalidCatalogue = errors.New("invalid catalogue")

// Limits of a catalogue file.
const (
	maxCatalogueBytes = 4 << 20
	// maxCustomTypes bounds the types of one file, and so the type label of the metrics.
	maxCustomTypes = 1000
	maxTypeNameLen = 100
	// maxTypeDescription is the longest description, in characters.
	maxTypeDescription = 1000
	// maxSanitizeLimit is the largest cap of a sanitize rule, in characters.
	maxSanitizeLimit = 65536
)

// customTypeName is the grammar of an operator-defined type: dotted lowercase words, two or more.
var customTypeName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)

// reservedPrefixes are the namespaces of the built-in types: the job state projector and the
// console treat "job." events as jobs, so a custom type may not join them.
var reservedPrefixes = []string{"job.", "note.", "queue."}

// typeKeys are the keys of one type's entry.
var typeKeys = []string{"topic", "schema", "sanitize", "description"}

// LoadCatalogue reads a catalogue file (YAML or JSON, YAML being a superset) and checks it as
// ParseCatalogue does. Errors wrap ErrInvalidCatalogue, name the file and fit on one line.
func LoadCatalogue(path string) (*Catalogue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCatalogue, err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxCatalogueBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalidCatalogue, path, err)
	}
	if len(src) > maxCatalogueBytes {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrInvalidCatalogue, path, maxCatalogueBytes)
	}
	c, err := ParseCatalogue(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseCatalogue checks a catalogue document and returns the catalogue of the built-in types
// plus its own. The document is {"types": {<name>: {topic, schema, sanitize, description}}}:
//
//   - name: [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+, at most 100 characters, neither a built-in type
//     nor in the job., note. or queue. namespaces;
//   - schema (required): a JSON Schema 2020-12 for data, of type object with additionalProperties
//     false (unknown fields are always refused), that compiles (no remote references) and admits
//     no string of unbounded length (boundsCheck);
//   - topic (required): a template such as "orders/{order_id}" (parseTopicTemplate) whose
//     placeholders name required top-level properties of type string;
//   - sanitize (optional): {<property>: <cap>}, top-level string properties that are run through
//     the sanitizer (docs/api.md#validation-and-payload-hygiene) (SanitizeError's rules) and cut to cap characters, 1 to 65536;
//   - description (optional): at most 1000 characters.
//
// Types are checked in name order; the first problem is returned, wrapping ErrInvalidCatalogue,
// naming the type and fitting on one line.
func ParseCatalogue(src []byte) (*Catalogue, error) {
	types, err := catalogueTypes(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidCatalogue, oneLine(err.Error()))
	}
	custom := make(map[string]*customType, len(types))
	for _, name := range slices.Sorted(maps.Keys(types)) {
		ct, err := compileType(name, types[name])
		if err != nil {
			return nil, fmt.Errorf("%w: type %s: %s", ErrInvalidCatalogue, catQuote(name), oneLine(err.Error()))
		}
		custom[name] = ct
	}
	return newCatalogue(custom), nil
}

// catalogueTypes decodes the document and returns its types map.
func catalogueTypes(src []byte) (map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc any
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New(`is empty (want "types:" and the types)`)
		}
		return nil, err
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("holds more than one YAML document")
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, errors.New(`must be a mapping with the key "types"`)
	}
	for k := range top {
		if k != "types" {
			return nil, fmt.Errorf(`unknown key %s at the top (want "types")`, catQuote(k))
		}
	}
	types, ok := top["types"].(map[string]any)
	if !ok && top["types"] != nil {
		return nil, errors.New(`"types" must be a mapping of type names to types`)
	}
	if len(types) > maxCustomTypes {
		return nil, fmt.Errorf("has %d types, more than %d", len(types), maxCustomTypes)
	}
	return types, nil
}

// compileType checks and compiles one type's entry.
func compileType(name string, entry any) (*customType, error) {
	switch {
	case len(name) > maxTypeNameLen || !customTypeName.MatchString(name):
		return nil, fmt.Errorf("the name must match [a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)+ (at most %d characters)", maxTypeNameLen)
	case Builtin().KnownType(name):
		return nil, errors.New("is a built-in type; a catalogue cannot redefine it")
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(name, p) {
			return nil, errors.New("the job., note. and queue. namespaces belong to the built-in types")
		}
	}
	m, ok := entry.(map[string]any)
	if !ok {
		return nil, errors.New("must be a mapping with topic and schema")
	}
	for k := range m {
		if !slices.Contains(typeKeys, k) {
			return nil, fmt.Errorf("unknown key %s (want %s)", catQuote(k), strings.Join(typeKeys, ", "))
		}
	}
	ct := &customType{name: name}
	if d, ok := m["description"]; ok {
		s, ok := d.(string)
		if !ok || !validText(s, maxTypeDescription) {
			return nil, fmt.Errorf("description must be a string of at most %d characters", maxTypeDescription)
		}
		ct.description = s
	}
	if m["schema"] == nil {
		return nil, errors.New("schema is required (a JSON Schema for data)")
	}
	doc, err := compileSchema(ct, m["schema"])
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	props, _ := doc["properties"].(map[string]any)
	if err := ct.sanitizeRules(m["sanitize"], props); err != nil {
		return nil, fmt.Errorf("sanitize: %w", err)
	}
	if err := ct.topicRules(m["topic"], doc, props); err != nil {
		return nil, fmt.Errorf("topic: %w", err)
	}
	b := boundsCheck{root: doc, sanitized: map[string]bool{}, active: map[string]bool{}}
	for _, r := range ct.sanitize {
		b.sanitized[catJoin("data", r.prop)] = true
	}
	if p := b.unbounded(doc, "data"); p != "" {
		return nil, fmt.Errorf("schema admits strings of any length at %s: give them a maxLength (or a sanitize rule, for a top-level field)", p)
	}
	for _, name := range slices.Sorted(maps.Keys(props)) {
		if p, ok := props[name].(map[string]any); ok && p["format"] == "uuid" {
			ct.uuids = append(ct.uuids, name)
		}
	}
	return ct, nil
}

// sanitizeRules checks and sets the type's sanitize rules: top-level string properties.
func (ct *customType) sanitizeRules(v any, props map[string]any) error {
	if v == nil {
		return nil
	}
	rules, ok := v.(map[string]any)
	if !ok {
		return errors.New("must be a mapping of property names to length caps")
	}
	for _, prop := range slices.Sorted(maps.Keys(rules)) {
		limit, ok := rules[prop].(int)
		if !ok || limit < 1 || limit > maxSanitizeLimit {
			return fmt.Errorf("%s: the cap must be an integer from 1 to %d (characters)", catQuote(prop), maxSanitizeLimit)
		}
		if !stringProperty(props, prop) {
			return fmt.Errorf("%s is not a top-level property of type string", catQuote(prop))
		}
		ct.sanitize = append(ct.sanitize, sanitizeRule{prop: prop, limit: limit})
	}
	return nil
}

// topicRules checks and sets the type's topic template: its placeholders name required
// top-level string properties that are not sanitized (the sanitizer's markers are no topic).
func (ct *customType) topicRules(v any, doc, props map[string]any) error {
	text, ok := v.(string)
	if !ok {
		return errors.New(`is required: a template such as "orders/{order_id}"`)
	}
	t, err := parseTopicTemplate(text)
	if err != nil {
		return err
	}
	required, _ := doc["required"].([]any)
	for _, p := range t.placeholders() {
		switch {
		case !stringProperty(props, p):
			return fmt.Errorf("placeholder {%s} must name a top-level property of type string", p)
		case !slices.Contains(required, any(p)):
			return fmt.Errorf("placeholder {%s} names a property that is not required", p)
		case slices.ContainsFunc(ct.sanitize, func(r sanitizeRule) bool { return r.prop == p }):
			return fmt.Errorf("placeholder {%s} names a sanitized property", p)
		}
	}
	ct.topic = t
	return nil
}

// stringProperty reports whether props declares name with type string (exactly).
func stringProperty(props map[string]any, name string) bool {
	p, ok := props[name].(map[string]any)
	return ok && p["type"] == "string"
}

// oneLine joins the lines of a multi-line message (YAML and schema errors) with "; ".
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var b strings.Builder
	for _, l := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		switch {
		case b.Len() == 0:
		case strings.HasSuffix(b.String(), ":"):
			b.WriteByte(' ')
		default:
			b.WriteString("; ")
		}
		b.WriteString(l)
	}
	return b.String()
}

// validText reports whether s is valid UTF-8 of at most limit characters.
func validText(s string, limit int) bool {
	return utf8.ValidString(s) && utf8.RuneCountInString(s) <= limit
}
