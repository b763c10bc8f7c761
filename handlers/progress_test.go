package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/telemetry"
)

// slowTimeout is the write timeout of the slow-reader tests: a catch-up takes many times longer.
const slowTimeout = 300 * time.Millisecond

// sendBuffers fixes the send buffer of every accepted connection at 256 KiB (the kernel doubles
// the figure set), as a busy host's might be, so that a catch-up outgrows the kernel's buffers
// within a test's time: without it the buffer grows to megabytes.
type sendBuffers struct{ net.Listener }

func (l sendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(128 << 10)
	}
	return c, err
}

// pacedConn is a client that reads steadily but slowly: at most 2 KiB every 10 ms (≤ 200 KB/s),
// through a small receive window (smallWindow). The sleep paces reading; it synchronises nothing.
type pacedConn struct{ net.Conn }

func (c pacedConn) Read(b []byte) (int, error) {
	time.Sleep(10 * time.Millisecond)
	return c.Conn.Read(b[:min(len(b), 2<<10)])
}

func dialPaced(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := smallWindow.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return pacedConn{c}, nil
}

func startSlow(t *testing.T) (*Server, *store.Memory, *httptest.Server) {
	t.Helper()
	s, log := newTestServer(t, Config{WriteTimeout: slowTimeout})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = sendBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close)
	return s, log, ts
}

// bigNotes appends n note events of about size bytes each, straight to the log (larger than
// the catalogue allows a title to be: an operator's catalogue may allow large events).
func bigNotes(t *testing.T, log *store.Memory, n, size int) []event.ID {
	t.Helper()
	var ids []event.ID
	for range n {
		data, _ := json.Marshal(map[string]string{"note_id": jobID, "title": strings.Repeat("x", size)})
		got, err := log.Append(context.Background(), []event.Draft{{Type: "note.created", Topic: "notes/" + jobID, Data: data}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	return ids
}

var noteTitle = `{"note_id":"` + jobID + `","title":"%d` + strings.Repeat("x", 480) + `"}` // about 650 bytes an event

// TestSlowSteadyReaderStays: a client that reads slowly but steadily through a catch-up far
// larger than the kernel's buffers, lasting many write timeouts, is not cut: the write timeout
// judges progress, not how long one large write takes (SSE: a batch of 256 events; WebSocket:
// a large message).
func TestSlowSteadyReaderStays(t *testing.T) {
	t.Parallel()
	t.Run("sse", func(t *testing.T) {
		t.Parallel()
		s, log, ts := startSlow(t)
		ids := publishN(t, log, 600, "note.created", noteTitle) // ~400 KB
		conn, err := dialPaced(context.Background(), "tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := fmt.Fprint(conn, "GET /api/v1/stream?since=0 HTTP/1.1\r\nHost: eventgate\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for n < len(ids) && sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				if v != ids[n].String() {
					t.Fatalf("event %d: id %s, want %s", n, v, ids[n])
				}
				n++
			}
		}
		took := time.Since(start)
		if n < len(ids) {
			t.Fatalf("cut after %d of %d events, %v into the catch-up (write timeout %v): %v", n, len(ids), took, slowTimeout, sc.Err())
		}
		if took < 3*slowTimeout || s.Active() != 1 {
			t.Fatalf("catch-up took %v with %d connections open; want many write timeouts (%v), still connected", took, s.Active(), slowTimeout)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		s, log, ts := startSlow(t)
		ids := bigNotes(t, log, 6, 100<<10) // each message takes the client half a second
		d := websocket.Dialer{NetDialContext: dialPaced}
		conn, _, err := d.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/api/v1/ws?since=0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		if m := readJSON(t, conn); m["type"] != "subscribed" {
			t.Fatalf("first frame %v", m)
		}
		for i, id := range ids {
			_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			_, msg, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("cut after %d of %d events, %v into the catch-up (write timeout %v): %v", i, len(ids), time.Since(start), slowTimeout, err)
			}
			if !strings.Contains(string(msg[:min(len(msg), 100)]), id.String()) {
				t.Fatalf("event %d: %.100s, want %s", i, msg, id)
			}
		}
		took := time.Since(start)
		if err := conn.WriteJSON(map[string]string{"action": "ping"}); err != nil {
			t.Fatal(err)
		}
		if m := readJSON(t, conn); m["type"] != "pong" || took < 3*slowTimeout || s.Active() != 1 {
			t.Fatalf("after a %v catch-up: %v with %d connections open; want many write timeouts (%v), still connected", took, m, s.Active(), slowTimeout)
		}
	})
}

// TestSilentReaderIsCut: a client that reads nothing is disconnected once the kernel's buffers
// are full and the write timeout passes without progress, as write_timeout.
func TestSilentReaderIsCut(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{string(telemetry.SSE), string(telemetry.WebSocket)} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			s, log, ts := startSlow(t)
			bigNotes(t, log, 8, 100<<10) // more than the buffers on both sides hold
			conn, err := smallWindow.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := "GET /api/v1/stream?since=0 HTTP/1.1\r\nHost: eventgate\r\n\r\n"
			if transport == string(telemetry.WebSocket) {
				req = "GET /api/v1/ws?since=0 HTTP/1.1\r\nHost: eventgate\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
					"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
			}
			if _, err := fmt.Fprint(conn, req); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the stream is open", func() bool { return s.Active() == 1 })
			waitUntil(t, "the silent client is cut", func() bool { return s.Active() == 0 })
			if v := metricValue(t, s.metrics, "eventgate_connections_closed_total", "transport", transport, "reason", string(telemetry.CloseWriteTimeout)); v != 1 {
				t.Fatalf("closed as write_timeout: %v, want 1", v)
			}
		})
	}
}

// stepConn accepts, per Write, the next count of bytes and then times out (-1: the whole
// write); it records the size of each write and counts the deadlines set.
type stepConn struct {
	net.Conn
	accepts   []int
	sizes     []int
	deadlines int
}

func (c *stepConn) SetWriteDeadline(time.Time) error { c.deadlines++; return nil }

func (c *stepConn) Write(b []byte) (int, error) {
	c.sizes = append(c.sizes, len(b))
	if len(c.accepts) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := c.accepts[0]
	c.accepts = c.accepts[1:]
	if n < 0 || n >= len(b) {
		return len(b), nil
	}
	return n, fmt.Errorf("write tcp: %w", os.ErrDeadlineExceeded)
}

// TestProgressConn: a write cut by its deadline after some bytes were accepted continues under a
// fresh deadline; one in whose window no byte was accepted fails with what it wrote.
func TestProgressConn(t *testing.T) {
	t.Parallel()
	const size = 1000
	tests := []struct {
		name      string
		deadline  time.Duration // 0: none
		accepts   []int
		wrote     int
		fail      bool
		sizes     []int
		deadlines int
	}{
		{"all at once", time.Second, []int{-1}, size, false, []int{size}, 1},
		{"a trickle", time.Second, []int{10, 5, 1, -1}, size, false, []int{size, size - 10, size - 15, size - 16}, 4},
		{"stalls", time.Second, []int{10}, 10, true, []int{size, size - 10}, 2},
		{"no deadline set", 0, []int{10}, 10, true, []int{size}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sc := &stepConn{accepts: tt.accepts}
			c := &progressConn{Conn: sc}
			var d time.Time
			if tt.deadline > 0 {
				d = time.Now().Add(tt.deadline)
			}
			_ = c.SetWriteDeadline(d)
			n, err := c.Write(make([]byte, size))
			if n != tt.wrote || (err != nil) != tt.fail || tt.fail && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("wrote %d, err %v; want %d, failure %v", n, err, tt.wrote, tt.fail)
			}
			if !slices.Equal(sc.sizes, tt.sizes) || sc.deadlines != tt.deadlines {
				t.Fatalf("writes %v under %d deadlines, want %v under %d", sc.sizes, sc.deadlines, tt.sizes, tt.deadlines)
			}
		})
	}
}

// TestTokenExpiryCutsLongWrite: a slow but steady reader inside one long write (a catch-up page of
// large events) does not keep receiving events long past its token's expiry: the write is cut a
// write timeout after exp, and the connection is closed as auth_expired.
func TestTokenExpiryCutsLongWrite(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{WriteTimeout: slowTimeout, Auth: mustVerifier(t, auth.Config{Secret: testSecret})})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = sendBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close)
	ids := bigNotes(t, log, 30, 100<<10) // one page of 3 MB: 15 s for this client
	claims := claimsFor("slow", "subscribe")
	claims["exp"] = time.Now().Add(2 * time.Second).Unix()
	conn, err := dialPaced(context.Background(), "tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /api/v1/stream?since=0 HTTP/1.1\r\nHost: eventgate\r\nAuthorization: Bearer %s\r\n\r\n", hsToken(t, claims)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "id: ") {
			n++
		}
	}
	if n >= len(ids) {
		t.Fatalf("the client received all %d events of a page it took past its token's expiry", n)
	}
	waitUntil(t, "the stream is closed", func() bool { return s.Active() == 0 })
	if v := metricValue(t, s.metrics, "eventgate_connections_closed_total", "transport", string(telemetry.SSE), "reason", string(telemetry.CloseAuthExpired)); v != 1 {
		t.Fatalf("closed as auth_expired: %v, want 1", v)
	}
}
