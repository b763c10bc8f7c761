package event

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrInvalidFilter is wrapped by errors for malformed topic patterns or unknown types. Callers map
// it to 400.
var ErrInvalidFilter = errors.New("invalid filter")

// maxPatternLen bounds a topic pattern; topics are at most "notes/<uuid>".
const maxPatternLen = 128

// Pattern is a topic pattern: "*" (every topic), a prefix wildcard "jobs/*", or an exact topic.
// Patterns are immutable values.
type Pattern struct {
	text   string
	prefix string // for wildcards: what the topic must start with ("" for "*")
	wild   bool
}

// ParsePattern parses a topic pattern. A '*' may only stand alone or as the last segment.
// Allowed characters are lowercase letters, digits, '-', '_', '.', and '/' between segments.
func ParsePattern(s string) (Pattern, error) {
	if s == "" || len(s) > maxPatternLen {
		return Pattern{}, fmt.Errorf("%w: topic pattern %q must be 1 to %d characters", ErrInvalidFilter, s, maxPatternLen)
	}
	if s == "*" {
		return Pattern{text: s, wild: true}, nil
	}
	body, wild := strings.CutSuffix(s, "/*")
	for _, seg := range strings.Split(body, "/") {
		if seg == "" {
			return Pattern{}, fmt.Errorf("%w: topic pattern %q has an empty segment", ErrInvalidFilter, s)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				return Pattern{}, fmt.Errorf("%w: topic pattern %q: only a-z 0-9 - _ . / and a final * are allowed", ErrInvalidFilter, s)
			}
		}
	}
	if wild {
		return Pattern{text: s, prefix: body + "/", wild: true}, nil
	}
	return Pattern{text: s}, nil
}

// Match reports whether topic matches the pattern.
func (p Pattern) Match(topic string) bool {
	if p.wild {
		return strings.HasPrefix(topic, p.prefix)
	}
	return topic == p.text
}

// Covers reports whether every topic matched by q is matched by p (used for topic grants).
func (p Pattern) Covers(q Pattern) bool {
	if !p.wild {
		return !q.wild && q.text == p.text
	}
	if q.wild {
		return strings.HasPrefix(q.prefix, p.prefix)
	}
	return strings.HasPrefix(q.text, p.prefix)
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.text }

// Filter selects events by topic patterns and types. An empty Topics or Types list matches all.
// Filters are immutable values once built; Match is safe for concurrent use.
type Filter struct {
	Topics []Pattern
	Types  []string
	// Nothing makes the filter match no event (a WebSocket client unsubscribed from every topic).
	Nothing bool
}

// Sentinels for a filter over its size limit (NewFilterMax). Both wrap ErrInvalidFilter, so they
// map to 400 invalid_filter where no finer code is wanted.
var (
	ErrTooManyTopics = fmt.Errorf("%w: too many topic patterns", ErrInvalidFilter)
	ErrTooManyTypes  = fmt.Errorf("%w: too many event types", ErrInvalidFilter)
)

// NewFilter parses topic patterns and checks types against the installed catalogue (Current),
// without a size limit (NewFilterMax). "*" among the topics makes the topic list match everything.
func NewFilter(topics, types []string) (Filter, error) { return newFilter(topics, types, 0, true) }

// NewFilterMax is NewFilter with at most max distinct topic patterns and at most max distinct
// types (max <= 0: no limit); beyond, it fails with ErrTooManyTopics or ErrTooManyTypes. Duplicates
// are dropped, first occurrence kept, in time linear in the input, and parsing stops at the limit,
// so a huge list costs little before it is refused.
func NewFilterMax(topics, types []string, max int) (Filter, error) {
	return newFilter(topics, types, max, true)
}

// RestoreFilter rebuilds a filter that NewFilter accepted before and that was stored (a webhook
// endpoint's): the types are not checked again, so a type that a catalogue reload removed
// matches nothing rather than making the whole filter, and its other types, unusable.
func RestoreFilter(topics, types []string) (Filter, error) { return newFilter(topics, types, 0, false) }

func newFilter(topics, types []string, max int, checkTypes bool) (Filter, error) {
	var f Filter
	err := distinct(topics, func(t string) error {
		p, err := ParsePattern(t)
		if err != nil {
			return err
		}
		if max > 0 && len(f.Topics) == max {
			return fmt.Errorf("%w: at most %d per subscription", ErrTooManyTopics, max)
		}
		f.Topics = append(f.Topics, p)
		return nil
	})
	if err != nil {
		return Filter{}, err
	}
	err = distinct(types, func(t string) error {
		if checkTypes && !KnownType(t) {
			return fmt.Errorf("%w: unknown event type %q", ErrInvalidFilter, t)
		}
		if max > 0 && len(f.Types) == max {
			return fmt.Errorf("%w: at most %d per subscription", ErrTooManyTypes, max)
		}
		f.Types = append(f.Types, t)
		return nil
	})
	if err != nil {
		return Filter{}, err
	}
	return f, nil
}

// distinct calls add once per distinct string of in, in order of first occurrence, and stops at
// its first error. Linear: a few strings (the usual case) are checked by scanning, more through a
// set, so a long list with repeats does not cost its square.
func distinct(in []string, add func(string) error) error {
	const scan = 8
	var seen map[string]struct{}
	if len(in) > scan {
		seen = make(map[string]struct{}, min(len(in), 1024))
	}
	for i, s := range in {
		if seen == nil {
			if slices.Contains(in[:i], s) {
				continue
			}
		} else {
			if _, dup := seen[s]; dup {
				continue
			}
			seen[s] = struct{}{}
		}
		if err := add(s); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether e passes the filter. Control events always pass.
func (f Filter) Match(e *Event) bool {
	if e.Control {
		return true
	}
	if f.Nothing {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, e.Type) {
		return false
	}
	if len(f.Topics) == 0 {
		return true
	}
	for _, p := range f.Topics {
		if p.Match(e.Topic) {
			return true
		}
	}
	return false
}

// TopicStrings returns the topic patterns as written ("*" when empty).
func (f Filter) TopicStrings() []string {
	if f.Nothing {
		return []string{}
	}
	if len(f.Topics) == 0 {
		return []string{"*"}
	}
	out := make([]string, len(f.Topics))
	for i, p := range f.Topics {
		out[i] = p.text
	}
	return out
}
