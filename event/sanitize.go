package event

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Length caps of sanitized free-text fields, in characters (Unicode code points).
const (
	// MaxMessageLen caps job.progress message.
	MaxMessageLen = 200
	// MaxErrorLen caps job.failed error.
	MaxErrorLen = 500
)

// Markers that replace removed content, so readers can tell something was taken out.
const (
	sanPathMarker = "[path]"
	sanSQLMarker  = "[sql]"
)

// SanitizeMessage cleans a job.progress message for publication
// (docs/api.md#validation-and-payload-hygiene) and cuts it to MaxMessageLen characters. See
// SanitizeError for the rules; the two differ only in the cap.
func SanitizeMessage(s string) string { return sanitize(s, MaxMessageLen) }

// SanitizeError cleans a job.failed error for publication
// (docs/api.md#validation-and-payload-hygiene) and cuts it to MaxErrorLen characters. In order:
//
//   - Invalid UTF-8 bytes become U+FFFD.
//   - The text is split into lines at \n, \r, \v, \f, U+0085, U+2028 and U+2029. Blank lines and
//     stack-trace lines are dropped (Java/JS/C#/Rust "at ..." frames and "... N more", Go
//     "goroutine N [...]:", function and file:line frames, Python "Traceback (most recent call
//     last):", `File "...", line N` with the source lines indented below it, PHP "#N" frames,
//     Ruby "from file:N:in" frames, "Stack trace:" headers); only the first remaining line is
//     kept. So a Python traceback yields its final "ValueError: ..." line and a Go panic its
//     "panic: ..." line.
//   - Control and invisible formatting characters (bidi overrides, zero-width space, BOM) are
//     removed, runs of white space become one space, and the line is trimmed.
//   - Absolute file-system paths (/usr/lib/x.go, /home/u/app.py:12, ~/x, C:\Users\x\a.cs,
//     \\server\share, file:///...) are replaced by "[path]", including a :line suffix.
//   - From the first SQL statement keyword (SELECT ... FROM, INSERT INTO, UPDATE x SET, DELETE
//     FROM, DROP/CREATE/ALTER/TRUNCATE TABLE and the like, WITH x AS (, case-insensitive) to
//     the end of the line is replaced by "[sql]".
//   - Only the first 8 KiB of the chosen line are examined.
//   - The result is cut to the cap in characters, never inside a UTF-8 sequence or a marker, and
//     trimmed again.
//
// Sanitizing is idempotent: SanitizeError(SanitizeError(s)) == SanitizeError(s). The result may
// be empty.
func SanitizeError(s string) string { return sanitize(s, MaxErrorLen) }

func sanitize(s string, limit int) string {
	r := sanOnce(s, limit)
	// sanOnce is designed to be idempotent on its own output; cutting to the cap can still turn a
	// line into one that a rule matches (say, a cut that makes it end in ")"), so run it to a
	// fixed point. The second pass works on at most limit characters and is cheap.
	for range 4 {
		next := sanOnce(r, limit)
		if next == r {
			break
		}
		r = next
	}
	return r
}

func sanOnce(s string, limit int) string {
	line := sanFirstLine(s)
	if line == "" {
		return ""
	}
	if strings.ContainsAny(line, `/\`) {
		line = sanPathRE.ReplaceAllString(line, "${1}"+sanPathMarker)
	}
	if loc := sanSQLRE.FindStringIndex(line); loc != nil {
		if prefix := strings.TrimRight(line[:loc[0]], " "); prefix != "" {
			line = prefix + " " + sanSQLMarker
		} else {
			line = sanSQLMarker
		}
	}
	return sanCut(line, limit)
}

// sanMaxLine is how many bytes of a line are examined.
const sanMaxLine = 8 << 10

// sanFirstLine returns the first line of s that is neither blank nor part of a stack trace,
// normalized by sanNormalize.
func sanFirstLine(s string) string {
	pyFrame, pyIndent := false, 0
	for s != "" {
		raw := s
		if i := strings.IndexFunc(s, sanIsBreak); i >= 0 {
			raw = s[:i]
			_, w := utf8.DecodeRuneInString(s[i:])
			s = s[i+w:]
		} else {
			s = ""
		}
		if len(raw) > sanMaxLine {
			// Bound the regexp work: the result holds at most a few hundred characters, and
			// whatever a rule would remove further along is cut off anyway.
			cut := sanMaxLine
			for cut > 0 && !utf8.RuneStart(raw[cut]) {
				cut--
			}
			raw = raw[:cut]
		}
		indent := len(raw) - len(strings.TrimLeft(raw, " \t"))
		line := sanNormalize(raw)
		if line == "" {
			continue
		}
		// Source excerpt (and ^^^ markers) indented below a Python `File "...", line N` frame.
		if pyFrame && indent > pyIndent {
			continue
		}
		pyFrame = false
		if sanPyFileRE.MatchString(line) {
			pyFrame, pyIndent = true, indent
			continue
		}
		if sanTraceRE.MatchString(line) {
			continue
		}
		return line
	}
	return ""
}

func sanIsBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', '\u0085', '\u2028', '\u2029':
		return true
	}
	return false
}

// sanNormalize replaces invalid UTF-8 with U+FFFD, drops control and invisible formatting
// characters, collapses white space to single spaces and trims.
func sanNormalize(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s { // invalid bytes arrive as U+FFFD
		switch {
		case unicode.IsSpace(r):
			space = true
		case unicode.IsControl(r) || sanInvisible(r):
		default:
			if space && b.Len() > 0 {
				b.WriteByte(' ')
			}
			space = false
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sanInvisible reports format characters that hide or reorder text: bidi controls, zero-width
// space, word joiner and friends, BOM. ZWJ and ZWNJ are kept (scripts and emoji need them).
func sanInvisible(r rune) bool {
	switch {
	case r == '\u061c', r == '\u180e', r == '\u200b', r == '\u200e', r == '\u200f', r == '\ufeff':
		return true
	case r >= '\u202a' && r <= '\u202e', r >= '\u2060' && r <= '\u2064', r >= '\u2066' && r <= '\u2069':
		return true
	}
	return false
}

// sanCut cuts s to limit runes, backing off to before a marker the cut would split, and trims.
func sanCut(s string, limit int) string {
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	off := 0
	for range limit {
		_, w := utf8.DecodeRuneInString(s[off:])
		off += w
	}
	cut := s[:off]
	if i := strings.LastIndexByte(cut, '['); i >= 0 {
		rest := s[i:]
		for _, m := range [...]string{sanPathMarker, sanSQLMarker} {
			if strings.HasPrefix(rest, m) && i+len(m) > off {
				cut = cut[:i]
				break
			}
		}
	}
	return strings.TrimRight(cut, " ")
}

// Characters that end a path: white space, quotes, brackets, separators of lists and the like.
const sanPathEnd = `\s:"'<>|()\[\]{},;*?` + "`"

var (
	// sanPathRE: group 1 is the start of the text or the character before the path; group 2
	// the path. Alternatives: file: URL, Windows drive path (directory names may hold spaces),
	// UNC path, Unix or home-relative path; each with an optional :line(:col) suffix.
	sanPathRE = regexp.MustCompile(`(^|[\s"'(>\[{=,;|` + "`" + `])(` +
		`(?i:file):/+[^\s"'<>()\[\]` + "`" + `]*` +
		`|[A-Za-z]:[\\/](?:[^\\/` + sanPathEnd[2:] + `\n]*[\\/])*[^\\/` + sanPathEnd + `]*` +
		`|\\\\[^` + sanPathEnd + `]+` +
		`|~?/[^` + sanPathEnd + `]+` +
		`)(?::\d+)*`)

	// sanSQLRE finds the start of an SQL statement.
	sanSQLRE = regexp.MustCompile(`(?i)\b(?:` +
		`SELECT\s+(?:DISTINCT\s+|ALL\s+|TOP\s+\d+\s+)?(?:\*|` + sanSQLItem + `(?:\s*,\s*` + sanSQLItem + `)*)\s+FROM\b` +
		`|(?:INSERT(?:\s+IGNORE)?|REPLACE|MERGE)\s+INTO\b` +
		`|UPDATE\s+` + sanSQLName + `\s+SET(?:\s+` + sanSQLName + `\s*=|\s*$)` +
		`|DELETE\s+FROM\b` +
		`|(?:DROP|CREATE(?:\s+OR\s+REPLACE)?|ALTER|TRUNCATE)\s+(?:TEMP(?:ORARY)?\s+|UNIQUE\s+)?` +
		`(?:TABLE|INDEX|VIEW|DATABASE|SCHEMA|SEQUENCE|TRIGGER|FUNCTION|PROCEDURE)\b` +
		`|WITH\s+(?:RECURSIVE\s+)?\w+\s+AS\s*\(` +
		`)`)

	// sanPyFileRE matches a Python traceback frame line.
	sanPyFileRE = regexp.MustCompile(`^File ".*", line \d+`)

	// sanTraceRE matches a whole normalized line that is part of a stack trace.
	sanTraceRE = regexp.MustCompile(`^(?:` +
		`at \S.*(?:\)|:\d+|:line \d+)` + // Java, JS, C#, Rust: at pkg.Cls.m(File.java:12)
		`|\.\.\. \d+ (?:more|common frames omitted)` + // Java
		`|goroutine \d+ \[[^\]]*\]:` + // Go
		`|created by \S+(?: in goroutine \d+)?` + // Go
		`|[\w./*()\[\]{}-]*\w\.[\w.*()\[\]{}$-]*\(.*\)(?: in goroutine \d+)?` + // Go: pkg.(*T).M(0x1, ...)
		`|\S+\.go:\d+(?: \+0x[0-9a-fA-F]+)?` + // Go: /src/x.go:12 +0x1d
		`|Traceback \(most recent call last\):` + // Python
		`|During handling of the above exception, another exception occurred:` +
		`|The above exception was the direct cause of the following exception:` +
		`|[\^~]+(?: [\^~]+)*` + // Python 3.11 ^^^^ markers
		`|#\d+ (?:\{main\}|\S.*\(\d+\): .*)` + // PHP
		`|from \S+:\d+:in .*` + // Ruby
		`|\d+: (?:0x[0-9a-fA-F]+ - )?\S+::\S.*` + // Rust backtrace
		`|--- End of (?:inner exception )?stack trace.*` + // .NET
		`|(?i:stack ?trace|backtrace|stack backtrace|call ?stack) ?:?` +
		`)$`)
)

// Item of a SELECT list: name, qualified name, t.*, function call, with optional alias.
const (
	sanSQLName = "[\\w.`\"\\[\\]]+"
	sanSQLItem = "(?:" + sanSQLName + "(?:\\*)?(?:\\([^)]*\\))?(?:\\s+AS\\s+[\\w`\"]+)?)"
)
