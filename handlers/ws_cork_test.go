package handlers

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
)

// writeLog records each write that reaches the socket.
type writeLog struct {
	net.Conn
	writes [][]byte
	err    error // returned by every write, when set
}

func (c *writeLog) Write(b []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, bytes.Clone(b))
	return len(b), nil
}

// TestCorkConn: a batch's first frame and the events that follow it leave in one write, framed as
// gorilla frames them; control frames and data frames without a batch pass through alone.
func TestCorkConn(t *testing.T) {
	t.Parallel()
	text := func(s string) []byte { return appendTextFrame(nil, []byte(s)) }
	ev := func(s string) *event.Event { return &event.Event{JSON: []byte(s)} }
	ping := []byte{0x89, 0}
	closeFrame := []byte{0x88, 2, 0x03, 0xf4}
	long := strings.Repeat("x", 70000) // a 64-bit length; gorilla writes it in two parts
	type step struct {
		follow []*event.Event
		frame  []byte
	}
	tests := []struct {
		name  string
		steps []step
		want  [][]byte
	}{
		{"data frames without a batch pass through", []step{{nil, text("a")}, {nil, text("b")}},
			[][]byte{text("a"), text("b")}},
		{"a batch leaves in one write", []step{{[]*event.Event{ev("b"), ev("c")}, text("a")}},
			[][]byte{slices.Concat(text("a"), text("b"), text("c"))}},
		{"a control frame passes before the batch", []step{{[]*event.Event{ev("b")}, ping}, {[]*event.Event{ev("b")}, text("a")}},
			[][]byte{ping, slices.Concat(text("a"), text("b"))}},
		{"a close from elsewhere is not taken for the batch", []step{{[]*event.Event{ev("b")}, closeFrame}},
			[][]byte{closeFrame}},
		{"a first frame in two writes", []step{
			{[]*event.Event{ev(strings.Repeat("y", 300))}, text(long)[:4000]},
			{[]*event.Event{ev(strings.Repeat("y", 300))}, text(long)[4000:]}},
			[][]byte{slices.Concat(text(long), text(strings.Repeat("y", 300)))}},
		{"a 16-bit length", []step{{[]*event.Event{ev(strings.Repeat("z", 65535))}, text(strings.Repeat("w", 126))}},
			[][]byte{slices.Concat(text(strings.Repeat("w", 126)), text(strings.Repeat("z", 65535)))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := &writeLog{}
			c := &corkConn{Conn: log}
			for _, s := range tt.steps {
				c.Follow(s.follow)
				if n, err := c.Write(s.frame); n != len(s.frame) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			if !slices.EqualFunc(log.writes, tt.want, bytes.Equal) {
				t.Fatalf("socket writes %q, want %q", trim(log.writes), trim(tt.want))
			}
			if c.buf != nil {
				t.Fatal("a buffer is kept after the write")
			}
		})
	}
}

// Only a whole, uncompressed text message in one frame takes the tail: after a fragment or a
// compressed frame (if gorilla ever wrote one) the tail stays pending, and the writer sends it
// one message at a time rather than splice it into a fragmented message.
func TestCorkConnTailOnlyAfterWholeTextFrame(t *testing.T) {
	t.Parallel()
	for _, first := range [][]byte{
		{0x01, 1, 'a'}, // text, not final: a first fragment
		{0xc1, 1, 'a'}, // final text, RSV1: compressed
		{0x82, 1, 'a'}, // final binary
	} {
		log := &writeLog{}
		c := &corkConn{Conn: log}
		c.Follow([]*event.Event{{JSON: []byte("b")}})
		if n, err := c.Write(first); n != len(first) || err != nil {
			t.Fatalf("%#x: write %d, %v", first[0], n, err)
		}
		if len(log.writes) != 1 || !bytes.Equal(log.writes[0], first) || !c.Pending() {
			t.Fatalf("%#x: socket writes %q, pending %v; want the frame alone and the tail pending", first[0], log.writes, c.Pending())
		}
	}
}

// trim shortens long writes for a failure message.
func trim(writes [][]byte) []string {
	out := make([]string, len(writes))
	for i, w := range writes {
		if len(w) > 40 {
			w = append(w[:20:20], "..."...)
		}
		out[i] = string(w)
	}
	return out
}

// A failed write fails the frame that carried the batch, and keeps nothing.
func TestCorkConnWriteFails(t *testing.T) {
	t.Parallel()
	broken := errors.New("broken")
	c := &corkConn{Conn: &writeLog{err: broken}}
	c.Follow([]*event.Event{{JSON: []byte("b")}})
	if _, err := c.Write(appendTextFrame(nil, []byte("a"))); !errors.Is(err, broken) {
		t.Fatalf("write: %v, want the socket's error", err)
	}
	if c.buf != nil || c.tail != nil {
		t.Fatal("the batch is kept after a failed write")
	}
}

// The frame lengths read back are those written, at each encoding's edges.
func TestFrameSize(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 200000} {
		f := appendTextFrame(nil, make([]byte, n))
		if size, ok := frameSize(f); !ok || size != len(f) {
			t.Errorf("payload %d: frameSize %d, %v, want %d", n, size, ok, len(f))
		}
	}
	if _, ok := frameSize([]byte{0x81, 0x85, 1, 2, 3, 4}); ok {
		t.Error("a masked frame was taken for ours")
	}
}

// appendTextFrame frames as gorilla does: the bytes gorilla writes for text messages at each
// length encoding's edges are those appendTextFrame makes.
func TestAppendTextFrameMatchesGorilla(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 70000}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, n := range sizes {
			if err := conn.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte{'a' + byte(n%26)}, n)); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	var want []byte
	for _, n := range sizes {
		want = appendTextFrame(want, bytes.Repeat([]byte{'a' + byte(n%26)}, n))
	}
	got := make([]byte, len(want))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("byte %d: gorilla wrote %#x, appendTextFrame %#x", i, got[i], want[i])
		}
	}
}
