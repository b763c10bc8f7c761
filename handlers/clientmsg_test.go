package handlers

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClientMessage(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 100)
	cut := `"` + strings.Repeat("a", maxQuotedBytes) + `"...`
	tests := []struct{ name, in, want string }{
		{"short", `bad "x"`, `bad "x"`},
		{"long literal cut, tail kept", `invalid position: "` + long + `" is not a log id`, `invalid position: ` + cut + ` is not a log id`},
		{"two literals", `"` + long + `" and "` + long + `"`, cut + ` and ` + cut},
		{"escaped quotes inside", `x "` + strings.Repeat(`\"`, 80) + `" y`, `x "` + strings.Repeat(`\"`, maxQuotedBytes) + `"... y`},
		{"unterminated", `x "` + long, `x "` + long},
		{"quote to line end", "x \"" + long + "\n\"ok\"", "x \"" + long + "\n\"ok\""},
		{"multibyte cut at a rune", `"` + strings.Repeat("é", 40) + `"`, `"` + strings.Repeat("é", 32) + `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := clientMessage(tt.in); got != tt.want {
				t.Fatalf("clientMessage(%q)\n = %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestClientMessageBounded: whatever the message, the result is at most maxMessageBytes (plus the
// cut mark), valid UTF-8 when the input was, and computed in linear time (a quadratic scan of a
// megabyte of quotes would not finish within the test's time).
func TestClientMessageBounded(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		strings.Repeat("x", 1<<20),
		strings.Repeat(`"`, 1<<20),
		strings.Repeat(`"a`, 1<<19),
		strings.Repeat(`"é" `, 1<<18),
		strings.Repeat("é", 1<<19),
	} {
		out := clientMessage(in)
		if len(out) > maxMessageBytes+3 || !utf8.ValidString(out) {
			t.Fatalf("clientMessage of %q...: %d bytes (valid UTF-8: %v)", in[:8], len(out), utf8.ValidString(out))
		}
	}
}
