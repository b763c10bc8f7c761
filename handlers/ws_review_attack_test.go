package handlers

import (
	"encoding/binary"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// afterClose is what a hostile client does once it has read the server's close frame: it never
// answers with its own, and keeps the connection busy in some way. The sleeps pace the client;
// they synchronise nothing.
var afterClose = []struct {
	name string
	act  func(conn net.Conn, stop <-chan struct{}) bool // true: a write failed (the server closed the socket)
}{
	{"silent", func(net.Conn, <-chan struct{}) bool { return false }},
	{"flood of messages", func(conn net.Conn, stop <-chan struct{}) bool {
		frame := maskedFrame(websocket.TextMessage, []byte("x"))
		frames := []byte(strings.Repeat(string(frame), 256))
		for !stopped(stop) {
			_ = conn.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := conn.Write(frames); err != nil {
				return true
			}
		}
		return false
	}},
	{"trickled frame", func(conn net.Conn, stop <-chan struct{}) bool {
		frame := clientFrame(websocket.TextMessage, true, make([]byte, 60<<10))
		for i := 0; i < len(frame) && !stopped(stop); i++ {
			if _, err := conn.Write(frame[i : i+1]); err != nil {
				return true
			}
			time.Sleep(5 * time.Millisecond) // a byte every 5 ms: the frame takes minutes
		}
		return false
	}},
	{"endless fragments", func(conn net.Conn, stop <-chan struct{}) bool {
		if _, err := conn.Write(clientFrame(websocket.TextMessage, false, []byte("{"))); err != nil {
			return true
		}
		for !stopped(stop) {
			if _, err := conn.Write(clientFrame(0, false, []byte("        "))); err != nil {
				return true
			}
			time.Sleep(time.Millisecond) // 8 KB a second: under the read limit for a long while
		}
		return false
	}},
	{"pings", func(conn net.Conn, stop <-chan struct{}) bool {
		for !stopped(stop) {
			if _, err := conn.Write(maskedFrame(websocket.PingMessage, []byte("p"))); err != nil {
				return true
			}
			time.Sleep(time.Millisecond) // paces the pings
		}
		return false
	}},
	{"oversized, for ever", func(conn net.Conn, stop <-chan struct{}) bool {
		head := binary.BigEndian.AppendUint64([]byte{0x80 | websocket.TextMessage, 0x80 | 127}, 1<<30)
		if _, err := conn.Write(append(head, 1, 2, 3, 4)); err != nil { // a GiB announced, masked
			return true
		}
		chunk := make([]byte, 1<<10)
		for !stopped(stop) {
			if _, err := conn.Write(chunk); err != nil {
				return true
			}
			time.Sleep(time.Millisecond) // 1 MB a second, for ever
		}
		return false
	}},
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

// TestWebSocketHostileAfterCloseReview: clients that, once they have the server's close frame
// (a drain), never answer it and keep their connections busy — silent, flooding messages,
// trickling a frame that never ends, sending fragments or pings forever, sending an oversized
// message slowly — and one that reads nothing at all, are each cut within wsCloseWait of the
// close (plus the close frame's own second at most): the TCP connection ends, and the slot, the
// subscription, the registry entry and every goroutine are released. Not parallel: it counts
// goroutines.
func TestWebSocketHostileAfterCloseReview(t *testing.T) {
	s, _ := newTestServer(t, Config{Heartbeat: time.Hour, MaxConnectionsPerIP: 100})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	const each = 3
	base := runtime.NumGoroutine()
	stop := make(chan struct{})
	var clients sync.WaitGroup
	end := sync.OnceFunc(func() { close(stop) })
	defer clients.Wait()
	defer end()
	var mu sync.Mutex
	ended := map[string][]time.Time{} // when each acting client saw the server close its socket
	var conns []net.Conn
	for _, h := range afterClose {
		for range each {
			conn, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conns = append(conns, conn)
			br := rawWS(t, conn, "/api/v1/ws")
			clients.Go(func() {
				_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				for {
					f, err := readRawFrame(br)
					if err != nil {
						t.Errorf("%s: before the close frame: %v", h.name, err)
						return
					}
					if f.op == websocket.CloseMessage {
						break
					}
				}
				// The server shuts its side after the close frame: the stream ends, no reset.
				if _, err := io.Copy(io.Discard, br); err != nil {
					t.Errorf("%s: after the close frame: %v, want the end of the stream", h.name, err)
				}
				if h.act(conn, stop) { // until a write fails: the server has closed the socket
					mu.Lock()
					ended[h.name] = append(ended[h.name], time.Now())
					mu.Unlock()
				}
			})
		}
	}
	deaf := dialSmallWindow(t, ts)
	rawWS(t, deaf, "/api/v1/ws") // and reads nothing more
	total := len(afterClose)*each + 1
	waitUntil(t, "every connection is registered", func() bool { return len(serverConns(s)) == total })

	drained := time.Now()
	s.Drain()
	waitUntil(t, "every connection is released", func() bool {
		return len(serverConns(s)) == 0 && s.Active() == 0 && s.hub.Len() == 0
	})
	took := time.Since(drained)
	t.Logf("released %d connections %v after the drain", total, took)
	// The close frame may take up to a second to write, then the client has wsCloseWait to answer.
	limit := 2*wsCloseWait + 500*time.Millisecond
	if took > limit {
		t.Errorf("released %v after the drain; want within %v", took, limit)
	}
	waitUntil(t, "every client has seen its connection end", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ts := range ended {
			n += len(ts)
		}
		return n == (len(afterClose)-1)*each // all but the silent ones
	})
	for name, ts := range ended {
		for _, at := range ts {
			if at.Sub(drained) > limit {
				t.Errorf("%s: the connection ended %v after the drain; want within %v", name, at.Sub(drained), limit)
			}
		}
	}
	_ = deaf.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	end()
	clients.Wait()
	ts.Close()
	waitUntil(t, "every goroutine has ended", func() bool { return runtime.NumGoroutine() <= base })
}
