package handlers

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// corkConn sits between gorilla and a WebSocket's progressConn. The connection's writer frames
// its data messages itself and writes a whole batch of them in one write (writeText): through
// gorilla, each message cost a call chain deep enough to grow the writer's stack, and a write of
// its own — several times an SSE delivery under load, where SSE writes every pending frame at
// once (docs/architecture.md#websocket-connections). gorilla still writes the control frames
// (pings, pongs, the close) and the handshake, through Write.
//
// mu orders the writer's frames with gorilla's writes, which may come from other goroutines (a
// close from the heartbeat or the drain) and hold only gorilla's own lock. A batch therefore
// never interleaves with a control frame, nothing is written after a close frame, and the
// progressConn is only ever used under mu.
type corkConn struct {
	net.Conn
	// raw is the socket under the progressConn: reads go to it directly, one call deep, because
	// an idle connection's reader parks in Read and one more frame there grows some readers'
	// stacks past the minimum 2 KiB (350 bytes more per idle connection, measured).
	raw       net.Conn
	mu        sync.Mutex
	closeSent bool      // a close frame went out: no data after it (RFC 6455 §5.5.1)
	cut       bool      // a failed batch left a frame unfinished: nothing may follow it
	deadline  time.Time // gorilla's, for its next Write
}

// Read reads from the socket itself (see raw).
func (c *corkConn) Read(b []byte) (int, error) { return c.raw.Read(b) }

// closeFrameHead is the first byte of a close frame: FIN and opcode 8 (gorilla sends control
// frames whole, in one Write).
const closeFrameHead = 0x80 | websocket.CloseMessage

// Write is gorilla's: the handshake and control frames, under the deadline gorilla set before it.
// It waits for a batch in progress no longer than that deadline, as gorilla's own lock made a
// close from another goroutine wait (stop: 1 s); then it fails, and the socket is closed
// without the close frame, which cannot follow part of a batch.
func (c *corkConn) Write(b []byte) (int, error) {
	if !c.lockBy(c.deadline) {
		return 0, os.ErrDeadlineExceeded
	}
	defer c.mu.Unlock()
	if c.cut {
		return 0, errFrameCut
	}
	if len(b) > 0 && b[0] == closeFrameHead {
		c.closeSent = true
	}
	_ = c.Conn.SetWriteDeadline(c.deadline)
	return c.Conn.Write(b)
}

// SetWriteDeadline is gorilla's, before each of its writes (under gorilla's lock): Write applies
// it.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	c.deadline = t
	return nil
}

// lockBy takes mu, waiting no later than deadline (zero: no limit). Only gorilla's writes wait
// here, and only while a batch is being written (a close from another goroutine), so a short
// backing-off poll serves: mu stays one word per connection.
func (c *corkConn) lockBy(deadline time.Time) bool {
	for wait := 100 * time.Microsecond; !c.mu.TryLock(); wait = min(2*wait, 10*time.Millisecond) {
		if !deadline.IsZero() && time.Until(deadline) < wait {
			return false
		}
		time.Sleep(wait)
	}
	return true
}

// errFrameCut: a write after a failed batch that left a frame unfinished on the wire.
var errFrameCut = errors.New("websocket: a frame was left unfinished")

// writeText writes frames (appendTextFrame) in one write under deadline, unless a close frame
// went out before (websocket.ErrCloseSent). A write that fails part-way leaves a frame
// unfinished: nothing is written after it, not even the close, which the client would read as
// the rest of that frame (as gorilla stopped writing after a failed write).
func (c *corkConn) writeText(frames []byte, deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cut {
		return errFrameCut
	}
	if c.closeSent {
		return websocket.ErrCloseSent
	}
	_ = c.Conn.SetWriteDeadline(deadline)
	n, err := c.Conn.Write(frames)
	if err != nil && n > 0 {
		c.cut = true
	}
	return err
}

// corkMaxHeld is the most of a batch framed before it is written.
const corkMaxHeld = 32 << 10

// appendTextFrame appends a final, unmasked (server-to-client) text frame carrying p to b
// (RFC 6455 §5.2).
func appendTextFrame(b, p []byte) []byte {
	b = append(b, 0x80|websocket.TextMessage)
	switch n := len(p); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, p...)
}
