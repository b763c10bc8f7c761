package event

import (
	"errors"
	"fmt"
	"strings"
)

// topicTemplate is a custom type's topic, such as "orders/{order_id}": literal text and
// placeholders, each naming a required top-level string property of the data. Immutable.
type topicTemplate struct {
	text  string // as written
	parts []topicPart
}

// topicPart is a literal (prop == "") or a placeholder.
type topicPart struct {
	lit, prop string
}

// parseTopicTemplate checks the template's syntax and that it yields a topic of the topic
// grammar (that of an exact ParsePattern: segments of a-z 0-9 - _ . separated by /) whatever
// the placeholders hold, as long as each holds one or more of those characters (which expand
// checks). Placeholder names are [A-Za-z_][A-Za-z0-9_]*.
func parseTopicTemplate(s string) (topicTemplate, error) {
	if s == "" {
		return topicTemplate{}, errors.New("is empty")
	}
	if len(s) > maxPatternLen {
		return topicTemplate{}, fmt.Errorf("is longer than %d characters", maxPatternLen)
	}
	t := topicTemplate{text: s}
	var sample strings.Builder // the template with every placeholder replaced by "x"
	for rest := s; rest != ""; {
		open := strings.IndexAny(rest, "{}")
		if open < 0 {
			t.parts = append(t.parts, topicPart{lit: rest})
			sample.WriteString(rest)
			break
		}
		if rest[open] == '}' {
			return topicTemplate{}, fmt.Errorf("%s has a } without a {", catQuote(s))
		}
		if open > 0 {
			t.parts = append(t.parts, topicPart{lit: rest[:open]})
			sample.WriteString(rest[:open])
		}
		end := strings.IndexAny(rest[open+1:], "{}")
		if end < 0 || rest[open+1+end] != '}' {
			return topicTemplate{}, fmt.Errorf("%s has a { without its }", catQuote(s))
		}
		name := rest[open+1 : open+1+end]
		if !placeholderName(name) {
			return topicTemplate{}, fmt.Errorf("placeholder {%s} must name a property: [A-Za-z_][A-Za-z0-9_]*", name)
		}
		t.parts = append(t.parts, topicPart{prop: name})
		sample.WriteString("x")
		rest = rest[open+1+end+1:]
	}
	if strings.Contains(s, "*") {
		return topicTemplate{}, fmt.Errorf("%s has a *: a topic is exact (subscribers use the wildcards)", catQuote(s))
	}
	if _, err := ParsePattern(sample.String()); err != nil {
		return topicTemplate{}, fmt.Errorf("%s does not make a topic: segments of a-z 0-9 - _ . separated by /, none empty", catQuote(s))
	}
	return t, nil
}

func placeholderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// placeholders returns the property names the template uses, in order (repeats included).
func (t topicTemplate) placeholders() []string {
	var out []string
	for _, p := range t.parts {
		if p.prop != "" {
			out = append(out, p.prop)
		}
	}
	return out
}

// expand builds the topic of data, which the schema has validated (so every placeholder's
// property is a string). A value that is empty or holds a character outside a-z 0-9 - _ . is an
// error naming its field, as is a topic longer than a topic pattern may be (subscribers could
// not name it).
func (t topicTemplate) expand(data map[string]any) (string, *ValidationError) {
	if len(t.parts) == 1 && t.parts[0].prop == "" {
		return t.text, nil
	}
	var b strings.Builder
	b.Grow(len(t.text) + 40)
	for _, p := range t.parts {
		if p.prop == "" {
			b.WriteString(p.lit)
			continue
		}
		v, _ := data[p.prop].(string)
		if !topicValue(v) {
			return "", catInvalid(catJoin("data", p.prop), "must be 1 or more of a-z 0-9 - _ . (it makes the topic %s)", t.text)
		}
		b.WriteString(v)
		if b.Len() > maxPatternLen {
			return "", catInvalid(catJoin("data", p.prop), "makes the topic longer than %d characters", maxPatternLen)
		}
	}
	return b.String(), nil
}

// topicValue reports whether v may stand in a topic segment.
func topicValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
