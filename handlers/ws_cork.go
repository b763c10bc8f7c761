package handlers

import (
	"encoding/binary"
	"net"
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
// never interleaves with a control frame, and nothing is written after a close frame.
type corkConn struct {
	net.Conn
	// raw is the socket under the progressConn: reads go to it directly, one call deep, because
	// an idle connection's reader parks in Read and one more frame there grows some readers'
	// stacks past the minimum 2 KiB (350 bytes more per idle connection, measured).
	raw       net.Conn
	mu        sync.Mutex
	closeSent bool // a close frame went out: no data after it (RFC 6455 §5.5.1)
}

// Read reads from the socket itself (see raw).
func (c *corkConn) Read(b []byte) (int, error) { return c.raw.Read(b) }

// closeFrameHead is the first byte of a close frame: FIN and opcode 8 (gorilla sends control
// frames whole, in one Write).
const closeFrameHead = 0x80 | websocket.CloseMessage

// Write is gorilla's: the handshake and control frames.
func (c *corkConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(b) > 0 && b[0] == closeFrameHead {
		c.closeSent = true
	}
	return c.Conn.Write(b)
}

// SetWriteDeadline is gorilla's, before each of its writes.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// writeText writes frames (appendTextFrame) in one write under deadline, unless a close frame
// went out before (websocket.ErrCloseSent).
func (c *corkConn) writeText(frames []byte, deadline time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return websocket.ErrCloseSent
	}
	_ = c.Conn.SetWriteDeadline(deadline)
	_, err := c.Conn.Write(frames)
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
