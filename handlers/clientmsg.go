package handlers

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds of what an error answer may echo of the request: a quoted value is cut to
// maxQuotedBytes (as the catalogue cuts field names), a whole message to maxMessageBytes.
const (
	maxQuotedBytes  = 64
	maxMessageBytes = 1024
)

// quoteCut quotes s for an error message, cut to maxQuotedBytes at a rune boundary ("..." marks
// the cut).
func quoteCut(s string) string {
	if len(s) <= maxQuotedBytes {
		return strconv.Quote(s)
	}
	return strconv.Quote(cutAtRune(s, maxQuotedBytes)) + "..."
}

// cutAtRune returns s cut to at most n bytes without splitting a UTF-8 sequence.
func cutAtRune(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// clientMessage bounds an error message for the client whatever its source quoted: every
// double-quoted literal longer than maxQuotedBytes is cut (quoteCut), then the whole message to
// maxMessageBytes. Messages quote client input with %q (ids, topics, origins, webhook ids…), so
// this is the one place that keeps a 500 KB header from coming back as a 500 KB answer. Linear
// in len(msg).
func clientMessage(msg string) string {
	if len(msg) <= maxQuotedBytes {
		return msg
	}
	var b strings.Builder
	for i := 0; i < len(msg); {
		j := strings.IndexByte(msg[i:], '"')
		if j < 0 {
			b.WriteString(msg[i:])
			break
		}
		b.WriteString(msg[i : i+j])
		i += j
		end, closed := literalEnd(msg, i)
		switch lit := msg[i:end]; {
		case !closed:
			b.WriteString(lit) // no closing quote before a line end: plain text
		case len(lit) <= maxQuotedBytes+2:
			b.WriteString(lit)
		default:
			if v, err := strconv.Unquote(lit); err == nil {
				b.WriteString(quoteCut(v))
			} else {
				b.WriteString(cutAtRune(lit, maxQuotedBytes) + `..."`)
			}
		}
		i = end
		if b.Len() > maxMessageBytes {
			break
		}
	}
	if out := b.String(); len(out) > maxMessageBytes {
		return cutAtRune(out, maxMessageBytes) + "..."
	}
	return b.String()
}

// literalEnd scans the Go-quoted literal opening at msg[i] (a '"'). It returns the index after
// its closing quote and true, or the index of the line end (or len(msg)) and false. A quote
// inside the scanned span is escaped, so no literal can start there: callers continue from the
// returned index, which keeps the scan of a message linear.
func literalEnd(msg string, i int) (int, bool) {
	for j := i + 1; j < len(msg); j++ {
		switch msg[j] {
		case '\\':
			j++ // skip the escaped byte
		case '"':
			return j + 1, true
		case '\n':
			return j, false
		}
	}
	return len(msg), false
}
