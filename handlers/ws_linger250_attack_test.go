package handlers

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// lingerLog records how the WebSocket writers' lingers end (Server.lingerEnded), and when.
type lingerLog struct {
	mu   sync.Mutex
	ends []lingerEnd
}

type lingerEnd struct {
	at    time.Time
	woken bool
}

func (l *lingerLog) record(woken bool) {
	l.mu.Lock()
	l.ends = append(l.ends, lingerEnd{time.Now(), woken})
	l.mu.Unlock()
}

// since returns how many lingers ended at or after t by a wake-up, and how many ran out.
func (l *lingerLog) since(t time.Time) (woken, ranOut int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.ends {
		switch {
		case e.at.Before(t):
		case e.woken:
			woken++
		default:
			ranOut++
		}
	}
	return woken, ranOut
}

// TestWebSocketWakeAtLingerEdgeAttack: the next event is published at every point of the
// writer's linger, including just before, at and just after it runs out, and each is delivered.
// The heartbeat is an hour away, so a wake-up lost between the linger's end and the writer's (or
// taken by a stale kick) would leave the event undelivered past the read deadline; and early in
// the linger, every lingering writer must be woken by the publish, not by its linger running out
// after it (which would deliver, late).
func TestWebSocketWakeAtLingerEdgeAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{Heartbeat: time.Hour, MaxConnectionsPerIP: 100})
	var lingers lingerLog
	s.lingerEnded = lingers.record
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	const conns = 6
	cs := make([]*websocket.Conn, conns)
	for i := range cs {
		cs[i] = dialWS(t, ts, "", nil)
	}
	offsets := []time.Duration{0, time.Millisecond, wsLinger / 2, wsLinger - 5*time.Millisecond,
		wsLinger - time.Millisecond, wsLinger, wsLinger + time.Millisecond, wsLinger + 5*time.Millisecond, 0}
	for _, off := range offsets {
		// Hostile timing, not synchronisation: the publish lands at this point of the linger.
		time.Sleep(off)
		published := time.Now()
		id := publishN(t, log, 1, "job.progress", progressData)[0]
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for i, c := range cs {
			wg.Go(func() {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, msg, err := c.ReadMessage()
				switch {
				case err != nil:
					errs <- fmt.Errorf("conn %d, event published %v into the linger: %w (wake-up lost)", i, off, err)
				case !containsID(msg, id.String()):
					errs <- fmt.Errorf("conn %d: frame %s, want event %s", i, msg, id)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if off < wsLinger/2 {
			// A linger that ran out after the publish missed its wake-up. (One that ran out
			// before it, on a stalled machine, did not; its writer started afresh.)
			if woken, ranOut := lingers.since(published); ranOut > 0 {
				t.Fatalf("event published %v into the linger: %d lingers ran out after it, %d were woken", off, ranOut, woken)
			}
		}
	}
}

func containsID(frame []byte, id string) bool {
	return strings.Contains(string(frame), `"id":"`+id+`"`)
}

// TestWebSocketEndDuringLingerPromptAttack: a connection that ends while its writer lingers —
// the client leaves, or the server drains (no spread) — is released without the linger running
// out: the writer is woken, it does not sit out its 250 ms.
func TestWebSocketEndDuringLingerPromptAttack(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(s *Server, cs []*websocket.Conn)
	}{
		{"client leaves", func(_ *Server, cs []*websocket.Conn) {
			for _, c := range cs {
				c.Close()
			}
		}},
		{"server drains", func(s *Server, cs []*websocket.Conn) {
			s.Drain()
			for _, c := range cs {
				go func() { _, _, _ = c.ReadMessage() }() // reads the close frame and answers it
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, log := newTestServer(t, Config{Heartbeat: time.Hour, MaxConnectionsPerIP: 100})
			var lingers lingerLog
			s.lingerEnded = lingers.record
			ts := httptest.NewServer(s.Handler())
			defer ts.Close()
			const n = 6
			cs := make([]*websocket.Conn, n)
			for i := range cs {
				cs[i] = dialWS(t, ts, "", nil)
			}
			publishN(t, log, 1, "job.progress", progressData)
			for _, c := range cs {
				readJSON(t, c) // each writer delivered: it lingers now
			}
			ended := time.Now()
			tc.end(s, cs)
			released := func() bool {
				s.ws.mu.Lock()
				registered := len(s.ws.conns)
				s.ws.mu.Unlock()
				return s.hub.Len() == 0 && s.Active() == 0 && registered == 0
			}
			waitUntil(t, "every connection is released", released)
			// A linger that ran out after the end missed the end's wake-up. (One that ran out
			// before it, on a stalled machine, had nothing to miss.)
			if woken, ranOut := lingers.since(ended); ranOut > 0 || woken+ranOut == 0 {
				t.Errorf("after the end %d lingers ran out and %d were woken; want none to run out", ranOut, woken)
			}
		})
	}
}
