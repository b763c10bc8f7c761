package handlers

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/telemetry"
)

// rawClient is a hand-made WebSocket client that checks every byte the server sends.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
	// closeSent: a close frame went out; nothing follows it (RFC 6455 §5.5.1), or the server,
	// which closes once it has answered it, would answer with a reset.
	closeSent bool
	// closePayload, reason: the close frame's, once read.
	closePayload []byte
	reason       string
}

// send writes one masked client frame (RFC 6455 §5.3).
func (c *rawClient) send(op byte, p []byte) error {
	b := []byte{0x80 | op}
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, x := range p {
		b = append(b, x^key[i%4])
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return nil
	}
	c.closeSent = op == websocket.CloseMessage
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

// readAll reads frames until the connection ends, answering pings. It returns the close code
// received (0: none) and the first violation: a frame RFC 6455 does not allow, a text frame that
// is not one JSON message, events out of order, or any byte after a close frame.
func (c *rawClient) readAll() (int, error) {
	var last event.ID
	defer func() { c.reason = string(c.closePayload) }()
	code := 0
	for i := 0; ; i++ {
		f, err := readRawFrame(c.br)
		if err != nil {
			if code != 0 && errors.Is(err, io.EOF) {
				return code, nil
			}
			if code != 0 {
				return code, fmt.Errorf("after the close frame: %v", err)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
				strings.Contains(err.Error(), "reset") {
				return 0, nil // the connection ended (a frame cut short by a failed write is allowed)
			}
			return 0, fmt.Errorf("frame %d: %v", i, err)
		}
		if code != 0 {
			return code, fmt.Errorf("frame %d (opcode %d, %.60q) after the close frame", i, f.op, f.payload)
		}
		switch f.op {
		case websocket.CloseMessage:
			code = websocket.CloseNoStatusReceived
			c.closePayload = f.payload
			if len(f.payload) >= 2 {
				code = int(binary.BigEndian.Uint16(f.payload))
			}
			_ = c.send(websocket.CloseMessage, f.payload[:min(2, len(f.payload))])
		case websocket.PingMessage:
			_ = c.send(websocket.PongMessage, f.payload)
		case websocket.TextMessage:
			var m struct {
				ID   string `json:"id"`
				Type string `json:"type"`
			}
			if err := json.Unmarshal(f.payload, &m); err != nil {
				return 0, fmt.Errorf("frame %d of %d bytes is not one JSON message: %v", i, len(f.payload), err)
			}
			if m.ID != "" {
				id, err := event.ParseID(m.ID)
				if err != nil {
					return 0, fmt.Errorf("frame %d: id %q: %v", i, m.ID, err)
				}
				if id.Compare(last) <= 0 {
					return 0, fmt.Errorf("frame %d: event %s after %s", i, id, last)
				}
				last = id
			}
		}
	}
}

// TestWebSocketCloseRacesAttack: connections receiving a steady stream of events of every size,
// pinged by a fast heartbeat, whose clients send actions and pings meanwhile, end every way a
// connection ends — the client leaves, sends a close, the server drains, the token expires. Each
// client checks every byte: valid frames, one JSON message each, events in order, nothing after a
// close frame (a close never splits a frame). Every connection is released.
func TestWebSocketCloseRacesAttack(t *testing.T) {
	t.Parallel()
	endings := []struct {
		name string
		code int // the close code the clients must see, if they see one (0: any)
	}{
		{"client leaves", 0},
		{"client close", websocket.CloseNormalClosure},
		{"drain", websocket.CloseServiceRestart},
		{"token expiry", websocket.ClosePolicyViolation},
	}
	for _, tc := range endings {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Heartbeat: 32 * time.Millisecond, WriteTimeout: 2 * time.Second, DrainSpread: 200 * time.Millisecond, MaxConnectionsPerIP: 100}
			var s *Server
			var log *store.Memory
			var header []string
			if tc.name == "token expiry" {
				s, log = newAuthServer(t, cfg, nil, nil)
				// exp is in whole seconds: 3 s leaves at least 2 for six dials on a loaded machine.
				tok := hsToken(t, jwt.MapClaims{"sub": "s", "scope": "subscribe", "exp": time.Now().Add(3 * time.Second).Unix()})
				header = []string{"Authorization: Bearer " + tok}
			} else {
				s, log = newTestServer(t, cfg)
			}
			ts := httptest.NewServer(s.Handler())
			defer ts.Close()
			stopPublishing := make(chan struct{})
			published := make(chan struct{})
			go func() {
				defer close(published)
				sizes := []int{1, 100, 126, 3000, 40000, 70000}
				for i := 0; ; i++ {
					select {
					case <-stopPublishing:
						return
					default:
					}
					_, _ = log.Append(context.Background(), []event.Draft{{Type: "note.created", Topic: "notes/" + jobID,
						Data: []byte(`{"note_id":"` + jobID + `","title":"` + strings.Repeat("x", sizes[i%len(sizes)]) + `"}`)}})
					if i%8 == 7 {
						time.Sleep(time.Millisecond) // paces the publisher; synchronises nothing
					}
				}
			}()
			defer func() { close(stopPublishing); <-published }()
			const n = 6
			var wg sync.WaitGroup
			errs := make(chan error, 2*n)
			for i := range n {
				rc, err := net.Dial("tcp", ts.Listener.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				defer rc.Close()
				c := &rawClient{conn: rc, br: rawWS(t, rc, "/api/v1/ws", header...)}
				_ = rc.SetReadDeadline(time.Now().Add(20 * time.Second))
				done := make(chan struct{})
				wg.Go(func() {
					defer close(done)
					code, err := c.readAll()
					// A 1013 (slow consumer) may come first: the client writes its pongs from its read
					// loop, so a writer blocked on it and its own blocked write can wait on each other.
					// So may a ping timeout: at this 32 ms heartbeat a loaded machine can stall a client
					// for two intervals (TestWebSocketActionsDoNotHidePongsAttack covers pongs hidden
					// behind actions).
					if err == nil && code != 0 && tc.code != 0 && code != tc.code && code != websocket.CloseTryAgainLater &&
						!strings.HasSuffix(c.reason, string(telemetry.ClosePingTimeout)) {
						err = fmt.Errorf("closed with %d %q, want %d", code, c.reason, tc.code)
					}
					if err != nil {
						errs <- fmt.Errorf("client %d: %v", i, err)
					}
				})
				wg.Go(func() { // actions and pings until the connection ends, then (some) the ending
					actions := [][]byte{[]byte(`{"action":"ping"}`), []byte(`{"action":"unsubscribe","topics":["notes/*"]}`),
						[]byte(`{"action":"subscribe","topics":["notes/*"]}`), []byte(`{"action":"subscribe"}`)}
					end := time.After(time.Duration(100+37*i) * time.Millisecond)
					for j := 0; ; j++ {
						select {
						case <-done:
							return
						case <-end:
							switch tc.name {
							case "client leaves":
								_ = rc.Close()
								return
							case "client close":
								_ = c.send(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
								return
							}
						default:
						}
						if j%3 == 0 {
							_ = c.send(websocket.PingMessage, []byte("p"))
						} else {
							_ = c.send(websocket.TextMessage, actions[j%len(actions)])
						}
						time.Sleep(time.Duration(j%5) * time.Millisecond) // paces the client; synchronises nothing
					}
				})
			}
			if tc.name == "drain" {
				time.Sleep(150 * time.Millisecond) // lets deliveries get going; synchronises nothing
				s.Drain()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			waitUntil(t, "every connection is released", func() bool {
				return len(serverConns(s)) == 0 && s.Active() == 0
			})
		})
	}
}

// trickleConn reads at most 16 bytes every 50 ms: a client far slower than its stream. The sleep
// paces reading; it synchronises nothing.
type trickleConn struct{ net.Conn }

func (c trickleConn) Read(b []byte) (int, error) {
	time.Sleep(50 * time.Millisecond)
	return c.Conn.Read(b[:min(len(b), 16)])
}

// TestWebSocketStuckClientsAttack: a client that reads nothing and one that reads a trickle, each
// with a writer blocked in a batch, hold up neither the other connections' deliveries nor the
// heartbeat's pings, nor the drain: every connection, stuck ones included, is closed within about
// a second of it, and every goroutine ends. Not parallel: it counts goroutines.
func TestWebSocketStuckClientsAttack(t *testing.T) {
	s, log := newTestServer(t, Config{Heartbeat: 160 * time.Millisecond, WriteTimeout: 20 * time.Second, MaxConnectionsPerIP: 100})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = smallSendBuffers{ts.Listener}
	ts.Start()
	defer ts.Close()
	base := runtime.NumGoroutine()
	var stuck []net.Conn
	for _, trickle := range []bool{false, true} {
		c, err := smallWindow.DialContext(context.Background(), "tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := rawWS(t, c, "/api/v1/ws")
		stuck = append(stuck, c)
		if trickle {
			tc := trickleConn{c}
			go func() { _, _ = io.Copy(io.Discard, bufio.NewReader(tc)); _ = br }()
		}
	}
	const healthy, events = 3, 150
	conns := make([]*websocket.Conn, healthy)
	pings := make([]chan struct{}, healthy)
	for i := range conns {
		conns[i] = dialWS(t, ts, "", nil)
		pings[i] = make(chan struct{}, 1000)
		c := conns[i]
		c.SetPingHandler(func(data string) error {
			pings[i] <- struct{}{}
			return c.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
	}
	ids := bigNotes(t, log, events, 10000) // 1.5 MB to each: the stuck clients' writers block
	waitUntil(t, "both stuck writers run (blocked in a batch)", func() bool {
		running := 0
		for _, w := range serverConns(s) {
			w.mu.Lock()
			if w.writing {
				running++
			}
			w.mu.Unlock()
		}
		return running >= 2
	})
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for j, id := range ids {
				_, msg, err := c.ReadMessage()
				var m struct{ ID string }
				if err != nil || json.Unmarshal(msg, &m) != nil || m.ID != id.String() {
					t.Errorf("healthy client %d, event %d: %.60q, %v", i, j, msg, err)
					return
				}
			}
			// The heartbeat still pings: two more pings arrive while the stuck ones stay stuck.
			for len(pings[i]) > 0 {
				<-pings[i]
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			go func() { _, _, _ = c.ReadMessage() }() // pings are read inside reads; ends at the drain
			for range 2 {
				select {
				case <-pings[i]:
				case <-time.After(5 * time.Second):
					t.Errorf("healthy client %d: no ping", i)
					return
				}
			}
		})
	}
	wg.Wait()
	start := time.Now()
	s.Drain()
	waitUntil(t, "every connection is released after the drain", func() bool {
		return len(serverConns(s)) == 0 && s.Active() == 0
	})
	took := time.Since(start)
	t.Logf("the drain closed every connection in %s", took)
	if took > 2500*time.Millisecond {
		t.Errorf("the drain took %s to close every connection; want about a second", took)
	}
	for _, c := range stuck {
		_ = c.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	ts.Close()
	waitUntil(t, "every goroutine ends", func() bool { return runtime.NumGoroutine() <= base })
}

// TestWebSocketLargeFrameBuffersNotPooledAttack: batches framed around events of up to 1 MiB
// leave no buffer over 64 KiB in frameBuffers, and every buffer goes back empty. Not parallel: it
// drains the shared pool, on one P, whose private slot a Get can reach.
func TestWebSocketLargeFrameBuffersNotPooledAttack(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ts, log := startHTTP(t, Config{})
	conn := dialWS(t, ts, "", nil)
	ids := bigNotes(t, log, 1, 1<<20)
	ids = append(ids, bigNotes(t, log, 3, 40000)...)
	ids = append(ids, bigNotes(t, log, 1, 70000)...)
	for _, id := range ids {
		if m := readJSON(t, conn); m["id"] != id.String() {
			t.Fatalf("got %v, want %s", m["id"], id)
		}
	}
	var held []*[]byte
	defer func() {
		for _, bp := range held {
			frameBuffers.Put(bp)
		}
	}()
	for range 1000 {
		bp := frameBuffers.Get().(*[]byte)
		held = append(held, bp)
		if cap(*bp) > 64<<10 || len(*bp) != 0 {
			t.Fatalf("frameBuffers holds a buffer of %d bytes (cap %d)", len(*bp), cap(*bp))
		}
	}
}
