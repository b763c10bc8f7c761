package event

import (
	"strings"
	"testing"
)

// FuzzParsePattern: no input panics the topic-pattern parser; an accepted pattern round-trips,
// covers itself, and Covers agrees with Match (what a grant covers, it matches).
func FuzzParsePattern(f *testing.F) {
	for _, seed := range []struct{ p, q, topic string }{
		{"*", "jobs/*", "jobs/6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"},
		{"jobs/*", "jobs/abc", "jobs/abc"},
		{"jobs/*", "notes/*", "notes/x"},
		{"jobs/a/*", "jobs/*", "jobs/b"},
		{"queue", "queue", "queue"},
		{"jobs", "jobs/*", "jobs/x"},
		{"jobs/*", "jobsx/*", "jobsx/1"},
		{"a/*/b", "", ""},
		{"JOBS/*", "", ""},
		{"jobs//x", "", ""},
		{strings.Repeat("a", 129), "", ""},
	} {
		f.Add(seed.p, seed.q, seed.topic)
	}
	f.Fuzz(func(t *testing.T, ps, qs, topic string) {
		p, err := ParsePattern(ps)
		if err != nil {
			return
		}
		if p.String() != ps {
			t.Fatalf("ParsePattern(%q).String() = %q", ps, p.String())
		}
		if again, err := ParsePattern(p.String()); err != nil || again != p {
			t.Fatalf("%q does not round-trip: %v", ps, err)
		}
		if !p.Covers(p) {
			t.Fatalf("%q does not cover itself", ps)
		}
		q, err := ParsePattern(qs)
		if err != nil {
			return
		}
		if p.Covers(q) && q.Match(topic) && !p.Match(topic) {
			t.Fatalf("%q covers %q, which matches %q, but %q does not match it", ps, qs, topic, ps)
		}
		if q.Covers(p) && p.Covers(q) && p != q {
			t.Fatalf("%q and %q cover each other but differ", ps, qs)
		}
	})
}

func TestPatternCovers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		grant, asked string
		want         bool
	}{
		{"*", "*", true},
		{"*", "jobs/*", true},
		{"*", "queue", true},
		{"jobs/*", "jobs/*", true},
		{"jobs/*", "jobs/abc", true},
		{"jobs/*", "jobs/a/*", true},
		{"jobs/*", "*", false},
		{"jobs/*", "notes/*", false},
		{"jobs/*", "jobs", false},
		{"jobs/*", "jobsx/1", false},
		{"jobs/abc", "jobs/*", false},
		{"jobs/abc", "jobs/abc", true},
		{"jobs/abc", "jobs/abcd", false},
	}
	for _, tt := range tests {
		g, err1 := ParsePattern(tt.grant)
		a, err2 := ParsePattern(tt.asked)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s / %s: %v %v", tt.grant, tt.asked, err1, err2)
		}
		if got := g.Covers(a); got != tt.want {
			t.Errorf("%q.Covers(%q) = %v, want %v", tt.grant, tt.asked, got, tt.want)
		}
	}
}
