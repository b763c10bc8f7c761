package event

import (
	"errors"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaPrinter renders the validator's messages (English).
var schemaPrinter = message.NewPrinter(language.English)

// maxSchemaMessage caps, in characters, a validator message passed on to the client. Messages of
// the kinds handled below never quote the value; the rest may quote the schema's own values
// (enum, const), which this keeps short.
const maxSchemaMessage = 160

// schemaError turns a schema validation failure of type typ into a *ValidationError naming the
// offending field (data.<path>) in the style of the built-ins, without quoting the value sent:
// it could be large, or sensitive. The first (deepest) cause is reported. data is the value
// validated.
func schemaError(typ string, data any, err error) *ValidationError {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return catInvalid("data", "does not match the schema of %s", typ)
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	field := instancePath(data, ve.InstanceLocation)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		return catInvalid(catJoin(field, k.Missing[0]), "is required")
	case *kind.AdditionalProperties:
		return catInvalid(catJoin(field, k.Properties[0]), "unknown field for %s", typ)
	case *kind.FalseSchema:
		return catInvalid(field, "is not allowed for %s", typ)
	case *kind.Type:
		return catInvalid(field, "must be %s, got %s", strings.Join(k.Want, " or "), k.Got)
	case *kind.Format:
		if k.Want == "uuid" {
			return catInvalid(field, "%s", catDesc[catUUID])
		}
		return catInvalid(field, "must be a valid %s", k.Want)
	case *kind.MaxLength:
		return catInvalid(field, "must be at most %d characters (got %d)", k.Want, k.Got)
	case *kind.MinLength:
		return catInvalid(field, "must be at least %d characters (got %d)", k.Want, k.Got)
	case *kind.Pattern:
		return catInvalid(field, "must match the pattern %s", catQuote(k.Want))
	case *kind.Minimum:
		return catInvalid(field, "must be at least %s", ratString(k.Want))
	case *kind.Maximum:
		return catInvalid(field, "must be at most %s", ratString(k.Want))
	case *kind.ExclusiveMinimum:
		return catInvalid(field, "must be more than %s", ratString(k.Want))
	case *kind.ExclusiveMaximum:
		return catInvalid(field, "must be less than %s", ratString(k.Want))
	case *kind.PropertyNames:
		return catInvalid(catJoin(field, k.Property), "is not an allowed field name")
	}
	// enum and const say "value must be ...": the field is named already.
	msg := strings.TrimPrefix(ve.ErrorKind.LocalizedString(schemaPrinter), "value ")
	return catInvalid(field, "%s", cutMessage(msg))
}

// ratString formats a bound of the schema: as an integer when it is one, else as a float.
func ratString(r *big.Rat) string {
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// instancePath names the value at loc inside data, as "data.items[2].name": the tokens of a
// JSON pointer do not say whether "2" is an index or a key, the value does.
func instancePath(data any, loc []string) string {
	field, cur := "data", data
	for _, tok := range loc {
		switch v := cur.(type) {
		case []any:
			field += "[" + tok + "]"
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(v) {
				cur = v[i]
			}
		case map[string]any:
			field = catJoin(field, tok)
			cur = v[tok]
		default:
			field = catJoin(field, tok)
		}
	}
	return field
}

// cutMessage cuts s to maxSchemaMessage characters.
func cutMessage(s string) string {
	if utf8.RuneCountInString(s) <= maxSchemaMessage {
		return s
	}
	n := 0
	for i := range s {
		if n == maxSchemaMessage {
			return s[:i] + "..."
		}
		n++
	}
	return s
}
