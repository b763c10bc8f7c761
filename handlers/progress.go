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
//
// The socket's own deadline is re-armed lazily: resetting it costs a runtime timer update, and
// the writers set a fresh deadline before every write (at 10,000 subscribers, that was the
// largest cost after the write itself). An armed deadline that is no later than the one asked
// for and still at least armSlack of the window away is kept; if it fires first, Write re-arms
// it to the deadline asked for and carries on, so a write still fails exactly when asked.
type progressConn struct {
	net.Conn
	asked    time.Time     // the last deadline passed to SetWriteDeadline
	deadline time.Time     // the deadline asked for, extended by Write while the client reads
	window   time.Duration // the length the deadline was set to
	armed    time.Time     // the deadline set on Conn: zero (none) or never later than deadline
	cut      atomic.Bool   // set by Cut: writes are no longer extended
	// moved: a write completed since the window began, so the client read in it. Writes that share
	// a deadline (the frames of a batch) each start with less than a window left; one that then
	// waits out the deadline has not seen the client stall for a window (see Write).
	moved bool
}

// armSlack is the part of a window an armed deadline must still have ahead to be kept: at
// most about one re-arm per quarter window, and at most one early firing per write.
const armSlack = 4 // a quarter

// Cut makes a write in progress, and every later one, fail at once with os.ErrDeadlineExceeded
// however well the client reads: for a stream whose token expired while a long write ran. Safe
// from any goroutine.
func (c *progressConn) Cut() {
	c.cut.Store(true)
	_ = c.Conn.SetWriteDeadline(time.Now())
}

func (c *progressConn) SetWriteDeadline(t time.Time) error {
	if t == c.asked && !t.IsZero() && !c.cut.Load() {
		// The frames of one batch share a deadline: the window set by the first one stands,
		// extended by Write while the client reads; not even the clock need be read.
		return nil
	}
	c.asked = t
	c.moved = false
	now := time.Now()
	if c.cut.Load() {
		t = now
	}
	c.deadline, c.window = t, t.Sub(now)
	if !t.IsZero() && c.window > 0 && !c.armed.IsZero() && !t.Before(c.armed) &&
		c.armed.Sub(now) >= c.window-c.window/armSlack {
		return nil // the armed deadline is early enough and not too early: Write extends it
	}
	c.armed = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *progressConn) Write(b []byte) (int, error) {
	done := 0
	for {
		n, err := c.Conn.Write(b[done:])
		done += n
		if err == nil && done > 0 {
			c.moved = true
		}
		if err == nil || c.cut.Load() || !errors.Is(err, os.ErrDeadlineExceeded) {
			return done, err
		}
		switch now := time.Now(); {
		case n > 0 && c.window > 0:
			// Progress in this window: the client reads, slowly. A new window from now.
			c.deadline = now.Add(c.window)
			c.moved = false
		case c.armed.Before(c.deadline) && now.Before(c.deadline):
			// The armed deadline was an earlier one kept by SetWriteDeadline: not the one asked for.
		case c.moved && c.window > 0:
			// An earlier write under this deadline completed in this window: the client read in
			// it, and this write started with less than a window left. A new window from now.
			c.deadline = now.Add(c.window)
			c.moved = false
		default:
			return done, err
		}
		c.armed = c.deadline
		_ = c.Conn.SetWriteDeadline(c.deadline)
	}
}

// progressHijacker hands gorilla's Upgrade the connection as a progressConn, with the unsent
// bytes limited, so that WebSocket writes judge progress as SSE's do, under a corkConn, so that
// a batch of frames leaves in one write.
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
	return &corkConn{Conn: &progressConn{Conn: conn}, raw: conn}, brw, nil
}
