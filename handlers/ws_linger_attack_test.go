package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/store"
)

// closedLog counts the "connection closed" records per connection id: the close reason must be
// recorded exactly once per connection, however it ends.
type closedLog struct {
	mu     sync.Mutex
	closed map[string][]string // conn id -> reasons
}

func (l *closedLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *closedLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *closedLog) WithGroup(string) slog.Handler            { return l }
func (l *closedLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "connection closed" {
		return nil
	}
	var id, reason string
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "conn":
			id = a.Value.String()
		case "reason":
			reason = a.Value.String()
		}
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed[id] = append(l.closed[id], reason)
	return nil
}

// lingerServer is newTestServer with the connection log recorded.
func lingerServer(t *testing.T, cfg Config) (*Server, *store.Memory, *closedLog) {
	t.Helper()
	closed := &closedLog{closed: map[string][]string{}}
	s, log := newLoggedServer(t, cfg, slog.New(closed))
	return s, log, closed
}

// Connections whose writer lingers after a delivery end in every way a connection ends — the
// client leaves, sends a close frame, sends an action and leaves, pings and leaves, the server
// drains — right after the delivery, inside the linger. The writer must end (the connection is
// released only once no writer runs), everything is released, and each connection's end is
// recorded once.
func TestWebSocketLingerEndingsAttack(t *testing.T) {
	t.Parallel()
	endings := []struct {
		name string
		end  func(s *Server, c *websocket.Conn)
	}{
		{"client leaves", func(_ *Server, c *websocket.Conn) { c.Close() }},
		{"client close frame", func(_ *Server, c *websocket.Conn) {
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			c.Close()
		}},
		{"action then leaves", func(_ *Server, c *websocket.Conn) {
			msg, _ := json.Marshal(map[string]any{"action": "subscribe", "topics": []string{"notes/*"}, "since": "0"})
			_ = c.WriteMessage(websocket.TextMessage, msg)
			c.Close()
		}},
		{"ping then leaves", func(_ *Server, c *websocket.Conn) {
			_ = c.WriteControl(websocket.PingMessage, []byte("x"), time.Now().Add(time.Second))
			c.Close()
		}},
		{"server drains", func(s *Server, _ *websocket.Conn) { s.Drain() }},
	}
	for _, tc := range endings {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, log, closed := lingerServer(t, Config{MaxConnectionsPerIP: 100})
			ts := httptest.NewServer(s.Handler())
			defer ts.Close()
			const n = 10
			conns := make([]*websocket.Conn, n)
			for i := range conns {
				conns[i] = dialWS(t, ts, "", nil)
			}
			for range 3 { // several deliveries, so some connections are caught between rounds
				publishN(t, log, 1, "job.progress", progressData)
				for _, c := range conns {
					readJSON(t, c)
				}
			}
			publishN(t, log, 1, "job.progress", progressData)
			var wg sync.WaitGroup
			for _, c := range conns {
				wg.Go(func() {
					_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
					_, _, _ = c.ReadMessage() // the writer delivered and now lingers
					tc.end(s, c)
				})
			}
			wg.Wait()
			waitUntil(t, "every connection is released", func() bool {
				s.ws.mu.Lock()
				registered := len(s.ws.conns)
				s.ws.mu.Unlock()
				return s.hub.Len() == 0 && s.Active() == 0 && registered == 0
			})
			closed.mu.Lock()
			defer closed.mu.Unlock()
			if len(closed.closed) != n {
				t.Errorf("%d connections recorded as closed, want %d", len(closed.closed), n)
			}
			for id, reasons := range closed.closed {
				if len(reasons) != 1 {
					t.Errorf("connection %s closed %d times: %v", id, len(reasons), reasons)
				}
			}
		})
	}
}

// A client message or ping arriving while the writer lingers, or just as the linger runs out,
// is answered: the wake-up is not lost between the linger's end and the writer's.
func TestWebSocketMessageDuringLingerAttack(t *testing.T) {
	t.Parallel()
	ts, log := startHTTP(t, Config{})
	conn := dialWS(t, ts, "?topic=jobs/*", nil)
	_ = conn.SetReadDeadline(time.Time{}) // the reader below waits as long as the test
	pongs := make(chan string, 1)
	conn.SetPongHandler(func(data string) error { pongs <- data; return nil })
	frames := make(chan map[string]any, 16)
	go func() { // the client's reader: control frames are handled inside its reads
		defer close(frames)
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(msg, &m) != nil {
				m = map[string]any{"raw": string(msg)}
			}
			frames <- m
		}
	}()
	next := func(round int, what string) map[string]any {
		select {
		case m, ok := <-frames:
			if !ok {
				t.Fatalf("round %d: the connection ended waiting for %s", round, what)
			}
			return m
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: no %s", round, what)
		}
		return nil
	}
	actions := []map[string]any{
		{"action": "ping"},
		{"action": "subscribe", "topics": []string{"notes/*"}},
		{"action": "unsubscribe", "topics": []string{"notes/*"}},
	}
	for i := range 39 {
		publishN(t, log, 1, "job.progress", progressData)
		if m := next(i, "event"); m["type"] != "job.progress" {
			t.Fatalf("round %d: got %v, want the event", i, m)
		}
		// Positions the attack at once after a delivery (even rounds) or around the linger's
		// end (odd ones, ±30 ms); not a synchronisation.
		offset := time.Duration(i%13) * 5 * time.Millisecond
		if i%2 == 1 {
			offset += wsLinger - 30*time.Millisecond
		}
		time.Sleep(offset)
		if i%4 == 3 { // a WebSocket ping, answered by the writer too
			if err := conn.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-pongs:
			case <-time.After(10 * time.Second):
				t.Fatalf("round %d: no pong", i)
			}
			continue
		}
		a := actions[i%len(actions)]
		if err := conn.WriteJSON(a); err != nil {
			t.Fatal(err)
		}
		if m := next(i, "answer"); m["type"] == "error" || m["type"] == "job.progress" {
			t.Fatalf("round %d: %v answered %v", i, a, m)
		}
	}
}
