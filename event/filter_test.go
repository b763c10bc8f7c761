package event

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
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

func TestNewFilterMax(t *testing.T) {
	t.Parallel()
	many := func(n int, f func(int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	topic := func(i int) string { return fmt.Sprintf("jobs/%d", i) }
	tests := []struct {
		name          string
		topics, types []string
		max           int
		want          error // nil: accepted
		topicsN       int
	}{
		{"at the limit", many(4, topic), nil, 4, nil, 4},
		{"over the limit", many(5, topic), nil, 4, ErrTooManyTopics, 0},
		{"repeats do not count", append(many(4, topic), many(4, topic)...), nil, 4, nil, 4},
		{"a long list of repeats", many(10000, func(int) string { return "queue" }), nil, 1, nil, 1},
		{"no limit", many(500, topic), nil, 0, nil, 500},
		{"a bad pattern before the limit", []string{"jobs/1", "BAD"}, nil, 1, ErrInvalidFilter, 0},
		{"types at the limit", nil, []string{"job.queued", "job.started", "job.queued"}, 2, nil, 0},
		{"types over the limit", nil, []string{"job.queued", "job.started", "job.failed"}, 2, ErrTooManyTypes, 0},
		{"an unknown type", nil, []string{"job.nope"}, 2, ErrInvalidFilter, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := NewFilterMax(tt.topics, tt.types, tt.max)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalidFilter) {
					t.Fatalf("err %v, want %v (an invalid filter)", err, tt.want)
				}
				return
			}
			if err != nil || len(f.Topics) != tt.topicsN {
				t.Fatalf("got %d topics, err %v; want %d", len(f.Topics), err, tt.topicsN)
			}
		})
	}
}

// TestNewFilterLinear: building a filter from a long list takes time linear in it (it used to
// check every pattern against every earlier one: 5 s here for this list, ten times that with -race).
func TestNewFilterLinear(t *testing.T) {
	t.Parallel()
	topics := make([]string, 50_000)
	for i := range topics {
		topics[i] = fmt.Sprintf("jobs/%d", i)
	}
	start := time.Now()
	f, err := NewFilter(topics, nil)
	if err != nil || len(f.Topics) != len(topics) {
		t.Fatalf("got %d topics, err %v", len(f.Topics), err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("NewFilter took %v for %d distinct patterns, want linear time (well under a second)", d, len(topics))
	}
}
