package client

import (
	"errors"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
	"unicode/utf8"
)

// readAll runs the reader to the end and returns the events, the last event ID, the retry and
// the final error (io.EOF at a normal end).
func readAll(r io.Reader, maxLine int) (evs []frame, last string, retry time.Duration, err error) {
	s := newReader(r, maxLine, "")
	for {
		ev, e := s.Next()
		if e != nil {
			retry, _ = s.Retry()
			return evs, s.LastEventID(), retry, e
		}
		evs = append(evs, ev)
	}
}

type readerCase struct {
	name    string
	in      string
	max     int
	want    []frame
	last    string
	retry   time.Duration
	wantErr error // io.EOF unless set
}

func msg(id, typ, data string) frame { return frame{ID: id, Type: typ, Data: data} }

var readerCases = []readerCase{
	{name: "simple", in: "data: hello\n\n", want: []frame{msg("", "message", "hello")}},
	{name: "our frame", in: "retry: 2000\n\nid: 1-0\nevent: job.progress\ndata: {\"a\":1}\n\n: ping\n\n",
		want: []frame{msg("1-0", "job.progress", `{"a":1}`)}, last: "1-0", retry: 2 * time.Second},
	{name: "multi-line data joined with LF", in: "data: a\ndata: b\ndata\n\n", want: []frame{msg("", "message", "a\nb\n")}},
	{name: "CRLF", in: "id: 1\r\nevent: x\r\ndata: y\r\n\r\n", want: []frame{msg("1", "x", "y")}, last: "1"},
	{name: "CR only", in: "data: a\rdata: b\r\r", want: []frame{msg("", "message", "a\nb")}},
	{name: "mixed line ends", in: "data: a\r\ndata: b\rdata: c\n\r\n", want: []frame{msg("", "message", "a\nb\nc")}},
	{name: "CR CR is two line ends", in: "data: a\r\rdata: b\n\n", want: []frame{msg("", "message", "a"), msg("", "message", "b")}},
	{name: "BOM skipped once", in: "\xEF\xBB\xBFdata: x\n\n", want: []frame{msg("", "message", "x")}},
	{name: "second BOM is part of the field name", in: "\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\ndata: y\n\n", want: []frame{msg("", "message", "y")}},
	{name: "BOM later is data", in: "data: \xEF\xBB\xBFx\n\n", want: []frame{msg("", "message", "\uFEFFx")}},
	{name: "comment only", in: ": ping\n\n:\n\n"},
	{name: "comment inside an event", in: "data: a\n: hi\ndata: b\n\n", want: []frame{msg("", "message", "a\nb")}},
	{name: "field without colon", in: "data\n\n", want: []frame{msg("", "message", "")}},
	{name: "empty value", in: "data:\n\n", want: []frame{msg("", "message", "")}},
	{name: "only one space removed", in: "data:  two\n\n", want: []frame{msg("", "message", " two")}},
	{name: "no space", in: "data:x\n\n", want: []frame{msg("", "message", "x")}},
	{name: "colon in value", in: "data: a: b\n\n", want: []frame{msg("", "message", "a: b")}},
	{name: "tab is not a space", in: "data:\tx\n\n", want: []frame{msg("", "message", "\tx")}},
	{name: "field names are case-sensitive", in: "DATA: x\n\nData: y\n\n"},
	{name: "leading space makes another field", in: " data: x\n\n"},
	{name: "unknown field ignored", in: "foo: bar\ndata: x\n\n", want: []frame{msg("", "message", "x")}},
	{name: "id persists", in: "id: 1\ndata: a\n\ndata: b\n\n", want: []frame{msg("1", "message", "a"), msg("1", "message", "b")}, last: "1"},
	{name: "empty id resets", in: "id: 1\ndata: a\n\nid\ndata: b\n\n", want: []frame{msg("1", "message", "a"), msg("", "message", "b")}},
	{name: "id with NUL ignored", in: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", want: []frame{msg("1", "message", "a"), msg("1", "message", "b")}, last: "1"},
	{name: "id-only block commits the id", in: "id: 7\n\n", last: "7"},
	{name: "last id set twice", in: "id: 1\nid: 2\ndata: x\n\n", want: []frame{msg("2", "message", "x")}, last: "2"},
	{name: "event without data is not dispatched and resets", in: "event: x\n\ndata: y\n\n", want: []frame{msg("", "message", "y")}},
	{name: "event type per event", in: "event: a\ndata: 1\n\ndata: 2\n\n", want: []frame{msg("", "a", "1"), msg("", "message", "2")}},
	{name: "retry", in: "retry: 1500\n\n", retry: 1500 * time.Millisecond},
	{name: "retry zero", in: "retry: 0\n\n", retry: 0},
	{name: "retry invalid ignored", in: "retry: 700\n\nretry: 15x\nretry: -1\nretry:\nretry: 1.5\nretry:  9\nretry: 99999999999999999999999\n\n", retry: 700 * time.Millisecond},
	{name: "incomplete event at EOF discarded", in: "data: x\n\ndata: y\n", want: []frame{msg("", "message", "x")}},
	{name: "unterminated line at EOF discarded", in: "id: 3\ndata: x\n\ndata: y", want: []frame{msg("3", "message", "x")}, last: "3"},
	{name: "incomplete id at EOF not committed", in: "id: 3\ndata: x\n\nid: 4\n", want: []frame{msg("3", "message", "x")}, last: "3"},
	{name: "blank lines", in: "\n\n\r\n\r"},
	{name: "empty stream", in: ""},
	{name: "invalid UTF-8 replaced", in: "event: \xfe\ndata: a\xffb\n\n", want: []frame{msg("", "\uFFFD", "a\uFFFDb")}},
	{name: "valid UTF-8 kept", in: "data: ünï ✓ 🎉\n\n", want: []frame{msg("", "message", "ünï ✓ 🎉")}},
	{name: "line at the bound", in: "data: 0123456789\n\n", max: 16, want: []frame{msg("", "message", "0123456789")}},
	{name: "line over the bound", in: "data: 0123456789abc\n\n", max: 16, wantErr: errLineTooLong},
	{name: "comment over the bound", in: ": 0123456789abcdefghij\n\n", max: 16, wantErr: errLineTooLong},
	{name: "data over the bound across lines", in: "data: 0123456\ndata: 0123456\ndata: 0123456\n\n", max: 16, wantErr: errLineTooLong},
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":     func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
		"data+err": func(s string) io.Reader { return iotest.DataErrReader(strings.NewReader(s)) },
	}
	for _, tc := range readerCases {
		for rname, mk := range readers {
			t.Run(tc.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				evs, last, retry, err := readAll(mk(tc.in), tc.max)
				wantErr := tc.wantErr
				if wantErr == nil {
					wantErr = io.EOF
				}
				if !errors.Is(err, wantErr) {
					t.Fatalf("error %v, want %v", err, wantErr)
				}
				if wantErr != io.EOF {
					return
				}
				if !slices.Equal(evs, tc.want) {
					t.Fatalf("events\n got %q\nwant %q", evs, tc.want)
				}
				if last != tc.last || retry != tc.retry {
					t.Fatalf("last id %q retry %v, want %q %v", last, retry, tc.last, tc.retry)
				}
			})
		}
	}
}

func TestSSEReaderReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("id: 1\ndata: a\n\ndata: b\n"), iotest.ErrReader(boom))
	s := newReader(r, 0, "0-5")
	if s.LastEventID() != "0-5" {
		t.Fatalf("initial last id %q, want 0-5", s.LastEventID())
	}
	if ev, err := s.Next(); err != nil || ev != msg("1", "message", "a") {
		t.Fatalf("first: %v %v", ev, err)
	}
	if _, err := s.Next(); !errors.Is(err, boom) {
		t.Fatalf("error %v, want %v", err, boom)
	}
	if s.LastEventID() != "1" {
		t.Fatalf("last id %q after the error, want 1", s.LastEventID())
	}
}

func TestSSEReaderInitialLastID(t *testing.T) {
	t.Parallel()
	// An event without id: carries the id the stream resumed from (EventSource semantics).
	evs, last, _, _ := readAll(strings.NewReader("data: x\n\n"), 0)
	if len(evs) != 1 || evs[0].ID != "" || last != "" {
		t.Fatalf("got %q last %q", evs, last)
	}
	s := newReader(strings.NewReader("data: x\n\n"), 0, "9-1")
	if ev, err := s.Next(); err != nil || ev.ID != "9-1" {
		t.Fatalf("got %v %v, want id 9-1", ev, err)
	}
}

// referenceParse is a deliberately naive second implementation of the same rules, working on the
// whole input at once; the fuzz test compares the streaming reader with it.
func referenceParse(in string, maxLine int) (evs []frame, last string, retry time.Duration, tooLong bool) {
	in = strings.TrimPrefix(in, "\uFEFF")
	lines := regexp.MustCompile("\r\n|\r|\n").Split(in, -1)
	if len(lines[len(lines)-1]) > maxLine {
		// The unterminated remainder is not a line, but the reader cannot know that it will not
		// be terminated: it stops once the bound is passed (after the lines before it).
		defer func() { tooLong = true }()
	}
	lines = lines[:len(lines)-1]
	var data, typ, idBuf string
	hasData := false
	for _, line := range lines {
		if len(line) > maxLine {
			return evs, last, retry, true
		}
		if line == "" {
			last = idBuf
			if hasData {
				if typ == "" {
					typ = "message"
				}
				evs = append(evs, frame{ID: last, Type: typ, Data: strings.TrimSuffix(data, "\n")})
			}
			data, typ, hasData = "", "", false
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			typ = strings.ToValidUTF8(value, "\uFFFD")
		case "data":
			if len(data)+len(value)+1 > maxLine {
				return evs, last, retry, true
			}
			data += value + "\n"
			hasData = true
		case "id":
			if !strings.Contains(value, "\x00") {
				idBuf = value
			}
		case "retry":
			if n, err := strconv.ParseUint(value, 10, 63); err == nil && !strings.HasPrefix(value, "+") && n <= 86400000 {
				retry = time.Duration(n) * time.Millisecond
			}
		}
	}
	return evs, last, retry, false
}

func FuzzSSEReader(f *testing.F) {
	for _, tc := range readerCases {
		f.Add(tc.in)
	}
	f.Add("data: a\r")
	f.Add("\xEF\xBB")
	f.Add("\xEFdata: x\n\n")
	f.Add("id: \xff\ndata: \xc3\n\n")
	f.Fuzz(func(t *testing.T, in string) {
		const maxLine = 64
		evs, last, retry, err := readAll(strings.NewReader(in), maxLine)
		evs1, last1, retry1, err1 := readAll(iotest.OneByteReader(strings.NewReader(in)), maxLine)
		if !errors.Is(err, io.EOF) && !errors.Is(err, errLineTooLong) {
			t.Fatalf("unexpected error %v", err)
		}
		if errors.Is(err1, io.EOF) != errors.Is(err, io.EOF) || !slices.Equal(evs, evs1) || last != last1 || retry != retry1 {
			t.Fatalf("whole vs one byte at a time differ:\n%q %q %v %v\n%q %q %v %v", evs, last, retry, err, evs1, last1, retry1, err1)
		}
		for _, ev := range evs {
			if !utf8.ValidString(ev.Data) || !utf8.ValidString(ev.Type) || !utf8.ValidString(ev.ID) ||
				strings.ContainsAny(ev.Type+ev.ID, "\r\n") || strings.ContainsRune(ev.ID, 0) || ev.Type == "" || strings.ContainsRune(ev.Data, '\r') {
				t.Fatalf("bad event %q", ev)
			}
		}
		// The reference works on valid UTF-8 (it does not replace invalid bytes in data or id).
		if !utf8.ValidString(in) {
			return
		}
		revs, rlast, rretry, rlong := referenceParse(in, maxLine)
		if rlong != errors.Is(err, errLineTooLong) {
			t.Fatalf("too long: reader %v, reference %v", err, rlong)
		}
		if rlong {
			// The reader stops at the offending line: the events before it must agree.
			if !slices.Equal(evs, revs) {
				t.Fatalf("before the long line: reader %q, reference %q", evs, revs)
			}
			return
		}
		if !slices.Equal(evs, revs) || last != rlast || retry != rretry {
			t.Fatalf("reader %q %q %v\nreference %q %q %v", evs, last, retry, revs, rlast, rretry)
		}
	})
}
