package event

import (
	"bytes"
	"encoding/json"
	"io"
)

// catMember is one member of a JSON object: its key, unquoted, and its value as written.
type catMember struct {
	key string
	val json.RawMessage
}

// catObject decodes raw as exactly one JSON object and returns its members in input order.
// field names raw in errors ("" for the event itself).
func catObject(raw []byte, field string) ([]catMember, *ValidationError) {
	members, ok := objectMembers(raw)
	if !ok {
		return catObjectDecoded(raw, field) // the decoder says what is wrong
	}
	if len(members) <= 16 {
		for i := 1; i < len(members); i++ {
			for j := range i {
				if members[j].key == members[i].key {
					return nil, catInvalid(catJoin(field, members[i].key), "duplicate field")
				}
			}
		}
		return members, nil
	}
	seen := make(map[string]struct{}, len(members))
	for _, m := range members {
		if _, dup := seen[m.key]; dup {
			return nil, catInvalid(catJoin(field, m.key), "duplicate field")
		}
		seen[m.key] = struct{}{}
	}
	return members, nil
}

// catObjectDecoded is catObject through encoding/json's decoder: for input that is not a valid
// JSON object, whose errors it reports as the decoder words them.
func catObjectDecoded(raw []byte, field string) ([]catMember, *ValidationError) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, catMalformed(field, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		what := "must be a JSON object"
		if field == "" {
			what = `must be a JSON object {"type":...,"data":{...}}`
		}
		return nil, catInvalid(field, "%s, got %s", what, catJSONKind(bytes.TrimLeft(raw, " \t\r\n")))
	}
	var members []catMember
	var seen map[string]struct{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, catMalformed(field, err)
		}
		key, _ := tok.(string) // the decoder only yields string keys inside an object
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, catMalformed(field, err)
		}
		if seen == nil {
			seen = make(map[string]struct{})
		}
		if _, dup := seen[key]; dup {
			return nil, catInvalid(catJoin(field, key), "duplicate field")
		}
		seen[key] = struct{}{}
		members = append(members, catMember{key: key, val: val})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, catMalformed(field, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, catInvalid(field, "unexpected data after the JSON object")
	}
	return members, nil
}

// objectMembers splits raw, when it is exactly one valid JSON object (whitespace around it
// allowed), into its members in input order; the values are sub-slices of raw. Otherwise ok is
// false and the caller takes encoding/json's decoder, which says what is wrong. It exists for
// speed: a decoder per object was most of a publish's allocations (docs/performance.md).
func objectMembers(raw []byte) (members []catMember, ok bool) {
	if !json.Valid(raw) {
		return nil, false
	}
	// raw is one valid JSON value from here: the scan below need not check its syntax.
	i := skipSpace(raw, 0)
	if raw[i] != '{' {
		return nil, false
	}
	i = skipSpace(raw, i+1)
	if raw[i] == '}' {
		return nil, true
	}
	for {
		kEnd := stringEnd(raw, i)
		key, ok := memberKey(raw[i:kEnd])
		if !ok {
			return nil, false
		}
		i = skipSpace(raw, skipSpace(raw, kEnd)+1) // past the colon
		vEnd := valueEnd(raw, i)
		members = append(members, catMember{key: key, val: raw[i:vEnd:vEnd]})
		i = skipSpace(raw, vEnd)
		if raw[i] == '}' {
			return members, true
		}
		i = skipSpace(raw, i+1) // past the comma
	}
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at raw[i] (a quote).
func stringEnd(raw []byte, i int) int {
	for j := i + 1; ; j++ {
		switch raw[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
}

// valueEnd returns the index just past the value that starts at raw[i].
func valueEnd(raw []byte, i int) int {
	switch raw[i] {
	case '"':
		return stringEnd(raw, i)
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch raw[j] {
			case '"':
				j = stringEnd(raw, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	j := i // a number, true, false or null: up to the next delimiter
	for ; j < len(raw); j++ {
		switch raw[j] {
		case ' ', '\t', '\r', '\n', ',', '}', ']':
			return j
		}
	}
	return j
}

// memberKey unquotes a key. Keys with escapes or bytes outside ASCII go through encoding/json,
// which also replaces invalid UTF-8 as the decoder does.
func memberKey(quoted []byte) (string, bool) {
	plain := true
	for _, c := range quoted[1 : len(quoted)-1] {
		if c == '\\' || c >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return string(quoted[1 : len(quoted)-1]), true
	}
	var key string
	if err := json.Unmarshal(quoted, &key); err != nil {
		return "", false
	}
	return key, true
}
