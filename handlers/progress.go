package handlers

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"os"
	"time"
)

// The write timeout (EVENTGATE_WRITE_TIMEOUT) judges a client's progress — bytes it accepted —
// not whether one large write completed: a client that keeps reading through a long catch-up is
// never cut, one that reads nothing for the timeout is. Two things make progress visible:
//
//   - progressConn continues a write that its deadline cut short after some bytes were accepted,
//     under a fresh deadline of the same length: a deadline bounds time without progress, not
//     the time a batch of events or a large message takes.
//   - The socket keeps at most unsentLowWater bytes not yet sent (limitUnsent). Without that, the
//     kernel grows a stream's send buffer to megabytes and wakes a blocked writer only once a
//     third of it has drained: a client reading 50 KB/s steadily looked idle for tens of seconds.
//
// So a client that reads nothing is cut after one to two timeouts, and one that keeps reading at
// least about unsentLowWater/2 bytes per timeout never is.
const unsentLowWater = 16 << 10

// progressConn is a stream connection whose writes fail only when no byte is accepted for the
// length of the last write deadline set. Writes and SetWriteDeadline must not run concurrently
// (one writer: the SSE pump, or gorilla under its write lock); the rest is net.Conn's.
type progressConn struct {
	net.Conn
	deadline time.Time
	window   time.Duration // the length the deadline was set to
}

func (c *progressConn) SetWriteDeadline(t time.Time) error {
	c.deadline, c.window = t, time.Until(t)
	return c.Conn.SetWriteDeadline(t)
}

func (c *progressConn) Write(b []byte) (int, error) {
	done := 0
	for {
		n, err := c.Conn.Write(b[done:])
		done += n
		if err == nil || n == 0 || c.window <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
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
