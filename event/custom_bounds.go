package event

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// boundedFormats are the string formats whose grammar bounds the length.
var boundedFormats = []string{"uuid", "date", "ipv4"}

// boundsCheck looks for a place where a custom type's data schema admits a string of any
// length: nothing unbounded may reach subscribers (the event size limit is a backstop, not a
// design). It reads the schema document (as decoded by jsonschema.UnmarshalJSON) and is
// conservative: a schema it cannot prove bounded is refused, never the other way round.
//
// A string is bounded by maxLength, const, enum, a format of boundedFormats, or a sanitize rule
// (top-level fields). Keywords that only add restrictions (not, if/then/else, dependentSchemas)
// are ignored, which is safe. Per JSON type (string, object, array), a schema bounds the values
// of that type when its type keyword excludes it, its own keywords bound it, one allOf branch
// does, every anyOf (or oneOf) branch does, or its local $ref's target does. An object bounds
// its strings when every property does, additionalProperties is false or bounded (and then its
// field names are bounded by propertyNames); an array when prefixItems and items do.
type boundsCheck struct {
	root      any
	sanitized map[string]bool // instance paths with a sanitize rule ("data.note")
	active    map[string]bool // $ref targets being checked, per type (recursive schemas)
}

// unbounded returns the instance path ("data.note", "data.tags[]", "data.meta.*") of a string s
// admits without a length bound, or "" when there is none.
func (b *boundsCheck) unbounded(s any, path string) string {
	for _, k := range [...]string{"string", "object", "array"} {
		if p := b.kind(s, k, path); p != "" {
			return p
		}
	}
	return ""
}

// kind is unbounded for the values of JSON type k that s admits.
func (b *boundsCheck) kind(s any, k, path string) string {
	m, ok := s.(map[string]any)
	if !ok {
		if s == false {
			return ""
		}
		return path // true admits anything
	}
	if _, ok := m["const"]; ok {
		return ""
	}
	if _, ok := m["enum"]; ok {
		return ""
	}
	if !admitsType(m["type"], k) {
		return ""
	}
	own := b.own(m, k, path)
	if own == "" {
		return ""
	}
	if subs, ok := m["allOf"].([]any); ok {
		for _, sub := range subs {
			if b.kind(sub, k, path) == "" {
				return ""
			}
		}
	}
	for _, kw := range [...]string{"anyOf", "oneOf"} {
		subs, ok := m[kw].([]any)
		if !ok || len(subs) == 0 {
			continue
		}
		if !slices.ContainsFunc(subs, func(sub any) bool { return b.kind(sub, k, path) != "" }) {
			return ""
		}
	}
	if ref, ok := m["$ref"].(string); ok {
		if target, ok := b.resolve(ref); ok {
			key := k + " " + ref
			if b.active[key] {
				// Recursion: bounded if the rest of the schema is (checked where it started).
				return ""
			}
			b.active[key] = true
			p := b.kind(target, k, path)
			delete(b.active, key)
			if p == "" {
				return ""
			}
		}
	}
	return own
}

// own is unbounded for the values of type k, by m's own keywords only.
func (b *boundsCheck) own(m map[string]any, k, path string) string {
	switch k {
	case "string":
		if _, ok := m["maxLength"]; ok || b.sanitized[path] {
			return ""
		}
		if f, ok := m["format"].(string); ok && slices.Contains(boundedFormats, f) {
			return ""
		}
		return path
	case "object":
		if props, ok := m["properties"].(map[string]any); ok {
			for _, name := range slices.Sorted(maps.Keys(props)) {
				if p := b.unbounded(props[name], catJoin(path, name)); p != "" {
					return p
				}
			}
		}
		open := false // other field names than those of properties are admitted
		if pp, ok := m["patternProperties"].(map[string]any); ok && len(pp) > 0 {
			open = true
			for _, pat := range slices.Sorted(maps.Keys(pp)) {
				if p := b.unbounded(pp[pat], path+".*"); p != "" {
					return p
				}
			}
		}
		ap, ok := m["additionalProperties"]
		if !ok {
			return path + ".*"
		}
		if ap != false {
			open = true
			if p := b.unbounded(ap, path+".*"); p != "" {
				return p
			}
		}
		if open {
			if pn, ok := m["propertyNames"]; !ok || b.kind(pn, "string", "") != "" {
				return path + " (field names)"
			}
		}
		return ""
	default: // array
		if pre, ok := m["prefixItems"].([]any); ok {
			for i, sub := range pre {
				if p := b.unbounded(sub, path+"["+strconv.Itoa(i)+"]"); p != "" {
					return p
				}
			}
		}
		items, ok := m["items"]
		if !ok {
			return path + "[]"
		}
		return b.unbounded(items, path+"[]")
	}
}

// resolve finds a local reference ("#", "#/$defs/name") in the root document.
func (b *boundsCheck) resolve(ref string) (any, bool) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok || ptr != "" && ptr[0] != '/' {
		return nil, false // another document or an anchor: not followed (so not counted on)
	}
	cur := b.root
	if ptr == "" {
		return cur, true
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch v := cur.(type) {
		case map[string]any:
			if cur, ok = v[tok]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, false
			}
			cur = v[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// admitsType reports whether a type keyword value t (absent, a name or a list of names) admits
// values of JSON type k.
func admitsType(t any, k string) bool {
	switch t := t.(type) {
	case nil:
		return true
	case string:
		return t == k
	case []any:
		return slices.Contains(t, any(k))
	}
	return true
}
