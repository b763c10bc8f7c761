package handlers

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestWebSocketTooBigCloseHandshakeReview: a client whose message is over the read limit is, by
// definition, still sending it when the server gives up on it. The 1009 close frame must reach it
// all the same, followed by the end of the stream — not a reset, which discards whatever the
// server has not yet sent (the close frame included). gorilla writes that close frame itself, so
// stop's own WriteControl returns ErrCloseSent; treating that as "the client takes nothing" closed
// the socket at once with the rest of the message unread in it. Here the server is in the middle
// of a large delivery to a client with a small window, so the close frame waits in the server's
// send queue when the socket closes. Both shapes: one frame whose header is over the limit (the
// error comes from NextReader) and a fragmented message that grows past it (from the body's read).
func TestWebSocketTooBigCloseHandshakeReview(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		frame func() []byte
	}{
		{"one frame", func() []byte { return clientFrame(websocket.TextMessage, true, make([]byte, 100<<10)) }},
		{"fragments", func() []byte {
			var b []byte
			b = append(b, clientFrame(websocket.TextMessage, false, make([]byte, 40<<10))...)
			return append(b, clientFrame(0, true, make([]byte, 40<<10))...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, log := newTestServer(t, Config{Heartbeat: time.Hour, WriteTimeout: 20 * time.Second})
			ts := smallBufferServer(t, s)
			conn := dialSmallWindow(t, ts)
			// The client reads nothing more for now (the writer blocks), then reads at a slow
			// link's pace: the server's send queue is never empty when it closes the socket.
			br := rawWS(t, slowReadConn{conn}, "/api/v1/ws")
			bigNotes(t, log, 60, 20000) // ~1.2 MB, far past every buffer
			waitUntil(t, "the writer is blocked", func() bool {
				ws := serverConns(s)
				return len(ws) == 1 && isWriting(ws[0])
			})
			sent := make(chan error, 1)
			go func() { // the oversized message, in one write; the client sends nothing after it
				_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, err := conn.Write(tc.frame())
				sent <- err
			}()
			_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			code, err := readToClose(br)
			if err != nil {
				t.Fatal(err)
			}
			if code != websocket.CloseMessageTooBig {
				t.Fatalf("close code %d, want %d", code, websocket.CloseMessageTooBig)
			}
			_ = conn.Close() // ends the client's write, if it is still going
			<-sent
			waitUntil(t, "the connection is released", func() bool { return len(serverConns(s)) == 0 && s.Active() == 0 })
		})
	}
}

// clientFrame is one masked client frame of any size; op 0 is a continuation.
func clientFrame(op byte, fin bool, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n < 1<<16:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, x := range p {
		b = append(b, x^key[i%4])
	}
	return b
}

// readToClose reads server frames until the close frame and then expects the end of the
// stream. It returns the close code; an error for a stream that ends otherwise (a reset: the
// close frame was lost) or carries anything after the close frame.
func readToClose(br *bufio.Reader) (int, error) {
	for i := 0; ; i++ {
		f, err := readRawFrame(br)
		if err != nil {
			return 0, fmt.Errorf("frame %d, before the close frame: %w", i, err)
		}
		if f.op != websocket.CloseMessage {
			continue
		}
		if len(f.payload) < 2 {
			return 0, fmt.Errorf("a close frame without a code")
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("after the close frame: %v, want the end of the stream", err)
		}
		return int(binary.BigEndian.Uint16(f.payload)), nil
	}
}
