package handlers

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/telemetry"
)

// TestWebSocketInboxBoundedAttack: a client that sends message after message without reading,
// while the server's writer is blocked on it, is read only as far as the inbox's bounds — at most
// wsInboxMessages messages, and at most wsInboxBytes beyond the first — and then no further: the
// reader is held, and the memory a hostile client can pin stays bounded.
func TestWebSocketInboxBoundedAttack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		msgs [][]byte
	}{
		{"large messages", [][]byte{make([]byte, 30000), make([]byte, 30000), make([]byte, 30000), make([]byte, 30000)}},
		{"many messages", func() (m [][]byte) {
			for range 3 * wsInboxMessages {
				m = append(m, []byte(`{"action":"ping"}`))
			}
			return m
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, log := newTestServer(t, Config{Heartbeat: time.Hour, WriteTimeout: 20 * time.Second})
			ts := smallBufferServer(t, s)
			conn := dialSmallWindow(t, ts)
			rawWS(t, conn, "/api/v1/ws") // and reads nothing more: the writer blocks
			bigNotes(t, log, 60, 20000)  // ~1.2 MB, far past every buffer
			waitUntil(t, "the writer is blocked", func() bool {
				ws := serverConns(s)
				return len(ws) == 1 && s.hub.Len() == 1 && isWriting(ws[0])
			})
			c := &rawClient{conn: conn}
			for i, m := range tc.msgs {
				if err := c.send(websocket.TextMessage, m); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			w := serverConns(s)[0]
			waitUntil(t, "the reader is held (the inbox is full)", w.held.Load)
			w.mu.Lock()
			n, size := len(w.inbox), w.inboxBytes
			w.mu.Unlock()
			t.Logf("inbox: %d messages, %d bytes", n, size)
			if n > wsInboxMessages || (n > 1 && size > wsInboxBytes) {
				t.Errorf("inbox holds %d messages of %d bytes in all; want at most %d, and %d bytes beyond the first",
					n, size, wsInboxMessages, wsInboxBytes)
			}
		})
	}
}

// TestWebSocketCloseHandshakeAttack: a connection the server ends (a drain) sends the close frame
// and then the end of the stream — never a reset, which could discard the close frame before the
// client reads it — even when the client's own frames are still arriving; and a client that never
// answers the close is released within wsCloseWait.
func TestWebSocketCloseHandshakeAttack(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{Heartbeat: time.Hour})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	c := dialWS(t, ts, "", nil)
	defer c.Close()
	rc := c.NetConn()
	br := bufio.NewReader(rc) // dialWS read the subscribed frame, and nothing else has been sent
	_ = rc.SetReadDeadline(time.Now().Add(10 * time.Second))
	ending := make(chan error, 1)
	answered := make(chan struct{}) // the server has answered one of the client's actions
	go func() {                     // reads all along: the close frame, then the end of the stream
		first := answered
		for {
			f, err := readRawFrame(br)
			if err != nil {
				ending <- fmt.Errorf("before the close frame: %w", err)
				return
			}
			if f.op == websocket.TextMessage && first != nil {
				close(first)
				first = nil
			}
			if f.op == websocket.CloseMessage {
				if code := binary.BigEndian.Uint16(f.payload); code != websocket.CloseServiceRestart {
					ending <- fmt.Errorf("close code %d, want %d", code, websocket.CloseServiceRestart)
					return
				}
				if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
					ending <- fmt.Errorf("after the close frame: %w, want the end of the stream", err)
					return
				}
				ending <- nil
				return
			}
		}
	}()
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() { // frames keep arriving, as fast as they go, until after the server's close
		defer close(sent)
		frame := maskedFrame(websocket.TextMessage, []byte(`{"action":"ping"}`))
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = rc.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := rc.Write(frame); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-sent }()
	select { // the client's frames are flowing, and the server is reading them
	case <-answered:
	case err := <-ending:
		t.Fatalf("before any answer: %v", err)
	}
	drained := time.Now()
	s.Drain()
	if err := <-ending; err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the connection is released", func() bool { return len(serverConns(s)) == 0 && s.Active() == 0 })
	if took := time.Since(drained); took > wsCloseWait+time.Second {
		t.Errorf("released %v after the drain; want within wsCloseWait (%v)", took, wsCloseWait)
	}
}

// maskedFrame is one client frame (RFC 6455 §5.3) of a payload under 126 bytes.
func maskedFrame(op byte, p []byte) []byte {
	key := [4]byte{1, 2, 3, 4}
	b := append([]byte{0x80 | op, 0x80 | byte(len(p))}, key[:]...)
	for i, x := range p {
		b = append(b, x^key[i%4])
	}
	return b
}

// TestWebSocketCloseWebSocketsAttack: at the end of a drain's grace, CloseStreams releases at
// once the connections still waiting for their clients' close frames — here a client that reads
// the server's close frame and never answers — so that each is released and logged as ended by
// the shutdown before the process exits, not wsCloseWait later (or never: net/http does not
// track hijacked connections, and the process would exit first).
func TestWebSocketCloseWebSocketsAttack(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{Heartbeat: time.Hour})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := rawWS(t, conn, "/api/v1/ws")
	w := onlyConn(t, s)
	s.Drain()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for { // up to the close frame, and no answer to it
		f, err := readRawFrame(br)
		if err != nil {
			t.Fatalf("before the close frame: %v", err)
		}
		if f.op == websocket.CloseMessage {
			break
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsCloseWait/2)
	defer cancel()
	s.CloseStreams(ctx)
	if ctx.Err() != nil || len(serverConns(s)) != 0 || s.Active() != 0 {
		t.Fatalf("CloseStreams waited %v: %d connections registered, %d active", wsCloseWait/2, len(serverConns(s)), s.Active())
	}
	w.mu.Lock()
	reason := w.reason
	w.mu.Unlock()
	if reason != telemetry.CloseShutdown {
		t.Errorf("reason %q, want %q", reason, telemetry.CloseShutdown)
	}
}
