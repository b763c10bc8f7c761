package handlers

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

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

// onlyConn waits until the server has exactly one WebSocket registered, and returns it.
func onlyConn(t *testing.T, s *Server) *wsConn {
	t.Helper()
	var w *wsConn
	waitUntil(t, "the connection is registered", func() bool {
		if ws := serverConns(s); len(ws) == 1 {
			w = ws[0]
		}
		return w != nil
	})
	return w
}

// isWriting reports whether w's writer runs.
func isWriting(w *wsConn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writing
}

// TestWebSocketTimeoutNeverSplitsAFrameAttack: a batch whose write times out part-way (the
// client stopped reading) leaves a frame unfinished on the wire. Nothing may follow it — least
// of all the 1013 close frame, which the client would take for the rest of the data frame's
// payload. The client here stalls until the server has given up, then reads all it is sent.
func TestWebSocketTimeoutNeverSplitsAFrameAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{WriteTimeout: 300 * time.Millisecond})
	ts := smallBufferServer(t, s)
	bigNotes(t, log, 60, 20000) // ~1.2 MB: far past every buffer
	conn := dialSmallWindow(t, ts)
	br := rawWS(t, conn, "/api/v1/ws?since=0")
	w := onlyConn(t, s)
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
