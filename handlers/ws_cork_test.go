package handlers

import (
	"bytes"
	"net"
	"slices"
	"testing"
)

// writeLog records each write that reaches the socket.
type writeLog struct {
	net.Conn
	writes [][]byte
}

func (c *writeLog) Write(b []byte) (int, error) {
	c.writes = append(c.writes, bytes.Clone(b))
	return len(b), nil
}

// TestCorkConn: held data frames leave with the next unheld write or control frame, in order, in
// one write; nothing is held while not held.
func TestCorkConn(t *testing.T) {
	t.Parallel()
	text := func(s string) []byte { return append([]byte{0x81, byte(len(s))}, s...) } // FIN, text
	ping := []byte{0x89, 0}
	closeFrame := []byte{0x88, 2, 0x03, 0xf4}
	type step struct {
		hold  bool
		frame []byte
	}
	tests := []struct {
		name  string
		steps []step
		want  [][]byte
	}{
		{"unheld writes pass through", []step{{false, text("a")}, {false, text("b")}},
			[][]byte{text("a"), text("b")}},
		{"a batch leaves in one write", []step{{true, text("a")}, {true, text("b")}, {false, text("c")}},
			[][]byte{slices.Concat(text("a"), text("b"), text("c"))}},
		{"a ping flushes what is held", []step{{true, text("a")}, {true, ping}, {true, text("b")}, {false, text("c")}},
			[][]byte{slices.Concat(text("a"), ping), slices.Concat(text("b"), text("c"))}},
		{"a close from elsewhere flushes", []step{{true, text("a")}, {true, closeFrame}},
			[][]byte{slices.Concat(text("a"), closeFrame)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := &writeLog{}
			c := &corkConn{Conn: log}
			for _, s := range tt.steps {
				c.Hold(s.hold)
				if n, err := c.Write(s.frame); n != len(s.frame) || err != nil {
					t.Fatalf("write: %d, %v", n, err)
				}
			}
			if !slices.EqualFunc(log.writes, tt.want, bytes.Equal) {
				t.Fatalf("socket writes %q, want %q", log.writes, tt.want)
			}
			if c.buf != nil {
				t.Fatal("a buffer is kept after the flush")
			}
		})
	}
}
