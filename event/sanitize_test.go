package event_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/eventgate/eventgate/event"
)

var sanCases = []struct {
	name, in, want string
}{
	{"plain", "connection refused", "connection refused"},
	{"empty", "", ""},
	{"blank", " \t\r\n\u2028 ", ""},
	{"html kept", "<b>R&D</b> done", "<b>R&D</b> done"},
	{"unicode kept", "größe 😀 ok – 完了", "größe 😀 ok – 完了"},
	{"zwj kept", "👩\u200d💻 ok", "👩\u200d💻 ok"},

	// Lines.
	{"second line dropped", "first\nsecond", "first"},
	{"cr", "first\rsecond", "first"},
	{"crlf", "first\r\nsecond", "first"},
	{"u2028", "first\u2028second", "first"},
	{"u2029", "first\u2029second", "first"},
	{"nel", "first\u0085second", "first"},
	{"vt ff", "first\vsecond\fthird", "first"},
	{"leading blank lines", "\n\n  \n  real message  \nmore", "real message"},

	// Control and white space.
	{"controls stripped", "a\x00b\x07c\x1bd\x7fe\u0080f\u009fg", "abcdefg"},
	{"ansi escape", "\x1b[31mred\x1b[0m", "[31mred[0m"},
	{"tabs collapse", "a\t\tb   c\u00a0\u3000d", "a b c d"},
	{"trim", "   padded   ", "padded"},
	{"bidi override", "abc\u202edcba\u202c \u2066x\u2069", "abcdcba x"},
	{"zero width and bom", "\ufeffa\u200bb", "ab"},
	{"invalid utf8", "bad \xff\xfe byte", "bad \ufffd\ufffd byte"},
	{"truncated utf8", "x\xe2\x82", "x\ufffd\ufffd"},

	// Paths.
	{"unix path", "open /usr/lib/x.go failed", "open [path] failed"},
	{"unix path line", "error in /home/u/app.py:12", "error in [path]"},
	{"unix path line col", "/srv/app/main.js:12:7: boom", "[path]: boom"},
	{"path in parens", "failed (see /var/log/x.log)", "failed (see [path])"},
	{"path in quotes", `open "/etc/passwd": permission denied`, `open "[path]": permission denied`},
	{"path after equals", "config=/etc/app/config.yaml invalid", "config=[path] invalid"},
	{"several paths", "mv /a/b /c/d, /e", "mv [path] [path], [path]"},
	{"home path", "read ~/secrets/key.pem", "read [path]"},
	{"shell redirect", "cmd 2>/dev/null failed", "cmd 2>[path] failed"},
	{"windows path", `C:\Users\x\a.cs failed`, "[path] failed"},
	{"windows path forward", "load C:/data/in.csv", "load [path]"},
	{"windows program files", `crash in C:\Program Files\App\app.exe now`, "crash in [path] now"},
	{"unc path", `\\server\share\file.txt missing`, "[path] missing"},
	{"file url", "see file:///home/u/x.html#a", "see [path]"},
	{"file url upper", "FILE:///C:/x/y", "[path]"},
	{"relative path kept", "wrote out/report.csv", "wrote out/report.csv"},
	{"fraction kept", "done 3/4 and km/h", "done 3/4 and km/h"},
	{"url kept", "GET https://example.com/api/x 503", "GET https://example.com/api/x 503"},
	{"closing tag kept", "<i>x</i>", "<i>x</i>"},

	// SQL.
	{"select", "query failed: SELECT * FROM users WHERE id=1", "query failed: [sql]"},
	{"select lower", "select id, name from users where x", "[sql]"},
	{"select funcs", "err: Select count(*) AS n, u.* FROM t", "err: [sql]"},
	{"insert", "pq: duplicate key in INSERT INTO users (id) VALUES (1)", "pq: duplicate key in [sql]"},
	{"insert ignore", "insert ignore into t values (1)", "[sql]"},
	{"update", "Error 1205: UPDATE accounts SET balance = 0 WHERE id = 7", "Error 1205: [sql]"},
	{"update bare", "UPDATE x SET", "[sql]"},
	{"delete", "cannot run delete from sessions where 1=1", "cannot run [sql]"},
	{"drop", "DROP TABLE users; -- oops", "[sql]"},
	{"create index", "migration: CREATE UNIQUE INDEX idx ON t(x)", "migration: [sql]"},
	{"truncate", "truncate table logs", "[sql]"},
	{"cte", "WITH x AS (SELECT 1) SELECT * FROM x", "[sql]"},
	{"sql after path", "in /srv/q.sql: DELETE FROM t", "in [path]: [sql]"},
	{"sql mentions path", "UPDATE /tmp/x SET a=1", "[sql]"},
	{"select word kept", "Please select a file to upload", "Please select a file to upload"},
	{"update word kept", "Failed to update the set of rules", "Failed to update the set of rules"},
	{"selected kept", "SELECTED FROMAGE", "SELECTED FROMAGE"},

	// Stack traces.
	{"java", "java.lang.NullPointerException: boom\n\tat com.foo.Bar(Bar.java:12)\n\t... 3 more", "java.lang.NullPointerException: boom"},
	{"java frame only", "at com.foo.Bar(Bar.java:12)", ""},
	{"java frame first", "\tat com.foo.Bar(Bar.java:12)\nCaused by: x", "Caused by: x"},
	{"node", "Error: nope\n    at Object.<anonymous> (/app/x.js:1:2)\n    at node:internal/main:3:4", "Error: nope"},
	{"node frame first", "    at async Promise.all (index 0)\n    at /app/x.js:1:2\nreal", "real"},
	{"csharp", "   at Foo.Bar() in C:\\src\\Foo.cs:line 12\nSystem.Exception: x", "System.Exception: x"},
	{"at in prose kept", "at least 3 retries failed", "at least 3 retries failed"},
	{"go panic", "panic: runtime error: index out of range [5] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n\t/home/u/main.go:12 +0x1d\nexit status 2", "panic: runtime error: index out of range [5] with length 3"},
	{"go dump first", "goroutine 7 [chan receive, 3 minutes]:\nnet/http.(*conn).serve(0xc000123456, {0x8c2f60, 0xc0001})\n\t/usr/local/go/src/net/http/server.go:2039 +0x1d\ncreated by net/http.(*Server).Serve in goroutine 1\nboom", "boom"},
	{"python", "Traceback (most recent call last):\n  File \"/app/x.py\", line 3, in <module>\n    foo()\n  File \"/app/x.py\", line 2, in foo\n    raise ValueError(\"bad /etc/x\")\n    ^^^^^^^^^^^^^^^^^^\nValueError: bad /etc/x", "ValueError: bad [path]"},
	{"python chained", "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\nKeyError: 'k'\n\nDuring handling of the above exception, another exception occurred:\n\nx", "KeyError: 'k'"},
	{"python traceback only", "Traceback (most recent call last):\n  File \"a.py\", line 1", ""},
	{"php", "#0 /var/www/x.php(12): foo()\n#1 {main}\nPHP Fatal error: x", "PHP Fatal error: x"},
	{"ruby", "from /app/x.rb:12:in `block in foo'\nRuntimeError", "RuntimeError"},
	{"rust", "stack backtrace:\n   0: std::panicking::begin_panic\n   1: 0x55d1 - app::main\nthread 'main' panicked", "thread 'main' panicked"},
	{"stack trace header", "Stack trace:\n#0 {main}", ""},
}

func TestSanitize(t *testing.T) {
	t.Parallel()
	for _, tt := range sanCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := event.SanitizeError(tt.in)
			if got != tt.want {
				t.Fatalf("SanitizeError(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if m := event.SanitizeMessage(tt.in); m != tt.want {
				t.Fatalf("SanitizeMessage(%q) = %q, want %q", tt.in, m, tt.want)
			}
			sanCheck(t, tt.in, event.MaxErrorLen, event.SanitizeError)
		})
	}
}

func TestSanitizeCap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		fn   func(string) string
		want string
	}{
		{"message exact", strings.Repeat("a", 200), event.SanitizeMessage, strings.Repeat("a", 200)},
		{"message over", strings.Repeat("a", 201), event.SanitizeMessage, strings.Repeat("a", 200)},
		{"error exact", strings.Repeat("é", 500), event.SanitizeError, strings.Repeat("é", 500)},
		{"error over multibyte", strings.Repeat("😀", 501), event.SanitizeError, strings.Repeat("😀", 500)},
		{"cut then trim", strings.Repeat("a", 199) + " bbbb", event.SanitizeMessage, strings.Repeat("a", 199)},
		{"counts after collapse", strings.Repeat("a  ", 100), event.SanitizeMessage, strings.TrimSpace(strings.Repeat("a ", 100))},
		{"cut not inside marker", strings.Repeat("a", 196) + " /etc/passwd tail", event.SanitizeMessage, strings.Repeat("a", 196)},
		{"marker fits", strings.Repeat("a", 193) + " /etc/x", event.SanitizeMessage, strings.Repeat("a", 193) + " [path]"},
		{"sql marker at cap", strings.Repeat("a", 195) + " SELECT * FROM t", event.SanitizeMessage, strings.Repeat("a", 195)},
		{"huge single line", strings.Repeat("x", 1<<20), event.SanitizeError, strings.Repeat("x", 500)},
		{"cut makes a frame", "at " + strings.Repeat("x", 194) + "(y) and more words here", event.SanitizeMessage, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.fn(tt.in); got != tt.want {
				t.Fatalf("got  %q (%d runes)\nwant %q", got, utf8.RuneCountInString(got), tt.want)
			}
		})
	}
}

func TestSanitizeManyLines(t *testing.T) {
	t.Parallel()
	in := strings.Repeat("\tat com.foo.Bar(Bar.java:12)\n", 50000) + "last"
	if got := event.SanitizeError(in); got != "last" {
		t.Fatalf("got %q", got)
	}
}

// sanCheck asserts the invariants of a sanitized string.
func sanCheck(t *testing.T, in string, limit int, fn func(string) string) {
	t.Helper()
	out := fn(in)
	if again := fn(out); again != out {
		t.Fatalf("not idempotent for %q:\n once  %q\n twice %q", in, out, again)
	}
	if !utf8.ValidString(out) {
		t.Fatalf("invalid UTF-8 from %q: %q", in, out)
	}
	if n := utf8.RuneCountInString(out); n > limit {
		t.Fatalf("%d runes > %d from %q", n, limit, in)
	}
	if strings.ContainsAny(out, "\n\r\v\f\u0085\u2028\u2029\x00\t") {
		t.Fatalf("line break or control in %q (from %q)", out, in)
	}
	if out != strings.TrimSpace(out) || strings.Contains(out, "  ") {
		t.Fatalf("white space not normalized: %q", out)
	}
}

// FuzzSanitize: both sanitizers are idempotent, within their cap, valid UTF-8 and one line.
func FuzzSanitize(f *testing.F) {
	for _, c := range sanCases {
		f.Add(c.in)
	}
	for _, s := range []string{
		"at x(/a)", "UPDATE [path] SET x=1", "/a:1/b", "x[/a", "C:\\a b\\c d", "\\\\s\\x y",
		"SELECT a FROM (INSERT INTO t", "goroutine 1 /x]:", "file:/x", "~/", "[pa", "a [sql] b",
		strings.Repeat("ab /c ", 60), strings.Repeat("é", 199) + " /x", "at " + strings.Repeat("y", 197) + "(z)w",
		"\xed\xa0\x80 \xc0\xaf", "main.main()", "x.y(z) SELECT a FROM b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sanCheck(t, s, event.MaxMessageLen, event.SanitizeMessage)
		sanCheck(t, s, event.MaxErrorLen, event.SanitizeError)
	})
}
