package handlers

import (
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsConns is the set of open WebSocket connections. An idle WebSocket connection has no
// goroutine that could select on the drain signal (see wsConn), so Drain finds them here. One
// map entry costs far less than a per-connection drain callback. Safe for concurrent use.
type wsConns struct {
	mu    sync.Mutex
	conns map[*wsConn]struct{}
}

// add registers w. If the server is draining already, w is scheduled to close like the others:
// Drain sets the signal before it walks the set, so a connection added meanwhile is not missed.
func (c *wsConns) add(s *Server, w *wsConn) {
	c.mu.Lock()
	if c.conns == nil {
		c.conns = make(map[*wsConn]struct{})
	}
	c.conns[w] = struct{}{}
	c.mu.Unlock()
	if s.isDraining() {
		w.drain()
	}
}

func (c *wsConns) remove(w *wsConn) {
	c.mu.Lock()
	delete(c.conns, w)
	c.mu.Unlock()
}

// drain schedules every connection's close (1012) at its own point of the drain spread.
func (c *wsConns) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.conns {
		w.drain()
	}
}

// drain closes w with 1012 at a random point of the drain spread, so that clients do not
// reconnect as one wave. Idempotent in effect: a second close is a no-op.
func (w *wsConn) drain() {
	time.AfterFunc(w.s.drainAfter(), func() { w.stop(websocket.CloseServiceRestart, "shutdown", "") })
}
