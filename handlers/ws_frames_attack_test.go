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

// rawWS upgrades conn on target by hand and returns a reader positioned at the first frame.
func rawWS(t *testing.T, conn net.Conn, target string) *bufio.Reader {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: eventgate\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
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
