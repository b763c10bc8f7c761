package handlers

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
)

// TestWebSocketLingerRandomWakeAttack: many connections, several publishers appending at random
// moments — so wake-ups land at every point of the writers' lingers, race each other and the
// lingers' clock, and come while a writer is between its linger and its next round. Every
// connection gets every event once, in log order (a lost wake-up would leave an event
// undelivered: the heartbeat is an hour away), and promptly: the median delivery latency stays
// far below wsLinger (a wake-up that only took effect when the linger ran out would cost about
// half of it on average).
//
// Fails when wake does not kick a lingering writer (`nudge(kick)` removed from wake): the
// events are still delivered — the writer sees w.again once its linger runs out — but the median
// latency is about wsLinger/2.
func TestWebSocketLingerRandomWakeAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{Heartbeat: time.Hour, MaxConnectionsPerIP: 100})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	const conns, publishers, each = 12, 3, 20
	cs := make([]*websocket.Conn, conns)
	for i := range cs {
		cs[i] = dialWS(t, ts, "", nil)
	}
	var mu sync.Mutex
	published := map[string]time.Time{}
	var order []event.ID
	var pub sync.WaitGroup
	for p := range publishers {
		pub.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(p), 3))
			for range each {
				// Hostile timing, not synchronisation: a random point of (or past) the linger.
				time.Sleep(time.Duration(rnd.Int64N(int64(wsLinger * 3 / 2))))
				mu.Lock() // the append and its time recorded together, in log order
				at := time.Now()
				id := publishN(t, log, 1, "job.progress", progressData)[0]
				published[id.String()] = at
				order = append(order, id)
				mu.Unlock()
			}
		})
	}
	type result struct {
		ids  []string
		lags []time.Duration
		err  error
	}
	results := make([]result, conns)
	var rd sync.WaitGroup
	for i, c := range cs {
		rd.Go(func() {
			r := &results[i]
			for len(r.ids) < publishers*each {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, msg, err := c.ReadMessage()
				got := time.Now()
				if err != nil {
					r.err = fmt.Errorf("conn %d after %d events: %w (a wake-up lost)", i, len(r.ids), err)
					return
				}
				m := string(msg)
				start := strings.Index(m, `"id":"`)
				if start < 0 {
					continue
				}
				id := m[start+6:]
				id = id[:strings.IndexByte(id, '"')]
				r.ids = append(r.ids, id)
				mu.Lock()
				at, ok := published[id]
				mu.Unlock()
				if ok { // recorded just after the append: a frame read first is no later than it
					r.lags = append(r.lags, got.Sub(at))
				}
			}
		})
	}
	pub.Wait()
	rd.Wait()
	want := make([]string, len(order))
	for i, id := range order {
		want[i] = id.String()
	}
	var lags []time.Duration
	for i, r := range results {
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !slices.Equal(r.ids, want) {
			t.Fatalf("conn %d got %d events %v…, want %d in log order %v…", i, len(r.ids), r.ids[:min(5, len(r.ids))], len(want), want[:5])
		}
		lags = append(lags, r.lags...)
	}
	slices.Sort(lags)
	median, worst := lags[len(lags)/2], lags[len(lags)-1]
	t.Logf("%d deliveries: median latency %v, worst %v", len(lags), median, worst)
	if median > wsLinger/5 {
		t.Fatalf("median delivery latency %v: wake-ups wait for the linger to run out", median)
	}
}

// wsGoroutines counts the goroutines running a WebSocket writer (fn "write") or any method of
// wsConn, by their stacks.
func wsGoroutines(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\ngoroutine ") {
		if strings.Contains(g, "handlers.(*wsConn)."+fn) {
			count++
		}
	}
	return count
}

// TestWebSocketWritersEndAttack: writers that delivered and linger end about wsLinger later while
// their connections stay open — an idle connection keeps its reader only — and once the
// connections end (clients vanishing mid-linger, clients closing, the server draining) no
// reader or writer is left. Not parallel: it counts the process's goroutines.
//
// Fails when the linger clock never ends a linger (`l.ended.Store(at)` removed from check): the
// writers of idle connections stay parked for good.
func TestWebSocketWritersEndAttack(t *testing.T) {
	s, log := newTestServer(t, Config{Heartbeat: time.Hour, MaxConnectionsPerIP: 100})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	waitUntil(t, "earlier tests' connections are gone", func() bool { return wsGoroutines("") == 0 })
	base := runtime.NumGoroutine()
	const n = 30
	cs := make([]*websocket.Conn, n)
	for i := range cs {
		cs[i] = dialWS(t, ts, "", nil)
	}
	for round := range 3 {
		publishN(t, log, 1+round, "job.progress", progressData)
		for _, c := range cs {
			for range 1 + round {
				readJSON(t, c) // delivered: the writer lingers now
			}
		}
		start := time.Now()
		waitUntil(t, "the idle connections' writers end", func() bool { return wsGoroutines("write(") == 0 })
		if took := time.Since(start); took > 4*wsLinger {
			t.Fatalf("round %d: writers ended %v after the delivery, want about %v", round, took, wsLinger)
		}
		if r := wsGoroutines(""); r != n {
			t.Fatalf("round %d: %d wsConn goroutines for %d idle connections, want one reader each", round, r, n)
		}
	}
	// The ends, each while the writers linger.
	publishN(t, log, 1, "job.progress", progressData)
	for _, c := range cs {
		readJSON(t, c)
	}
	for i, c := range cs {
		switch i % 3 {
		case 0:
			c.UnderlyingConn().Close() // vanishes: no close frame
		case 1:
			_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			go func() { _, _, _ = c.ReadMessage() }() // reads the server's close
		}
	}
	s.Drain() // the rest: the server closes them
	for i, c := range cs {
		if i%3 == 2 {
			go func() { _, _, _ = c.ReadMessage() }()
		}
	}
	waitUntil(t, "every connection's goroutines end", func() bool { return wsGoroutines("") == 0 })
	waitUntil(t, "the goroutine count settles", func() bool {
		// The heartbeat and the test server's idle goroutines may take a moment.
		return runtime.NumGoroutine() <= base+2
	})
}
