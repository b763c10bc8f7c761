package handlers

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/telemetry"
)

// beatPhases is how many parts a heartbeat interval is cut into: each connection is pinged in
// one of them, so pings (and the writers they start) are spread over the interval rather than
// sent to every connection at once, and token expiry is checked every interval/beatPhases.
const beatPhases = 16

// wsConns is the set of open WebSocket connections and their heartbeat. An idle WebSocket
// connection has no goroutine and no timer of its own (see wsConn): one heartbeat goroutine per
// server — running while any connection is open — pings them, closes the silent ones and those
// whose token expired, and Drain finds them here. A map entry costs far less than a timer and a
// drain callback per connection. Safe for concurrent use.
type wsConns struct {
	mu      sync.Mutex
	conns   map[*wsConn]struct{}
	next    uint8 // the phase of the next connection added
	beating bool  // the heartbeat goroutine runs
}

// add registers w and starts the heartbeat if it is not running. If the server is draining
// already, w is scheduled to close like the others: Drain sets the signal before it walks the
// set, so a connection added meanwhile is not missed.
func (c *wsConns) add(s *Server, w *wsConn) {
	c.mu.Lock()
	if c.conns == nil {
		c.conns = make(map[*wsConn]struct{})
	}
	c.conns[w] = struct{}{}
	w.phase = c.next % beatPhases
	c.next++
	start := !c.beating
	c.beating = true
	c.mu.Unlock()
	if start {
		go c.beat(s.cfg.Heartbeat)
	}
	if s.isDraining() {
		w.drain()
	}
}

func (c *wsConns) remove(w *wsConn) {
	c.mu.Lock()
	delete(c.conns, w)
	c.mu.Unlock()
}

// beat is the heartbeat goroutine. Every interval/beatPhases it pings the connections of one
// phase and checks every token's expiry; it ends once no connection is left. It never blocks on
// a connection: writes go to the connections' writers, closes to goroutines of their own.
func (c *wsConns) beat(interval time.Duration) {
	tick := time.NewTicker(max(interval/beatPhases, time.Millisecond))
	defer tick.Stop()
	for phase := uint8(0); ; phase = (phase + 1) % beatPhases {
		now := <-tick.C
		c.mu.Lock()
		if len(c.conns) == 0 {
			c.beating = false
			c.mu.Unlock()
			return
		}
		for w := range c.conns {
			w.beat(now, w.phase == phase)
		}
		c.mu.Unlock()
	}
}

// drain schedules every connection's close (1012) at its own point of the drain spread.
func (c *wsConns) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.conns {
		w.drain()
	}
}

func (c *wsConns) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.conns)
}

// closeAll closes every connection's socket, ending its reader and any write at once; one not
// stopped yet is recorded as stopped by the shutdown.
func (c *wsConns) closeAll() {
	c.mu.Lock()
	ws := make([]*wsConn, 0, len(c.conns))
	for w := range c.conns {
		ws = append(ws, w)
	}
	c.mu.Unlock()
	for _, w := range ws {
		w.abort(telemetry.CloseShutdown)
	}
}

// drain closes w with 1012 at a random point of the drain spread, so that clients do not
// reconnect as one wave. Idempotent in effect: a second close is a no-op.
func (w *wsConn) drain() {
	time.AfterFunc(w.s.drainAfter(), func() { w.stop(websocket.CloseServiceRestart, telemetry.CloseShutdown, "") })
}

// beat is w's share of a heartbeat tick, called by the heartbeat goroutine with the set locked;
// it must not block. On w's ping tick it closes a client that answered neither of the last two
// pings written to it (1008 "ping_timeout": two heartbeats after the first of them), and
// otherwise asks the writer for a ping unless one is still waiting to be written. Every tick it
// closes a connection whose token has expired (1008 "token expired": the client reconnects with
// a fresh token and its last id, docs/api.md#token-expiry-on-live-connections).
func (w *wsConn) beat(now time.Time, pingTick bool) {
	expired := w.principal != nil && !now.Before(w.principal.Expires)
	if !expired && !pingTick {
		return
	}
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	switch {
	case expired:
		w.mu.Unlock()
		go w.stop(websocket.ClosePolicyViolation, telemetry.CloseAuthExpired, "token expired")
	case w.missed.Load() >= 2:
		w.mu.Unlock()
		go w.stop(websocket.ClosePolicyViolation, telemetry.ClosePingTimeout, "")
	case w.pingDue.Load():
		w.mu.Unlock() // the last ping waits behind a delivery; the writer's write timeout bounds it
	default:
		w.mu.Unlock()
		w.pingDue.Store(true)
		w.wake()
	}
}
