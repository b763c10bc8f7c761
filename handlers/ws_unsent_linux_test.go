package handlers

import (
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/eventgate/eventgate/telemetry"
)

// acceptedConns hands each accepted connection to conns as well, so a test can look at the
// server's side of the socket.
type acceptedConns struct {
	net.Listener
	conns chan<- *net.TCPConn
}

func (l acceptedConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		select {
		case l.conns <- tc:
		default:
		}
	}
	return c, err
}

// outq is the bytes c's socket holds in its send queue (SIOCOUTQ, i.e. TIOCOUTQ: written by the
// server, not yet acknowledged by the client's kernel); -1 once the socket is closed.
func outq(c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	n := int32(-1)
	_ = raw.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&n)))
	})
	return int(n)
}

// TestWebSocketStalledClientUnsentBoundedAttack: a WebSocket client that reads nothing makes the
// server hold only a bounded amount for it, with the kernel's own send buffer (unlike the tests
// behind smallSendBuffers: Linux grows it up to tcp_wmem's maximum, 4 MB by default), and is
// closed as a slow consumer. The bound comes from TCP_NOTSENT_LOWAT (limitUnsent): write()
// itself, not only poll, waits while the unsent bytes are over it, so a blocked write shows the
// stall and the write timeout fires. Without it the server queued ~3 MB per such client
// (measured): 10,000 of them would hold gigabytes.
func TestWebSocketStalledClientUnsentBoundedAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{WriteTimeout: 300 * time.Millisecond})
	conns := make(chan *net.TCPConn, 1)
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = acceptedConns{ts.Listener, conns}
	ts.Start()
	t.Cleanup(ts.Close)
	bigNotes(t, log, 300, 20000) // ~6 MB: more than the largest send buffer the kernel would grow
	conn := dialSmallWindow(t, ts)
	br := rawWS(t, conn, "/api/v1/ws?since=0")
	sc := <-conns
	w := onlyConn(t, s)
	// Sample the server socket's queue until the server gives up: its peak is what the
	// server made the kernel hold for a client that takes nothing.
	peak := 0
	var reason telemetry.CloseReason
	waitUntil(t, "the server stops the connection", func() bool {
		peak = max(peak, outq(sc))
		w.mu.Lock()
		defer w.mu.Unlock()
		reason = w.reason
		return w.stopped
	})
	if reason != telemetry.CloseWriteTimeout && reason != telemetry.CloseWriteFailed {
		t.Fatalf("stopped with %q, want %q (or %q for a ping that could not be written)", reason, telemetry.CloseWriteTimeout, telemetry.CloseWriteFailed)
	}
	// Now the client reads all it was sent: the kernels' share (its 8 KiB receive buffer and
	// the server's queue), then the end. Both are bounded: 16 KiB unsent plus at most one
	// cork write (32 KiB and a frame, here 20 KiB) past it, plus the in-flight bytes the
	// client's buffer holds; 256 KiB leaves room for the kernel's skb granularity.
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	wire, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v after %d bytes", err, len(wire))
	}
	const bound = 256 << 10
	if peak > bound || len(wire) > bound {
		t.Fatalf("a client that read nothing: the server's socket queued up to %d bytes and the client then received %d, want at most %d each", peak, len(wire), bound)
	}
	t.Logf("peak send queue %d bytes; the client received %d bytes", peak, len(wire))
}
