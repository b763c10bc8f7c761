package handlers

import (
	"net"
	"sync/atomic"
)

// corkConn sits between gorilla and a WebSocket's progressConn so that the frames of one delivery
// leave in one write: gorilla writes each message with a write of its own, which made a
// WebSocket delivery cost several times an SSE one under load, where SSE writes every pending
// frame at once (docs/architecture.md#websocket-connections).
//
// While held (Hold(true), by the connection's writer), data frames are appended to a buffer;
// the first write after Hold(false), and any control frame (a ping, a pong, or a close written by
// another goroutine), goes out with everything buffered before it, in order. gorilla calls Write
// only under its own write lock, so buf needs no lock of its own; held is atomic because Hold is
// called outside that lock.
type corkConn struct {
	net.Conn
	// raw is the socket under the progressConn: reads go to it directly, one call deep, because
	// an idle connection's reader parks in Read and one more frame there grows some readers'
	// stacks past the minimum 2 KiB (350 bytes more per idle connection, measured).
	raw  net.Conn
	held atomic.Bool
	buf  *[]byte // from frameBuffers while frames wait; nil when none do, so idle costs nothing
}

// Read reads from the socket itself (see raw).
func (c *corkConn) Read(b []byte) (int, error) { return c.raw.Read(b) }

// Hold starts (true) or ends (false) buffering data frames. Writer goroutine only.
func (c *corkConn) Hold(on bool) { c.held.Store(on) }

// corkMaxHeld is the most a corkConn buffers before it writes anyway.
const corkMaxHeld = 32 << 10

func (c *corkConn) Write(b []byte) (int, error) {
	if c.held.Load() && len(b) > 0 && b[0]&0x08 == 0 { // an opcode below 8: a data frame (RFC 6455 §5.2)
		if c.buf == nil {
			c.buf = frameBuffers.Get().(*[]byte)
		}
		*c.buf = append(*c.buf, b...)
		if len(*c.buf) < corkMaxHeld {
			return len(b), nil
		}
		return len(b), c.flush(nil)
	}
	if c.buf == nil {
		return c.Conn.Write(b)
	}
	if err := c.flush(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

// flush writes the buffered frames and then b, in one write, and lets the buffer go.
func (c *corkConn) flush(b []byte) error {
	bp := c.buf
	c.buf = nil
	*bp = append(*bp, b...)
	_, err := c.Conn.Write(*bp)
	*bp = (*bp)[:0]
	if cap(*bp) <= 64<<10 {
		frameBuffers.Put(bp)
	}
	return err
}
