package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
	}
}

// TestWebSocketIdleHoldsOneGoroutine: an idle connection keeps its reader and nothing else — the
// writer runs only while there is something to write, and one heartbeat goroutine serves the
// server's connections. Not parallel: it counts the process's goroutines.
func TestWebSocketIdleHoldsOneGoroutine(t *testing.T) {
	ts, log := startHTTP(t, Config{MaxConnectionsPerIP: 100})
	const n = 20
	// Quiet: earlier tests' goroutines have ended (the parallel tests waiting to start are
	// parked and do not change the count).
	base := runtime.NumGoroutine()
	waitUntil(t, "the server is quiet", func() bool {
		prev := base
		time.Sleep(50 * time.Millisecond) // sample interval
		base = runtime.NumGoroutine()
		return base == prev
	})
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialWS(t, ts, "", nil)
	}
	// Deliver something to every connection, so each has run its writer at least twice.
	ids := publishN(t, log, 2, "job.progress", progressData)
	for _, c := range conns {
		for _, id := range ids {
			if m := readJSON(t, c); m["id"] != id.String() {
				t.Fatalf("got %v, want %v", m, id)
			}
		}
	}
	waitUntil(t, fmt.Sprintf("%d idle connections hold %d goroutines and the heartbeat", n, n), func() bool {
		return runtime.NumGoroutine()-base <= n+1
	})
}

// TestWebSocketClientPing: a ping from the client is answered with a pong carrying its data.
func TestWebSocketClientPing(t *testing.T) {
	t.Parallel()
	ts, _ := startHTTP(t, Config{})
	conn := dialWS(t, ts, "", nil)
	got := make(chan string, 1)
	conn.SetPongHandler(func(data string) error { got <- data; return nil })
	if err := conn.WriteControl(websocket.PingMessage, []byte("hello"), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _, _ = conn.ReadMessage() }() // control frames are handled inside reads
	select {
	case data := <-got:
		if data != "hello" {
			t.Fatalf("pong %q, want hello", data)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
}

// TestWebSocketActionsInterleaveWithEvents: a client that sends many actions without reading,
// while events are published, gets every answer and every event, each in order, once.
func TestWebSocketActionsInterleaveWithEvents(t *testing.T) {
	t.Parallel()
	ts, log := startHTTP(t, Config{})
	conn := dialWS(t, ts, "", nil)
	const actions, events = 300, 300
	published := make(chan []string, 1)
	go func() {
		var ids []string
		for _, id := range publishN(t, log, events, "job.progress", progressData) {
			ids = append(ids, id.String())
		}
		published <- ids
	}()
	go func() {
		for range actions {
			if err := conn.WriteJSON(map[string]string{"action": "ping"}); err != nil {
				return // the test fails below on the missing pongs
			}
		}
	}()
	var pongs int
	var got []string
	for pongs < actions || len(got) < events {
		m := readJSON(t, conn)
		switch {
		case m["type"] == "pong":
			pongs++
		case m["id"] != nil:
			got = append(got, m["id"].(string))
		default:
			t.Fatalf("unexpected frame %v", m)
		}
	}
	want := <-published
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d: %s, want %s", i, got[i], want[i])
		}
	}
}

// TestWebSocketReleasesEverything: however connections end — the client leaves mid-delivery,
// an action is pending, the server drains — the subscription, the slot and the registry entry
// are released, and the heartbeat goroutine ends with the last connection.
func TestWebSocketReleasesEverything(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{Heartbeat: time.Second, MaxConnectionsPerIP: 100})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	const n = 30
	var wg sync.WaitGroup
	for i := range n {
		conn := dialWS(t, ts, "", nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch i % 3 {
			case 0: // leaves while events flow
				_, _, _ = conn.ReadMessage()
			case 1: // leaves with actions unanswered
				for range 5 {
					msg, _ := json.Marshal(map[string]any{"action": "subscribe", "topics": []string{"jobs/*"}, "since": "0"})
					_ = conn.WriteMessage(websocket.TextMessage, msg)
				}
			}
			conn.Close()
		}()
	}
	publishN(t, log, 200, "job.progress", progressData)
	wg.Wait()
	waitUntil(t, "every connection is released", func() bool {
		s.ws.mu.Lock()
		registered, beating := len(s.ws.conns), s.ws.beating
		s.ws.mu.Unlock()
		return s.hub.Len() == 0 && s.Active() == 0 && registered == 0 && !beating
	})
}

// TestWebSocketPingFloodIsBounded: a client that pings without reading, while its socket is full,
// costs at most one pending pong — not a goroutine per ping. Not parallel: it counts goroutines.
func TestWebSocketPingFloodIsBounded(t *testing.T) {
	ts, log := startHTTP(t, Config{WriteTimeout: 5 * time.Second, MaxConnectionsPerIP: 100})
	// A small receive buffer, so that the server's writes soon block.
	small := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr // set before connecting, so that the window is small from the start
	}}
	d := websocket.Dialer{NetDialContext: small.DialContext}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	base := runtime.NumGoroutine()
	// Fill the sockets between server and client: the client does not read.
	big := `{"note_id":"` + jobID + `","title":"%d` + strings.Repeat("x", 480) + `"}`
	publishN(t, log, 5000, "note.created", big)
	const pings = 1000
	for range pings {
		if err := conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// The server reads the pings as they come; a goroutine per ping would pile up meanwhile.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n := runtime.NumGoroutine() - base; n > 50 {
			t.Fatalf("%d more goroutines after %d pings from a client that does not read", n, pings)
		}
	}
}

// smallWindow dials with a 4 KiB receive buffer, so that the server's writes soon wait for the
// client to read.
var smallWindow = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
		return err
	}
	return serr
}}

// smallSendBuffers makes the server's side of every accepted connection buffer little.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// TestWebSocketHeartbeat: a client that answers pings stays connected, through a long catch-up
// over a slow link during which its pings wait behind the delivery, and receives a ping every
// heartbeat; one that answers none is closed with 1008, not before two heartbeats after its
// first ping.
func TestWebSocketHeartbeat(t *testing.T) {
	t.Parallel()
	const hb = 400 * time.Millisecond
	s, log := newTestServer(t, Config{Heartbeat: hb, WriteTimeout: 5 * time.Second})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = smallSendBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close) // after the parallel subtests
	url := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws"
	title := `{"note_id":"` + jobID + `","title":"%d` + strings.Repeat("x", 480) + `"}`
	ids := publishN(t, log, 1000, "note.created", title)

	t.Run("answers", func(t *testing.T) {
		t.Parallel()
		conn, _, err := (&websocket.Dialer{NetDialContext: smallWindow.DialContext}).Dial(url+"?since=0", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		n := 0 // pings received; the handler runs inside this goroutine's reads
		conn.SetPingHandler(func(data string) error {
			n++
			return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		})
		if m := readJSON(t, conn); m["type"] != "subscribed" {
			t.Fatalf("first frame %v", m)
		}
		// Read slowly: 1000 events at one per 2 ms take five heartbeats or more. (Up to ~60 KiB
		// queued ahead of a ping take 0.2 s at this pace; at 5 ms per event, a loaded machine's
		// longer sleeps came near the two heartbeats a pong may take.)
		for i, id := range ids {
			time.Sleep(2 * time.Millisecond)
			if m := readJSON(t, conn); m["id"] != id.String() {
				t.Fatalf("event %d: %v, want %s", i, m, id)
			}
		}
		// Idle now: pings keep coming, and the connection stays.
		have := n
		for n < have+3 {
			if err := conn.WriteJSON(map[string]string{"action": "ping"}); err != nil {
				t.Fatal(err)
			}
			if m := readJSON(t, conn); m["type"] != "pong" {
				t.Fatalf("got %v, want pong", m)
			}
		}
	})

	t.Run("silent", func(t *testing.T) {
		t.Parallel()
		conn := dialWS(t, ts, "", nil)
		first := make(chan time.Time, 1)
		conn.SetPingHandler(func(string) error { // never answers
			select {
			case first <- time.Now():
			default:
			}
			return nil
		})
		wantClose(t, conn, websocket.ClosePolicyViolation)
		closed := time.Now()
		select {
		case at := <-first:
			if d := closed.Sub(at); d < 2*hb-hb/beatPhases-50*time.Millisecond {
				t.Fatalf("closed %v after the first ping, want about two heartbeats (%v)", d, 2*hb)
			}
		default:
			t.Fatal("closed without a ping")
		}
	})
}

// smallBufferServer serves s behind small send buffers (smallSendBuffers), so that a client that
// stops reading soon blocks the server's writer; closed at the test's end.
func smallBufferServer(t *testing.T, s *Server) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = smallSendBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// dialSmallWindow dials ts through a small receive window (smallWindow); closed at the test's end.
func dialSmallWindow(t *testing.T, ts *httptest.Server) net.Conn {
	t.Helper()
	c, err := smallWindow.DialContext(context.Background(), "tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
