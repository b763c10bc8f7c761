package handlers

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"
)

// unsentLowWater caps the bytes a stream socket holds unsent, so the write timeout judges a
// client's progress rather than the kernel's buffering (docs/architecture.md#slow-clients).
const unsentLowWater = 16 << 10

// progressConn is a stream connection whose writes fail only when no byte is accepted for the
// length of the last write deadline set. Writes and SetWriteDeadline must not run concurrently
// (one writer: the SSE pump, or gorilla under its write lock); the rest is net.Conn's.
type progressConn struct {
	net.Conn
	deadline time.Time
	window   time.Duration // the length the deadline was set to
	cut      atomic.Bool   // set by Cut: writes are no longer extended
}

// Cut makes a write in progress, and every later one, fail at once with os.ErrDeadlineExceeded
// however well the client reads: for a stream whose token expired while a long write ran. Safe
// from any goroutine.
func (c *progressConn) Cut() {
	c.cut.Store(true)
	_ = c.Conn.SetWriteDeadline(time.Now())
}

func (c *progressConn) SetWriteDeadline(t time.Time) error {
	if c.cut.Load() {
		t = time.Now()
	}
	c.deadline, c.window = t, time.Until(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *progressConn) Write(b []byte) (int, error) {
	done := 0
	for {
		n, err := c.Conn.Write(b[done:])
		done += n
		if err == nil || n == 0 || c.window <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) || c.cut.Load() {
			return done, err
		}
		// Progress in this window: the client reads, slowly. A new window from now.
		c.deadline = time.Now().Add(c.window)
		_ = c.Conn.SetWriteDeadline(c.deadline)
	}
}

// progressHijacker hands gorilla's Upgrade the connection as a progressConn, with the unsent
// bytes limited, so that WebSocket writes judge progress as SSE's do.
type progressHijacker struct{ http.ResponseWriter }

func (h progressHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("the response cannot be hijacked")
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	limitUnsent(conn)
	return &progressConn{Conn: conn}, brw, nil
}
