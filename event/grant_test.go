package event

import (
	"strings"
	"testing"
)

const grantJob = "jobs/6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"

func mustPatterns(t *testing.T, in ...string) []Pattern {
	t.Helper()
	out := make([]Pattern, 0, len(in))
	for _, s := range in {
		p, err := ParsePattern(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// TestGrantCovers: a grant covers a set of patterns when each is covered by one of its patterns;
// no topics means "*"; a nil grant covers all.
func TestGrantCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		grant     []string // nil: unrestricted
		topics    []string
		uncovered string // "" when covered
	}{
		{nil, nil, ""},
		{nil, []string{"*"}, ""},
		{[]string{"*"}, nil, ""},
		{[]string{"*"}, []string{"notes/*", "queue"}, ""},
		{[]string{"jobs/*"}, []string{grantJob}, ""},
		{[]string{"jobs/*"}, []string{"jobs/*"}, ""},
		{[]string{"jobs/*"}, []string{"jobs/a/*"}, ""},
		{[]string{"jobs/*"}, nil, "*"},
		{[]string{"jobs/*"}, []string{"*"}, "*"},
		{[]string{"jobs/*"}, []string{grantJob, "notes/*"}, "notes/*"},
		{[]string{grantJob}, []string{grantJob}, ""},
		{[]string{grantJob}, []string{"jobs/*"}, "jobs/*"},
		{[]string{grantJob}, nil, "*"},
		{[]string{"jobs/*", "queue"}, []string{"queue", grantJob}, ""},
		{[]string{"jobs/*", "queue"}, []string{"queue", "queue/*"}, "queue/*"},
		{[]string{"jobs"}, []string{"jobs/*"}, "jobs/*"},
		{[]string{"jobs/*"}, []string{"jobsx/*"}, "jobsx/*"},
		{[]string{}, []string{"queue"}, "queue"}, // an empty (non-nil) grant covers nothing
	}
	for _, tt := range tests {
		var grant []Pattern
		if tt.grant != nil {
			grant = mustPatterns(t, tt.grant...)
		}
		got, ok := GrantCovers(grant, mustPatterns(t, tt.topics...))
		if ok != (tt.uncovered == "") || (!ok && got.String() != tt.uncovered) {
			t.Errorf("GrantCovers(%q, %q) = %q, %v; want uncovered %q", tt.grant, tt.topics, got, ok, tt.uncovered)
		}
		if again := GrantCoversTopics(grant, tt.topics); again != ok {
			t.Errorf("GrantCoversTopics(%q, %q) = %v, GrantCovers says %v", tt.grant, tt.topics, again, ok)
		}
	}
}

// TestGrantCoversTopicsMalformed: a stored pattern that does not parse is outside every
// restricted grant (fail closed).
func TestGrantCoversTopicsMalformed(t *testing.T) {
	t.Parallel()
	for _, topics := range [][]string{{"JOBS/*"}, {"jobs/*", ""}, {strings.Repeat("a", 200)}} {
		if GrantCoversTopics(mustPatterns(t, "*"), topics) {
			t.Errorf("GrantCoversTopics(*, %q) = true, want false", topics)
		}
		if !GrantCoversTopics(nil, topics) {
			t.Errorf("GrantCoversTopics(nil, %q) = false, want true (unrestricted)", topics)
		}
	}
}

func TestGrantMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		grant []string
		topic string
		want  bool
	}{
		{nil, "notes/x", true},
		{[]string{"*"}, "notes/x", true},
		{[]string{"jobs/*"}, grantJob, true},
		{[]string{"jobs/*"}, "notes/x", false},
		{[]string{"jobs/*"}, "queue", false},
		{[]string{grantJob}, grantJob, true},
		{[]string{grantJob}, "jobs/other", false},
		{[]string{"jobs/*", "queue"}, "queue", true},
	}
	for _, tt := range tests {
		var grant []Pattern
		if tt.grant != nil {
			grant = mustPatterns(t, tt.grant...)
		}
		if got := GrantMatches(grant, tt.topic); got != tt.want {
			t.Errorf("GrantMatches(%q, %q) = %v, want %v", tt.grant, tt.topic, got, tt.want)
		}
	}
}
