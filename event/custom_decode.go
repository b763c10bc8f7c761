package event

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// maxDataDepth bounds the nesting of a custom type's data: the schema validator and the encoder
// recurse, and no sensible event nests deeper.
const maxDataDepth = 64

// decodeStrict decodes raw, one JSON value, into the form the schema validator takes: objects as
// map[string]any, arrays as []any, numbers as json.Number (kept as written), strings, booleans
// and nil. A key repeated in any object is an error (encoding/json would keep the last one
// silently, while another reader of the same bytes may take the first), as is nesting deeper
// than maxDataDepth. Field names in errors start at "data".
func decodeStrict(raw []byte) (any, *ValidationError) {
	if !json.Valid(raw) {
		return decodeStrictDecoded(raw) // the decoder says what is wrong
	}
	v, _, verr := scanValue(raw, skipSpace(raw, 0), 0)
	if verr != nil {
		verr.Field = joinPath("data", verr.Field)
		return nil, verr
	}
	return v, nil
}

// decodeStrictDecoded is decodeStrict through encoding/json's decoder: for input that is not
// valid JSON, whose errors it reports as the decoder words them.
func decodeStrictDecoded(raw []byte) (any, *ValidationError) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, verr := decodeValue(dec, 0)
	if verr == nil && dec.More() {
		verr = catInvalid("", "unexpected data after the JSON value")
	}
	if verr != nil {
		verr.Field = joinPath("data", verr.Field)
		return nil, verr
	}
	return v, nil
}

// decodeValue decodes the next value of dec. The Field of its errors is relative to the value
// ("" for the value itself), so that paths are only built for the one error returned.
func decodeValue(dec *json.Decoder, depth int) (any, *ValidationError) {
	tok, err := dec.Token()
	if err != nil {
		return nil, catMalformed("", err)
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	if depth == maxDataDepth {
		return nil, catInvalid("", "is nested more than %d levels deep", maxDataDepth)
	}
	if d == '[' {
		arr := []any{}
		for i := 0; dec.More(); i++ {
			v, verr := decodeValue(dec, depth+1)
			if verr != nil {
				verr.Field = joinPath("["+strconv.Itoa(i)+"]", verr.Field)
				return nil, verr
			}
			arr = append(arr, v)
		}
		_, _ = dec.Token() // ']': raw is known to be valid JSON
		return arr, nil
	}
	obj := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, catMalformed("", err)
		}
		key, _ := tok.(string) // the decoder only yields string keys inside an object
		if _, dup := obj[key]; dup {
			return nil, catInvalid(catJoin("", key), "duplicate field")
		}
		v, verr := decodeValue(dec, depth+1)
		if verr != nil {
			verr.Field = joinPath(catJoin("", key), verr.Field)
			return nil, verr
		}
		obj[key] = v
	}
	_, _ = dec.Token() // '}'
	return obj, nil
}

// joinPath appends the relative field path rel ("", "key.sub", "[2].x") to base.
func joinPath(base, rel string) string {
	switch {
	case rel == "":
		return base
	case rel[0] == '[':
		return base + rel
	}
	return base + "." + rel
}

// scanValue is decodeValue over raw, known to be valid JSON, from raw[i] (not a space): the same
// values and errors, without a decoder's tokens (most of a custom event's parsing cost). It
// returns the index just past the value.
func scanValue(raw []byte, i, depth int) (any, int, *ValidationError) {
	switch raw[i] {
	case '"':
		end := stringEnd(raw, i)
		str, _ := memberKey(raw[i:end])
		return str, end, nil
	case 't':
		return true, i + 4, nil
	case 'f':
		return false, i + 5, nil
	case 'n':
		return nil, i + 4, nil
	case '[', '{':
	default:
		end := valueEnd(raw, i)
		return json.Number(raw[i:end]), end, nil
	}
	if depth == maxDataDepth {
		return nil, 0, catInvalid("", "is nested more than %d levels deep", maxDataDepth)
	}
	if raw[i] == '[' {
		arr := []any{}
		i = skipSpace(raw, i+1)
		for n := 0; raw[i] != ']'; n++ {
			v, end, verr := scanValue(raw, i, depth+1)
			if verr != nil {
				verr.Field = joinPath("["+strconv.Itoa(n)+"]", verr.Field)
				return nil, 0, verr
			}
			arr = append(arr, v)
			if i = skipSpace(raw, end); raw[i] == ',' {
				i = skipSpace(raw, i+1)
			}
		}
		return arr, i + 1, nil
	}
	obj := map[string]any{}
	i = skipSpace(raw, i+1)
	for raw[i] != '}' {
		kEnd := stringEnd(raw, i)
		key, _ := memberKey(raw[i:kEnd])
		if _, dup := obj[key]; dup {
			return nil, 0, catInvalid(catJoin("", key), "duplicate field")
		}
		v, end, verr := scanValue(raw, skipSpace(raw, skipSpace(raw, kEnd)+1), depth+1)
		if verr != nil {
			verr.Field = joinPath(catJoin("", key), verr.Field)
			return nil, 0, verr
		}
		obj[key] = v
		if i = skipSpace(raw, end); raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return obj, i + 1, nil
}
