package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/telemetry"
)

// writeSizes records the size of every write that reaches the server's sockets.
type writeSizes struct {
	mu    sync.Mutex
	sizes []int
}

type sizeListener struct {
	net.Listener
	rec *writeSizes
}

func (l sizeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return sizeConn{c, l.rec}, nil
}

type sizeConn struct {
	net.Conn
	rec *writeSizes
}

func (c sizeConn) Write(b []byte) (int, error) {
	c.rec.mu.Lock()
	c.rec.sizes = append(c.rec.sizes, len(b))
	c.rec.mu.Unlock()
	return c.Conn.Write(b)
}

// TestWebSocketBatchBytesExactAttack: a catch-up page of events at the length encodings' edges
// (payloads of 65535/65536 bytes; 125/126 only if a note's envelope is short enough — it is about
// 200 bytes, so TestCorkBatchesWithConcurrentControlFramesAttack covers those), around gorilla's
// 4 KiB buffer and corkMaxHeld,
// reaches a raw client as exactly the frames gorilla would write for each event alone, byte for
// byte, in log order; and no write to the socket holds much more than corkMaxHeld beyond its
// first frame (deliver splits a page into batches).
//
// Fails when deliver does not split batches (the `size+len(events[j].JSON) <= corkMaxHeld`
// bound dropped from its loop): the whole page leaves in one write of about 1.6 MB. Fails too
// when deliver skips or repeats an event at a batch's edge (`i = j + 1`, or Follow(events[i:j])).
func TestWebSocketBatchBytesExactAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{})
	rec := &writeSizes{}
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = sizeListener{ts.Listener, rec}
	ts.Start()
	t.Cleanup(ts.Close)

	probe := bigNotes(t, log, 1, 1000)
	page, err := log.Read(context.Background(), event.ID{}, 10)
	if err != nil || len(page.Events) != 1 || page.Events[0].ID != probe[0] {
		t.Fatalf("probe: %v %v", page, err)
	}
	envelope := len(page.Events[0].JSON) - 1000
	t.Logf("envelope %d bytes", envelope)
	var titles []int
	edges := []int{4096, 65535, 65536, corkMaxHeld}
	if envelope < 120 {
		edges = append(edges, 125, 126)
	}
	for _, edge := range edges {
		for d := -3; d <= 3; d++ {
			titles = append(titles, edge-envelope+d)
			titles = append(titles, 1+(edge*7+d*13)%3000) // small ones between, to fill tails
		}
	}
	for range 40 {
		titles = append(titles, 9000) // far more than one batch's worth
	}
	for _, n := range titles {
		bigNotes(t, log, 1, max(n, 1))
	}
	page, err = log.Read(context.Background(), event.ID{}, len(titles)+1)
	if err != nil || len(page.Events) != len(titles)+1 {
		t.Fatalf("read back %d events: %v", len(page.Events), err)
	}
	var want []byte
	largest, seen := 0, map[int]bool{}
	for _, e := range page.Events {
		want = appendTextFrame(want, e.JSON)
		largest = max(largest, len(e.JSON))
		seen[len(e.JSON)] = true
	}
	for _, edge := range edges {
		if !seen[edge] && edge != 4096 && edge != corkMaxHeld {
			t.Fatalf("no event of exactly %d bytes: the test misses an edge", edge)
		}
	}

	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := rawWS(t, conn, "/api/v1/ws?since=0")
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	if f, err := readRawFrame(br); err != nil || !bytes.Contains(f.payload, []byte(`"subscribed"`)) {
		t.Fatalf("first frame %q, %v", f.payload, err)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("reading %d bytes: %v", len(want), err)
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && got[i] == want[i] {
			i++
		}
		f, _, perr := parseFrame(got)
		t.Fatalf("byte %d of %d differs (first frame %d bytes, %v)", i, len(want), len(f.payload), perr)
	}
	bound := largest + 14 + corkMaxHeld + 4096 // a first frame, and a tail of at most corkMaxHeld
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, n := range rec.sizes {
		if n > bound {
			t.Fatalf("socket write %d holds %d bytes, more than %d: the page was not split into batches", i, n, bound)
		}
	}
}

// TestWebSocketTimeoutMidBatchAttack: a client that stops reading part-way through a catch-up
// whose batches each have a first frame larger than gorilla's buffer (two writes into corkConn)
// and a tail framed by corkConn. Once a batch's write is cut part-way, nothing may follow on the
// wire — no later batch, no frame of the tail, no 1013 close frame inside the unfinished frame —
// and the whole frames before it are the log's events in order, each once.
//
// Fails when corkConn hides a failed write from gorilla (append returning `len(b), nil` on the
// socket's error): gorilla goes on writing batches after the cut one, the server never stops the
// connection for the timeout, and what reaches the client is a frame with later ones spliced in.
func TestWebSocketTimeoutMidBatchAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{WriteTimeout: 300 * time.Millisecond})
	ts := smallBufferServer(t, s)
	var ids []event.ID
	for range 30 { // ~1 MB, far past every buffer, in the log's 1000 events
		ids = append(ids, bigNotes(t, log, 1, 5000)...) // a first frame in two writes
		ids = append(ids, bigNotes(t, log, 20, 300)...) // its tail
		ids = append(ids, bigNotes(t, log, 1, 9000)...)
		ids = append(ids, bigNotes(t, log, 10, 1200)...) // every batch has a tail, but a page's last
	}
	conn := dialSmallWindow(t, ts)
	br := rawWS(t, conn, "/api/v1/ws?since=0")
	w := onlyConn(t, s)
	stopped := func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.stopped
	}
	// The client stalls until the server has given up, or for at most a second (about three
	// write timeouts: pacing the hostile client), then reads on: had the server written on after
	// the cut batch, the client would now get those writes.
	for deadline := time.Now().Add(time.Second); !stopped() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	wire, readErr := io.ReadAll(br) // checked after the frames: a splice says more than a timeout
	rest, events := wire, 0
	for len(rest) > 0 {
		f, n, err := parseFrame(rest)
		if err != nil {
			t.Fatalf("after %d events: %v", events, err)
		}
		if n == 0 {
			break // the unfinished frame: it must be the last bytes
		}
		rest = rest[n:]
		if f.op != websocket.TextMessage {
			t.Fatalf("after %d events, a frame of opcode %d (%q): the batch's write was not the last", events, f.op, f.payload)
		}
		var e struct {
			Type string `json:"type"`
			ID   string `json:"id"`
		}
		if err := json.Unmarshal(f.payload, &e); err != nil {
			t.Fatalf("after %d events, not one JSON message: %.60q", events, f.payload)
		}
		if e.Type == "subscribed" && events == 0 {
			continue
		}
		if events >= len(ids) || e.ID != ids[events].String() {
			t.Fatalf("event %d is %s, want %s (a gap or a repeat)", events, e.ID, ids[min(events, len(ids)-1)])
		}
		events++
	}
	closeFrame := append([]byte{0x88, 0}, websocket.FormatCloseMessage(websocket.CloseTryAgainLater, string(telemetry.CloseWriteTimeout))...)
	closeFrame[1] = byte(len(closeFrame) - 2)
	if bytes.Contains(rest, closeFrame[:4]) {
		t.Fatalf("after %d whole events, the unfinished frame of %d bytes holds the close frame", events, len(rest))
	}
	if readErr != nil && !errors.Is(readErr, net.ErrClosed) && !strings.Contains(readErr.Error(), "reset") {
		t.Fatalf("reading: %v after %d bytes (%d whole events)", readErr, len(wire), events)
	}
	if !stopped() {
		t.Fatal("the server did not stop the connection for the write timeout")
	}
	if events == len(ids) {
		t.Fatal("the client got everything: the write timeout never cut a batch (the test proves nothing)")
	}
	t.Logf("%d of %d events whole, %d bytes of an unfinished frame", events, len(ids), len(rest))
}
