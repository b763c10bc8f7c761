package handlers

import (
	"encoding/binary"
	"net"

	"github.com/eventgate/eventgate/event"
)

// corkConn sits between gorilla and a WebSocket's progressConn so that the frames of one delivery
// leave in one write, framed once each: gorilla writes every message with a write of its own,
// behind its write lock, a pooled buffer and an allocation, which made a WebSocket delivery cost
// well above an SSE one under load (docs/architecture.md#websocket-connections).
//
// The writer names the rest of a batch (Follow) and writes its first event through gorilla. When
// that frame reaches Write — under gorilla's write lock, which gorilla holds for the whole frame —
// corkConn frames the rest itself after it, and writes them all in one write. Nothing can come
// between them, not even a close from another goroutine; and if the write fails, gorilla sees
// the failure and writes nothing more. Control frames and data frames without a batch pass
// through. Every field but tail is used only under gorilla's lock; tail only by the writer, since
// only the writer writes data frames.
type corkConn struct {
	net.Conn
	// raw is the socket under the progressConn: reads go to it directly, one call deep, because
	// an idle connection's reader parks in Read and one more frame there grows some readers'
	// stacks past the minimum 2 KiB (350 bytes more per idle connection, measured).
	raw  net.Conn
	tail []*event.Event // to follow the writer's next data frame (Follow)
	// buf holds the batch while its first frame arrives: gorilla writes a frame larger than its
	// buffer in two writes. rest is what is still to come of that frame. nil when nothing
	// waits, so an idle connection holds no buffer.
	buf  *[]byte
	rest int
}

// Read reads from the socket itself (see raw).
func (c *corkConn) Read(b []byte) (int, error) { return c.raw.Read(b) }

// Follow makes the events of tail follow the next data frame, in the same write. Writer only;
// Follow(nil) after that frame's write returns, so that a failed write leaves nothing pinned.
func (c *corkConn) Follow(tail []*event.Event) { c.tail = tail }

// Pending reports whether the tail named by Follow is still unwritten after the frame's write
// returned: the frame was not one corkConn batches. Writer only.
func (c *corkConn) Pending() bool { return len(c.tail) > 0 }

// corkMaxHeld is about the most a batch's write holds (the writer splits longer batches; a
// single larger frame is written alone).
const corkMaxHeld = 32 << 10

func (c *corkConn) Write(b []byte) (int, error) {
	if c.buf != nil { // the rest of the batch's first frame
		return c.append(b)
	}
	// An opcode of 8 or more is a control frame (RFC 6455 §5.2), written by any goroutine; data
	// frames come from the writer alone, so only then is tail read. Only a whole text message in
	// one frame (FIN, no compression) takes the tail; after any other, the writer finds the tail
	// still pending and writes it one message at a time.
	if len(b) < 2 || b[0]&0x08 != 0 || len(c.tail) == 0 || b[0] != 0x81 {
		return c.Conn.Write(b)
	}
	size, ok := frameSize(b)
	if !ok {
		return c.Conn.Write(b)
	}
	c.buf, c.rest = frameBuffers.Get().(*[]byte), size
	return c.append(b)
}

// append adds b, part of the batch's first frame, and once the frame is whole frames the tail
// after it and writes everything.
func (c *corkConn) append(b []byte) (int, error) {
	*c.buf = append(*c.buf, b...)
	if c.rest -= len(b); c.rest > 0 {
		return len(b), nil
	}
	for _, e := range c.tail {
		*c.buf = appendTextFrame(*c.buf, wsFrame(e))
	}
	c.tail = nil
	bp := c.buf
	c.buf = nil
	_, err := c.Conn.Write(*bp)
	*bp = (*bp)[:0]
	if cap(*bp) <= 64<<10 {
		frameBuffers.Put(bp)
	}
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// frameSize is the length of the unmasked frame whose header starts b, if b holds the header.
func frameSize(b []byte) (int, bool) {
	if b[1]&0x80 != 0 { // masked: a client's frame, never ours
		return 0, false
	}
	switch n := int(b[1] & 0x7f); {
	case n < 126:
		return 2 + n, true
	case n == 126 && len(b) >= 4:
		return 4 + int(binary.BigEndian.Uint16(b[2:])), true
	case n == 127 && len(b) >= 10:
		return 10 + int(binary.BigEndian.Uint64(b[2:])), true
	}
	return 0, false
}

// appendTextFrame appends a final, unmasked text frame carrying p: a server's frame (RFC 6455
// §5.2), as gorilla writes it without compression.
func appendTextFrame(b, p []byte) []byte {
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x81, byte(n))
	case n <= 0xffff:
		b = append(b, 0x81, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x81, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}
