package handlers

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// sseSink is where one stream's bytes go. Owned by the stream's writer goroutine.
type sseSink interface {
	// write sends b (whole frames) to the client; it fails when the client accepts nothing for
	// timeout, however long a client that keeps reading takes (progress.go).
	write(b []byte, timeout time.Duration) error
	// onGone arranges for f to run, on a goroutine of its own, once the client has disconnected
	// (at once if it has); stop cancels that.
	onGone(f func()) (stop func())
	// close ends the response.
	close()
	// cutAt makes writes fail from t on, even a long one in progress (nil stop: not supported);
	// cut reports whether that happened.
	cutAt(t time.Time) (stop func())
	cut() bool
}

// hijackedSink streams on the TCP connection taken over from net/http. Once the handler returns,
// net/http's goroutine and its read and write buffers (about 10 KB) are released, so an idle
// stream costs only its own two small goroutines. The response is delimited by the connection's
// close (HTTP/1.1 "Connection: close"), which every SSE client and proxy handles.
type hijackedSink struct {
	conn net.Conn
	pc   *progressConn
	// gone ends when the client has disconnected (goneNow, by the connection's reader) or the
	// server ends its streams.
	gone    context.Context
	goneNow context.CancelFunc
}

// hijack takes the connection over and writes the response head and the first bytes. It returns
// false, having written nothing, when the connection cannot be taken over (HTTP/2, test
// recorders): then the ResponseWriter serves the stream.
func hijack(c *gin.Context, first []byte, abort context.Context) (*hijackedSink, bool) {
	u, ok := c.Writer.(interface{ Unwrap() http.ResponseWriter })
	if !ok || c.Request.ProtoMajor != 1 {
		return nil, false
	}
	if _, ok := u.Unwrap().(http.Hijacker); !ok {
		return nil, false
	}
	conn, _, err := c.Writer.Hijack() // through gin's writer, so gin knows not to write a header

	if err != nil {
		return nil, false
	}
	limitUnsent(conn)
	pc := &progressConn{Conn: conn}
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	h := c.Writer.Header().Clone()
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	_ = h.Write(&head)
	head.WriteString("\r\n")
	head.Write(first)
	s := &hijackedSink{conn: pc, pc: pc}
	s.gone, s.goneNow = context.WithCancel(abort) // the server ending its streams ends this one too
	// A client sends nothing on a stream; a read returns only when it leaves (or sends garbage).
	go func() {
		var b [1]byte
		for {
			if _, err := conn.Read(b[:]); err != nil {
				s.goneNow()
				return
			}
		}
	}()
	if err := s.write(head.Bytes(), 10*time.Second); err != nil {
		s.close()
	}
	return s, true
}

func (s *hijackedSink) write(b []byte, timeout time.Duration) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := s.conn.Write(b) // a progressConn: the timeout bounds time without progress
	return err
}

// onGone also closes the socket, so that a write in progress ends at once: the client has left,
// or the server ends its streams (CloseStreams).
func (s *hijackedSink) onGone(f func()) func() {
	return afterFunc(s.gone, func() { _ = s.conn.Close(); f() })
}
func (s *hijackedSink) close()    { _ = s.conn.Close() }
func (s *hijackedSink) cut() bool { return s.pc.cut.Load() }

// afterFunc is context.AfterFunc with a stop that returns nothing.
func afterFunc(ctx context.Context, f func()) func() {
	stop := context.AfterFunc(ctx, f)
	return func() { stop() }
}

func (s *hijackedSink) cutAt(t time.Time) func() {
	timer := time.AfterFunc(time.Until(t), s.pc.Cut)
	return func() { timer.Stop() }
}

// writerSink streams through the ResponseWriter, with a deadline per write (never one for the
// whole response, which would kill streams).
type writerSink struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	ctx context.Context
}

func newWriterSink(c *gin.Context, first []byte) *writerSink {
	s := &writerSink{w: c.Writer, rc: http.NewResponseController(c.Writer), ctx: c.Request.Context()}
	c.Writer.WriteHeader(http.StatusOK)
	_ = s.write(first, 10*time.Second)
	return s
}

// writerChunk is what a client served through the ResponseWriter must take per write timeout.
const writerChunk = 16 << 10

// write sends b a chunk at a time, each flushed under a fresh deadline: a partial write is not
// visible through a ResponseWriter, so a chunk is the unit of progress there.
func (s *writerSink) write(b []byte, timeout time.Duration) error {
	for len(b) > 0 {
		n := min(len(b), writerChunk)
		_ = s.rc.SetWriteDeadline(time.Now().Add(timeout))
		if _, err := s.w.Write(b[:n]); err != nil {
			return err
		}
		if err := s.rc.Flush(); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func (s *writerSink) onGone(f func()) func() { return afterFunc(s.ctx, f) }
func (s *writerSink) close()                 {}
func (s *writerSink) cut() bool              { return false }
func (s *writerSink) cutAt(time.Time) func() { return func() {} } // chunks bound each write

// frameBuffers holds frame buffers between wake-ups, so an idle stream holds none.
var frameBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}
