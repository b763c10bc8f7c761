package client

// A small Server-Sent Events reader following the WHATWG "event stream interpretation" rules,
// written for this package (r3labs/sse's client does not reconnect after a clean EOF and ignores
// retry:). It has no dependency beyond the standard library.

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// errLineTooLong is returned by reader.Next when a line (or an event's accumulated data)
// exceeds the reader's bound: a broken or hostile server cannot make the client buffer without
// limit.
var errLineTooLong = errors.New("sse: line too long")

// defaultMaxLine bounds one line and one event's data. The server's largest event is 16 MiB
// (EVENTGATE_MAX_EVENT_BYTES); the envelope adds little.
const defaultMaxLine = 32 << 20

// frame is one dispatched event, before it is interpreted as a Message.
type frame struct {
	// ID is the stream's last event ID at dispatch: the id: of this event, or the last one seen
	// before it (ids persist across events, per the WHATWG rules).
	ID string
	// Type is the event: field, "message" when the event had none.
	Type string
	// Data is the data: lines joined with "\n".
	Data string
}

// reader parses an event stream. Lines end with CRLF, LF or CR; a leading UTF-8 BOM is
// skipped; lines starting with ':' are comments; a field without a colon has an empty value; one
// space after the colon is removed; unknown fields are ignored; a retry: of ASCII digits only
// sets the reconnection time; an id: containing NUL is ignored; a block without data is not
// dispatched (but its id: still becomes the last event ID); an incomplete block at EOF is
// discarded. Invalid UTF-8 is replaced by U+FFFD.
//
// A reader is not safe for concurrent use; it owns nothing but its buffer (the caller closes
// the underlying reader).
type reader struct {
	r       *bufio.Reader
	maxLine int
	started bool // past the optional BOM
	skipLF  bool // the previous line ended with CR: a following LF belongs to it
	line    []byte

	// Per-event buffers.
	data      strings.Builder
	eventType string
	idBuf     string
	hasData   bool

	lastID   string        // the last event ID, committed at each dispatch point
	retry    time.Duration // the last valid retry: value
	hasRetry bool
}

// newReader reads events from r. maxLine bounds a line and an event's data in bytes
// (defaultMaxLine if <= 0). lastID is the last event ID to start from (sent on reconnect).
func newReader(r io.Reader, maxLine int, lastID string) *reader {
	if maxLine <= 0 {
		maxLine = defaultMaxLine
	}
	return &reader{r: bufio.NewReaderSize(r, 32<<10), maxLine: maxLine, lastID: lastID, idBuf: lastID}
}

// LastEventID is the ID a reconnecting client sends as Last-Event-ID.
func (s *reader) LastEventID() string { return s.lastID }

// Retry returns the last retry: value the stream sent.
func (s *reader) Retry() (time.Duration, bool) { return s.retry, s.hasRetry }

// Next returns the next dispatched event. At the end of the stream it returns io.EOF (an
// incomplete last event is discarded); a read error is returned as is, and an over-long line as
// errLineTooLong.
func (s *reader) Next() (frame, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return frame{}, err
		}
		if len(line) == 0 {
			if ev, ok := s.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if err := s.processLine(line); err != nil {
			return frame{}, err
		}
	}
}

// readLine returns the next line without its terminator (CRLF, LF or CR). The returned slice is
// valid until the next call. An unterminated line at EOF is not a line: the stream ended
// mid-event, and io.EOF is returned.
func (s *reader) readLine() ([]byte, error) {
	s.line = s.line[:0]
	if !s.started {
		// One leading BOM is ignored. Peek byte by byte so a short first write is not held back.
		if b, err := s.r.Peek(1); err != nil {
			return nil, err
		} else if b[0] == 0xEF {
			if b, err := s.r.Peek(3); err == nil && string(b) == "\xEF\xBB\xBF" {
				_, _ = s.r.Discard(3)
			}
		}
		s.started = true
	}
	for {
		if _, err := s.r.Peek(1); err != nil { // blocks until a byte or an error
			return nil, err
		}
		buf, _ := s.r.Peek(s.r.Buffered())
		if s.skipLF {
			s.skipLF = false
			if buf[0] == '\n' { // the LF of a CRLF that arrived after the CR
				_, _ = s.r.Discard(1)
				continue
			}
		}
		i := bytes.IndexAny(buf, "\r\n")
		if i < 0 {
			if err := s.appendLine(buf); err != nil {
				return nil, err
			}
			_, _ = s.r.Discard(len(buf))
			continue
		}
		if err := s.appendLine(buf[:i]); err != nil {
			return nil, err
		}
		s.skipLF = buf[i] == '\r'
		_, _ = s.r.Discard(i + 1)
		return s.line, nil
	}
}

func (s *reader) appendLine(b []byte) error {
	if len(s.line)+len(b) > s.maxLine {
		return fmt.Errorf("%w (more than %d bytes)", errLineTooLong, s.maxLine)
	}
	s.line = append(s.line, b...)
	return nil
}

// processLine applies one non-empty line to the event buffers.
func (s *reader) processLine(line []byte) error {
	if line[0] == ':' {
		return nil // a comment (the server's heartbeat)
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(field) {
	case "event":
		s.eventType = validUTF8(value)
	case "data":
		if s.data.Len()+len(value)+1 > s.maxLine {
			return fmt.Errorf("%w (event data over %d bytes)", errLineTooLong, s.maxLine)
		}
		s.data.WriteString(validUTF8(value))
		s.data.WriteByte('\n')
		s.hasData = true
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			s.idBuf = validUTF8(value)
		}
	case "retry":
		if len(value) > 0 && isDigits(value) {
			if ms, err := strconv.ParseInt(string(value), 10, 64); err == nil && ms <= int64(24*time.Hour/time.Millisecond) {
				s.retry, s.hasRetry = time.Duration(ms)*time.Millisecond, true
			}
		}
	}
	return nil
}

// dispatch ends a block: it commits the last event ID and returns the event if the block had data.
func (s *reader) dispatch() (frame, bool) {
	s.lastID = s.idBuf
	if !s.hasData {
		s.data.Reset()
		s.eventType = ""
		return frame{}, false
	}
	data := strings.TrimSuffix(s.data.String(), "\n")
	typ := s.eventType
	if typ == "" {
		typ = "message"
	}
	s.data.Reset()
	s.eventType, s.hasData = "", false
	return frame{ID: s.lastID, Type: typ, Data: data}, true
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// validUTF8 converts b to a string, replacing each invalid byte with U+FFFD.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			sb.WriteRune(utf8.RuneError)
		} else {
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}
