package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// rawFrame is one server frame as read off the wire.
type rawFrame struct {
	op      byte
	payload []byte
}

// parseFrame parses one server-to-client frame at the start of b, checking it as RFC 6455 §5
// requires of a server: final (the server never fragments), no RSV bits, unmasked, the length in
// its shortest encoding, control frames at most 125 bytes. n is the bytes it took; n == 0 with a
// nil error: b holds only part of a frame.
func parseFrame(b []byte) (f rawFrame, n int, err error) {
	if len(b) < 2 {
		return f, 0, nil
	}
	if b[0]&0x70 != 0 || b[0]&0x80 == 0 {
		return f, 0, fmt.Errorf("first byte %#x: not a final frame without RSV bits", b[0])
	}
	if b[1]&0x80 != 0 {
		return f, 0, errors.New("a masked server frame")
	}
	f.op = b[0] & 0x0f
	switch f.op {
	case websocket.TextMessage, websocket.CloseMessage, websocket.PingMessage, websocket.PongMessage:
	default:
		return f, 0, fmt.Errorf("opcode %d", f.op)
	}
	size, head := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return f, 0, nil
		}
		size, head = uint64(binary.BigEndian.Uint16(b[2:])), 4
		if size < 126 {
			return f, 0, fmt.Errorf("length %d in 16 bits", size)
		}
	case 127:
		if len(b) < 10 {
			return f, 0, nil
		}
		size, head = binary.BigEndian.Uint64(b[2:]), 10
		if size <= 0xffff || size>>63 != 0 {
			return f, 0, fmt.Errorf("length %d in 64 bits", size)
		}
	}
	if f.op >= websocket.CloseMessage && size > 125 {
		return f, 0, fmt.Errorf("control frame of %d bytes", size)
	}
	if uint64(len(b)-head) < size {
		return f, 0, nil
	}
	return rawFrame{f.op, b[head : head+int(size)]}, head + int(size), nil
}

// rawWS upgrades conn on target by hand, with the header lines given, and returns a reader
// positioned at the first frame.
func rawWS(t *testing.T, conn net.Conn, target string, header ...string) *bufio.Reader {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: eventgate\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, h := range header {
		req += h + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %s", resp.Status)
	}
	_ = conn.SetDeadline(time.Time{})
	return br
}

// serverConns returns the server's registered WebSocket connections.
func serverConns(s *Server) []*wsConn {
	s.ws.mu.Lock()
	defer s.ws.mu.Unlock()
	var ws []*wsConn
	for w := range s.ws.conns {
		ws = append(ws, w)
	}
	return ws
}

// TestWebSocketTimeoutNeverSplitsAFrameAttack: a batch whose write times out part-way (the
// client stopped reading) leaves a frame unfinished on the wire. Nothing may follow it — least
// of all the 1013 close frame, which the client would take for the rest of the data frame's
// payload. The client here stalls until the server has given up, then reads all it is sent.
func TestWebSocketTimeoutNeverSplitsAFrameAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{WriteTimeout: 300 * time.Millisecond})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = smallSendBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close)
	bigNotes(t, log, 60, 20000) // ~1.2 MB: far past every buffer
	conn, err := smallWindow.DialContext(context.Background(), "tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := rawWS(t, conn, "/api/v1/ws?since=0")
	var w *wsConn
	waitUntil(t, "the connection is registered", func() bool {
		ws := serverConns(s)
		if len(ws) == 1 {
			w = ws[0]
		}
		return w != nil
	})
	waitUntil(t, "the server stops the connection (write timeout)", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.stopped
	})
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	wire, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v after %d bytes", err, len(wire))
	}
	closeFrame := append([]byte{0x88, 0}, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, string(telemetry.CloseWriteTimeout))...)
	closeFrame[1] = byte(len(closeFrame) - 2)
	rest, frames := wire, 0
	for len(rest) > 0 {
		f, n, err := parseFrame(rest)
		if err != nil {
			t.Fatalf("frame %d: %v", frames, err)
		}
		if n == 0 {
			break
		}
		if f.op == websocket.TextMessage && !json.Valid(f.payload) {
			t.Fatalf("frame %d: not one JSON message: %.80q", frames, f.payload)
		}
		rest = rest[n:]
		frames++
	}
	if bytes.HasSuffix(rest, closeFrame) || bytes.Contains(rest, closeFrame[:4]) {
		t.Fatalf("after %d whole frames, an unfinished one of %d bytes ends with the close frame: the close split a data frame", frames, len(rest))
	}
	t.Logf("%d whole frames, %d bytes of an unfinished one", frames, len(rest))
}

// readRawFrame reads and checks one server frame (parseFrame's rules) from r.
func readRawFrame(r *bufio.Reader) (rawFrame, error) {
	head, err := r.Peek(2)
	if err != nil {
		return rawFrame{}, err
	}
	need := 2
	switch head[1] & 0x7f {
	case 126:
		need = 4
	case 127:
		need = 10
	}
	head, err = r.Peek(need)
	if err != nil {
		return rawFrame{}, err
	}
	size := uint64(head[1] & 0x7f)
	switch need {
	case 4:
		size = uint64(binary.BigEndian.Uint16(head[2:]))
	case 10:
		size = binary.BigEndian.Uint64(head[2:])
	}
	if size > 64<<20 {
		return rawFrame{}, fmt.Errorf("a frame of %d bytes", size)
	}
	b := make([]byte, need+int(size))
	if _, err := io.ReadFull(r, b); err != nil {
		return rawFrame{}, err
	}
	f, n, err := parseFrame(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("frame of %d bytes parsed as %d", len(b), n)
	}
	return f, err
}

// TestWebSocketFrameSizesAttack: answers and events of every length encoding's edges — answers of
// 125, 126, 127, 65535 and 65536 bytes, events around 65535/65536 bytes, the largest event a
// publish may carry, and 1 MiB ones (an operator's catalogue may allow them) — reach a gorilla
// client through the route as the messages they are, one each, in order, and a raw client as
// frames RFC 6455 allows a server to send (final, unmasked, shortest length, no RSV bits).
func TestWebSocketFrameSizesAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	conn := dialWS(t, ts, "", nil)
	rc, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	br := rawWS(t, rc, "/api/v1/ws")
	if f, err := readRawFrame(br); err != nil || f.op != websocket.TextMessage || !bytes.Contains(f.payload, []byte(`"subscribed"`)) {
		t.Fatalf("raw client's first frame: %q, %v", f.payload, err)
	}

	// Answers: "unknown action" errors echo the action, so their length is the test's to choose.
	answer := func(action string) []byte {
		b, _ := json.Marshal(wsError{Type: "error", Code: "bad_request", Message: fmt.Sprintf("unknown action %q (want subscribe, unsubscribe or ping)", action)})
		return b
	}
	base := len(answer(""))
	for _, size := range []int{125, 126, 127, 65535, 65536} {
		action := strings.Repeat("a", size-base)
		want := answer(action)
		if len(want) != size {
			t.Fatalf("answer of %d bytes, want %d", len(want), size)
		}
		if err := conn.WriteJSON(map[string]string{"action": action}); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		kind, got, err := conn.ReadMessage()
		if err != nil || kind != websocket.TextMessage || !bytes.Equal(got, want) {
			t.Fatalf("answer of %d bytes: kind %d, %d bytes %.100q, %v", size, kind, len(got), got, err)
		}
	}

	// Events: a probe gives the envelope's length; titles around the edges follow.
	probe := bigNotes(t, log, 1, 1000)
	m := readJSON(t, conn)
	if m["id"] != probe[0].String() {
		t.Fatalf("probe: %v", m)
	}
	raw, err := readRawFrame(br)
	if err != nil {
		t.Fatal(err)
	}
	envelope := len(raw.payload) - 1000
	var titles []int
	for _, edge := range []int{65535, corkMaxHeld} { // the length encodings' edge; a batch's
		for d := -3; d <= 3; d++ {
			titles = append(titles, edge-envelope+d)
		}
	}
	titles = append(titles, s.cfg.MaxEventBytes, 1<<20, 1, 1<<20+1, 200)
	var ids []string
	for _, n := range titles {
		for _, id := range bigNotes(t, log, 1, n) {
			ids = append(ids, id.String())
		}
	}
	check := func(who string, payload []byte, i int) error {
		var e struct {
			ID   string `json:"id"`
			Data struct {
				Title string `json:"title"`
			} `json:"data"`
		}
		if err := json.Unmarshal(payload, &e); err != nil {
			return fmt.Errorf("%s: event %d (%d bytes) is not one JSON message: %v", who, i, len(payload), err)
		}
		if e.ID != ids[i] || len(e.Data.Title) != titles[i] {
			return fmt.Errorf("%s: event %d is %s with a title of %d, want %s with %d", who, i, e.ID, len(e.Data.Title), ids[i], titles[i])
		}
		return nil
	}
	rawDone := make(chan error, 1)
	sizes := make(chan int, len(titles))
	go func() {
		_ = rc.SetReadDeadline(time.Now().Add(20 * time.Second))
		for i := range titles {
			f, err := readRawFrame(br)
			if err == nil && f.op != websocket.TextMessage {
				err = fmt.Errorf("raw: frame %d has opcode %d", i, f.op)
			}
			if err == nil {
				err = check("raw", f.payload, i)
			}
			if err != nil {
				rawDone <- err
				return
			}
			sizes <- len(f.payload)
		}
		rawDone <- nil
	}()
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for i := range titles {
		kind, got, err := conn.ReadMessage()
		if err != nil || kind != websocket.TextMessage {
			t.Fatalf("gorilla: event %d: kind %d, %v", i, kind, err)
		}
		if err := check("gorilla", got, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-rawDone; err != nil {
		t.Fatal(err)
	}
	close(sizes)
	seen := map[int]bool{}
	for n := range sizes {
		seen[n] = true
	}
	for _, edge := range []int{65535, 65536} {
		if !seen[edge] {
			t.Errorf("no event frame of exactly %d bytes was sent", edge)
		}
	}
}

// rawClient is a hand-made WebSocket client that checks every byte the server sends.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	wmu  sync.Mutex
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
				tok := hsToken(t, jwt.MapClaims{"sub": "s", "scope": "subscribe", "exp": time.Now().Add(1500 * time.Millisecond).Unix()})
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
					// A 1013 (slow consumer) or a ping timeout may come first: pongs wait unread while
					// the reader waits for the writer to take an action, at this 32 ms heartbeat.
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
								end = nil
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
	waitUntil(t, "both stuck writers block in a batch", func() bool {
		blocked := 0
		for _, w := range serverConns(s) {
			cork := w.conn.UnderlyingConn().(*corkConn)
			if !cork.mu.TryLock() {
				blocked++
				continue
			}
			cork.mu.Unlock()
		}
		return blocked >= 2
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
