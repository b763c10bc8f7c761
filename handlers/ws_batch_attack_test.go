package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// batchLayouts are batches as deliver hands them to corkConn: the first event's size, then the
// sizes of those that follow it in its write. First frames above gorilla's 4 KiB buffer reach
// corkConn in two writes; sizes sit on the length encodings' edges (125/126, 65535/65536) and
// around gorilla's buffer and corkMaxHeld.
var batchLayouts = [][]int{
	{5000, 8, 125, 126},
	{125, 126, 127},
	{4096, 4090, 4101},
	{65535, 65536},
	{70000, 9},
	{126, corkMaxHeld - 126},
	{8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8},
	{9000},
	{4097, 65535},
}

// batchPayload is the k-th message of the attack: its number, then filler up to size.
func batchPayload(k, size int) []byte {
	p := fmt.Appendf(nil, "%07d|", k)
	for len(p) < size {
		p = append(p, 'a'+byte(len(p)%26))
	}
	return p[:max(size, 8)]
}

// corkServer serves one WebSocket as the route does — gorilla over a corkConn over a
// progressConn (progressHijacker), with the route's write buffers — and hands the connection to
// serve.
func corkServer(t *testing.T, serve func(*websocket.Conn, *corkConn)) *httptest.Server {
	t.Helper()
	var pool sync.Pool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{ReadBufferSize: 128, WriteBufferSize: 4096, WriteBufferPool: &pool}
		conn, err := up.Upgrade(progressHijacker{w}, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		serve(conn, conn.UnderlyingConn().(*corkConn))
	}))
	t.Cleanup(ts.Close)
	return ts
}

// readWire reads what the server sends until it closes, in chunks of random sizes with an
// occasional pause (a hostile, uneven reader: the server's writes block part-way, which is when
// a control frame from another goroutine would find its way between them).
func readWire(t *testing.T, conn net.Conn, br io.Reader, seed uint64) []byte {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, 1))
	var wire []byte
	buf := make([]byte, 64<<10)
	_ = conn.SetReadDeadline(time.Now().Add(60 * time.Second))
	for {
		n, err := br.Read(buf[:1+rnd.IntN(len(buf)-1)])
		wire = append(wire, buf[:n]...)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				t.Logf("read ended: %v", err)
			}
			return wire
		}
		if rnd.IntN(64) == 0 {
			time.Sleep(time.Millisecond) // pacing the hostile reader, not synchronisation
		}
	}
}

// TestCorkBatchesWithConcurrentControlFramesAttack: while the writer writes batches through
// corkConn (its first frame through gorilla, the rest framed by corkConn), other goroutines write
// pings, pongs and finally a close, as the heartbeat, the reader and stop do. The client, reading
// unevenly, gets every data message once, whole and in order, every control frame whole between
// two data frames, and nothing after the close; when the close comes part-way through, the data
// before it is a prefix of what was written.
//
// Fails when corkConn takes a control frame for the batch's first frame (the opcode test
// `b[0]&0x08 != 0` removed from Write): a ping then carries the batch's tail, ahead of its first
// frame, and the data arrives out of order (and -race reports tail read by two goroutines).
func TestCorkBatchesWithConcurrentControlFramesAttack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		rounds     int
		closeAfter int // control frames before the close; 0: the writer closes when done
	}{
		{"close at the end", 6, 0},
		{"close part-way", 40, 40},
		{"close early", 40, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var want [][]byte // every data message the writer hands gorilla or corkConn, in order
			k := 0
			var batches [][][]byte
			for range tc.rounds {
				for _, layout := range batchLayouts {
					var b [][]byte
					for _, size := range layout {
						b = append(b, batchPayload(k, size))
						k++
					}
					batches = append(batches, b)
					want = append(want, b...)
				}
			}
			ts := corkServer(t, func(conn *websocket.Conn, cork *corkConn) {
				stop := make(chan struct{})
				controls := make(chan struct{})
				go func() { // other goroutines' control frames
					defer close(controls)
					for i := 1; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						kind := websocket.PingMessage
						if i%3 == 0 {
							kind = websocket.PongMessage
						}
						if tc.closeAfter > 0 && i == tc.closeAfter {
							kind = websocket.CloseMessage
						}
						var data []byte
						if kind == websocket.CloseMessage {
							data = websocket.FormatCloseMessage(websocket.CloseTryAgainLater, "control")
						} else {
							data = fmt.Appendf(nil, "c%06d", i)
						}
						if err := conn.WriteControl(kind, data, time.Now().Add(10*time.Second)); err != nil || kind == websocket.CloseMessage {
							return
						}
						if i%4 == 0 {
							time.Sleep(100 * time.Microsecond) // spreads the control frames over the batches
						}
					}
				}()
				for _, b := range batches {
					tail := make([]*event.Event, len(b)-1)
					for i, p := range b[1:] {
						tail[i] = &event.Event{JSON: p}
					}
					_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
					cork.Follow(tail)
					err := conn.WriteMessage(websocket.TextMessage, b[0])
					cork.Follow(nil)
					if err != nil {
						break // the close was sent: gorilla writes nothing more
					}
				}
				close(stop)
				<-controls
				_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(10*time.Second))
			})
			conn, err := net.Dial("tcp", ts.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			br := rawWS(t, conn, "/")
			wire := readWire(t, conn, br, uint64(tc.closeAfter))
			var got [][]byte
			lastControl, closes := 0, 0
			for rest := wire; len(rest) > 0; {
				if closes > 0 {
					t.Fatalf("%d bytes after the close frame", len(rest))
				}
				f, n, err := parseFrame(rest)
				if err != nil || n == 0 {
					t.Fatalf("after %d data frames: %v (a frame cut short or spliced; %d bytes left)", len(got), err, len(rest))
				}
				rest = rest[n:]
				switch f.op {
				case websocket.TextMessage:
					got = append(got, f.payload)
				case websocket.CloseMessage:
					closes++
				default:
					var c int
					if _, err := fmt.Sscanf(string(f.payload), "c%06d", &c); err != nil || c <= lastControl {
						t.Fatalf("control frame %q after c%06d: mangled or out of order", f.payload, lastControl)
					}
					lastControl = c
				}
			}
			if closes != 1 {
				t.Fatalf("%d close frames", closes)
			}
			if len(got) > len(want) || (tc.closeAfter == 0 && len(got) != len(want)) {
				t.Fatalf("%d data messages, want %d", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("data message %d: %d bytes %.20q, want %d bytes %.20q", i, len(got[i]), got[i], len(want[i]), want[i])
				}
			}
			t.Logf("%d of %d data messages, %d control frames, %d bytes", len(got), len(want), lastControl, len(wire))
		})
	}
}

// TestCorkConnFramesResyncInTailAttack: a resync control event is framed as wsFrame frames it —
// with the position delivery continues from — wherever it falls in a batch, also among the
// events corkConn frames itself: a client that drops right after it must be able to resume.
//
// Fails when corkConn frames the tail's raw JSON (`appendTextFrame(*c.buf, e.JSON)` in append):
// the resync arrives without its position.
func TestCorkConnFramesResyncInTailAttack(t *testing.T) {
	t.Parallel()
	resync := &event.Event{ID: event.ID{MS: 1700000000123, Seq: 7}, Control: true, Type: streams.TypeResync,
		JSON: []byte(`{"type":"resync","reason":"truncated"}`)}
	ev := &event.Event{ID: event.ID{MS: 1700000000124}, JSON: []byte(`{"id":"1700000000124-0"}`)}
	for _, tc := range []struct {
		name string
		tail []*event.Event
	}{
		{"resync first in the tail", []*event.Event{resync, ev}},
		{"resync last in the tail", []*event.Event{ev, resync}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := &writeLog{}
			c := &corkConn{Conn: log}
			first := appendTextFrame(nil, bytes.Repeat([]byte("f"), 5000))
			c.Follow(tc.tail)
			for _, part := range [][]byte{first[:4100], first[4100:]} { // as gorilla writes it
				if _, err := c.Write(part); err != nil {
					t.Fatal(err)
				}
			}
			want := slices.Clone(first)
			for _, e := range tc.tail {
				want = appendTextFrame(want, wsFrame(e))
			}
			if len(log.writes) != 1 || !bytes.Equal(log.writes[0], want) {
				t.Fatalf("socket writes %q, want one write %q", trim(log.writes), trim([][]byte{want}))
			}
			if !bytes.Contains(log.writes[0], []byte(`"position":"1700000000123-7"`)) {
				t.Fatal("the resync in the tail lacks its position")
			}
		})
	}
}
