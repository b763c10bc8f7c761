package main

import (
	"bytes"
	"errors"
	"math/rand/v2"
)

// stream is the parsing state of one epoll-mode connection: bytes arrive in whatever pieces the
// reads return, and are parsed in place in the worker's read buffer; only an unfinished line or
// frame is copied, into part, which grows only as far as the longest such tail.
type stream struct {
	conn
	p     *progress
	ws    bool
	ready bool   // SSE: the first line (retry:, the server has subscribed) is read; WebSocket: upgraded
	part  []byte // SSE: the unfinished line; WebSocket: the unfinished frame
	err   error  // the stream is over: EOF, a close frame, bytes that are not the protocol

	// SSE with Transfer-Encoding: chunked (a server answering through a ResponseWriter; eventgate
	// and the floor take the connection over and write the bytes raw, ended by the close).
	chunked   bool
	chunkLeft int    // data bytes left in the current chunk, or one of the chunk* states
	sizeLine  []byte // an unfinished chunk-size line

	// WebSocket.
	msg   []byte // a fragmented message so far
	inMsg bool
	pong  []byte // pongs owed to the server, for the worker to write
}

const (
	chunkSize = -1 // reading a chunk-size line
	chunkCRLF = -2 // reading the CRLF that ends a chunk's data
	chunkEnd  = -3 // the last chunk was read: the response is over
)

// maxPart bounds a line or frame: the benchmark's are a few hundred bytes.
const maxPart = 1 << 20

var (
	errClosed   = errors.New("closed by the server")
	errProtocol = errors.New("not the protocol")
	errTooLong  = errors.New("line or frame too long")
)

// feed parses b, read at now (unix ns). After an error (s.err) the rest is ignored.
func (s *stream) feed(b []byte, now int64) {
	switch {
	case s.err != nil:
	case s.ws:
		s.feedWS(b, now)
	case s.chunked:
		s.feedChunked(b, now)
	default:
		s.feedSSE(b, now)
	}
}

// feedChunked takes the chunk framing off b and passes the data on to feedSSE.
func (s *stream) feedChunked(b []byte, now int64) {
	for len(b) > 0 && s.err == nil {
		switch s.chunkLeft {
		case chunkEnd:
			return
		case chunkSize, chunkCRLF:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				if s.chunkLeft == chunkSize {
					s.sizeLine = append(s.sizeLine, b...)
				}
				return
			}
			line := b[:i]
			b = b[i+1:]
			if s.chunkLeft == chunkCRLF {
				s.chunkLeft = chunkSize
				continue
			}
			if len(s.sizeLine) > 0 {
				line = append(s.sizeLine, line...)
				s.sizeLine = s.sizeLine[:0]
			}
			size, ok := parseChunkSize(line)
			switch {
			case !ok:
				s.err = errProtocol
			case size == 0:
				s.chunkLeft, s.err = chunkEnd, errClosed
			default:
				s.chunkLeft = size
			}
		default:
			n := min(s.chunkLeft, len(b))
			s.feedSSE(b[:n], now)
			b = b[n:]
			if s.chunkLeft -= n; s.chunkLeft == 0 {
				s.chunkLeft = chunkCRLF
			}
		}
	}
}

// parseChunkSize reads a chunk-size line's hexadecimal size (extensions and the CR ignored).
func parseChunkSize(line []byte) (int, bool) {
	if i := bytes.IndexAny(line, ";\r"); i >= 0 {
		line = line[:i]
	}
	line = bytes.TrimSpace(line)
	if len(line) == 0 || len(line) > 7 {
		return 0, false
	}
	n := 0
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}

// feedSSE splits b into lines; a line cut by the end of b waits in part for the rest.
func (s *stream) feedSSE(b []byte, now int64) {
	if len(s.part) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.keep(b)
			return
		}
		s.part = append(s.part, b[:i]...)
		s.line(s.part, now)
		s.part = s.part[:0]
		b = b[i+1:]
	}
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			s.keep(b)
			return
		}
		s.line(b[:i], now)
		b = b[i+1:]
	}
}

// keep appends an unfinished tail to part.
func (s *stream) keep(b []byte) {
	if len(s.part)+len(b) > maxPart {
		s.err = errTooLong
		return
	}
	s.part = append(s.part, b...)
}

var dataPrefix = []byte("data: ")

// line is one SSE line, without its '\n'. The first is the retry: line, which says the server
// has subscribed (as in goroutine mode, where open reads it before counting the connection open).
func (s *stream) line(l []byte, now int64) {
	if !s.ready {
		s.ready = true
		return
	}
	if data, ok := bytes.CutPrefix(l, dataPrefix); ok {
		if id, sent, ok := parseEvent(data); ok {
			s.p.record(&s.conn, id, sent, now)
		}
	}
}

// feedWS splits b into WebSocket frames; a frame cut by the end of b is completed in part from
// the next bytes, taking no more of them than it lacks.
func (s *stream) feedWS(b []byte, now int64) {
	for len(b) > 0 && s.err == nil {
		if len(s.part) > 0 {
			need, whole := frameSize(s.part)
			if need > maxPart {
				s.err = errTooLong
				return
			}
			take := min(need-len(s.part), len(b))
			s.part = append(s.part, b[:take]...)
			b = b[take:]
			if whole && len(s.part) == need {
				s.frame(s.part, now)
				s.part = s.part[:0]
			}
			continue
		}
		need, whole := frameSize(b)
		if !whole || need > len(b) {
			s.keep(b)
			return
		}
		s.frame(b[:need], now)
		b = b[need:]
	}
}

// frameSize is the length of the frame that starts h: all of it (whole) once h holds its header,
// else the length of as much of the header as h shows to be needed.
func frameSize(h []byte) (n int, whole bool) {
	if len(h) < 2 {
		return 2, false
	}
	hdr, size := 2, uint64(h[1]&0x7f)
	switch size {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	if h[1]&0x80 != 0 {
		hdr += 4 // masked; a server must not mask, which frame reports
	}
	if len(h) < hdr {
		return hdr, false
	}
	switch size {
	case 126:
		size = uint64(h[2])<<8 | uint64(h[3])
	case 127:
		size = 0
		for _, c := range h[2:10] {
			size = size<<8 | uint64(c)
		}
	}
	if size > maxPart {
		return maxPart + 1, true
	}
	return hdr + int(size), true
}

// frame handles one whole server frame: text and binary messages carry one event each (maybe in
// fragments), a ping is owed a pong, a close ends the stream.
func (s *stream) frame(f []byte, now int64) {
	if f[1]&0x80 != 0 || f[0]&0x70 != 0 { // masked, or RSV bits (no extension was agreed)
		s.err = errProtocol
		return
	}
	fin, op := f[0]&0x80 != 0, f[0]&0x0f
	payload := f[headerLen(f):]
	switch op {
	case 0x1, 0x2: // text, binary
		if s.inMsg {
			s.err = errProtocol
			return
		}
		if fin {
			s.message(payload, now)
			return
		}
		s.msg, s.inMsg = append(s.msg[:0], payload...), true
	case 0x0: // continuation
		if !s.inMsg || len(s.msg)+len(payload) > maxPart {
			s.err = errProtocol
			return
		}
		s.msg = append(s.msg, payload...)
		if fin {
			s.message(s.msg, now)
			s.msg, s.inMsg = s.msg[:0], false
		}
	case 0x8: // close
		s.err = errClosed
	case 0x9: // ping: a masked pong with its payload (at most 125 bytes, as every control frame)
		if len(payload) > 125 || !fin {
			s.err = errProtocol
			return
		}
		s.pong = appendMasked(s.pong, 0x8a, payload)
	case 0xa: // pong
	default:
		s.err = errProtocol
	}
}

// headerLen is the header length of a whole, unmasked frame.
func headerLen(f []byte) int {
	switch f[1] & 0x7f {
	case 126:
		return 4
	case 127:
		return 10
	}
	return 2
}

func (s *stream) message(m []byte, now int64) {
	if id, sent, ok := parseEvent(m); ok {
		s.p.record(&s.conn, id, sent, now)
	}
}

// appendMasked appends a client frame (masked, as RFC 6455 requires of clients) of at most 125
// bytes: first byte b0 (FIN and opcode), then payload.
func appendMasked(dst []byte, b0 byte, payload []byte) []byte {
	key := rand.Uint32()
	k := [4]byte{byte(key >> 24), byte(key >> 16), byte(key >> 8), byte(key)}
	dst = append(dst, b0, 0x80|byte(len(payload)), k[0], k[1], k[2], k[3])
	for i, c := range payload {
		dst = append(dst, c^k[i&3])
	}
	return dst
}
