package handlers

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
)

// wsConn is one WebSocket connection after the upgrade, owned by its reader and writer
// goroutines: the reader only reads and hands client messages over; the writer, started only
// while there is work and at most one at a time, is the only goroutine that writes data frames
// and touches the subscription. The server's heartbeat and drain find it in wsConns. Whichever of
// reader and writer leaves last releases it (cleanup). Why, and what an idle one holds:
// docs/architecture.md#websocket-connections.
type wsConn struct {
	s         *Server
	conn      *websocket.Conn
	sub       *streams.Subscription
	info      *connInfo
	principal *auth.Principal // the token's; nil with auth off
	missed    atomic.Int32    // pings written since the client's last frame
	// pingDue: the server's heartbeat asks the writer for a ping. Atomic, so that the writer can
	// look between the frames of a long delivery, not only between rounds.
	pingDue atomic.Bool

	phase uint8 // the part of the heartbeat interval in which it is pinged (wsConns)
	// delivered: the writer's last round delivered events. Writer only.
	delivered bool

	// Owned by the writer (one at a time; mu orders the hand-over between writer runs).
	asked     event.Filter // the filter as the client asked for it, before the topic grants
	retryRead *time.Timer  // set while the store fails during catch-up

	// held: the reader waits for room in the inbox, so the client's pongs may sit unread behind
	// its messages. Pings written meanwhile are not counted as missed (pingIfDue).
	held atomic.Bool

	mu sync.Mutex
	// taken is signalled when the writer takes a message from the inbox, or the connection
	// stops: the reader waits on it while the inbox is full, so a client that sends faster than
	// its messages are answered is read no further until they are.
	taken      sync.Cond
	inbox      [][]byte // client messages for the writer, oldest first
	inboxBytes int
	// pong is the data of the client's latest ping, for the writer to answer: one pong in
	// flight at most, however fast a client pings (RFC 6455 §5.5.3 allows answering the latest).
	pong    []byte
	pongDue bool
	writing bool // a writer runs (or the handler is still setting up, before the first one)
	again   bool // woken while writing: run another round before ending
	// kick, while the writer lingers between rounds, wakes it for the next one (lingerClock).
	kick       chan struct{}
	stopped    bool
	readerGone bool
	reason     telemetry.CloseReason // why it ended: the first stop's
}

func newWSConn(s *Server, principal *auth.Principal, asked event.Filter) *wsConn {
	w := &wsConn{s: s, principal: principal, asked: asked, writing: true} // writing: see websocket
	w.taken.L = &w.mu
	return w
}

// wake starts the writer unless it runs already, in which case the writer runs another round.
// Called by the hub's dispatch with the hub locked, by the reader and by the heartbeat: never
// blocks. Callers set what the writer is to do (pending, pong, pingDue) before they call it.
func (w *wsConn) wake() {
	w.mu.Lock()
	if w.writing || w.stopped {
		w.again = true
		kick := w.kick
		w.mu.Unlock()
		nudge(kick)
		return
	}
	w.writing = true
	w.mu.Unlock()
	go w.write()
}

// nudge wakes a lingering writer through its kick channel, if it has one, without blocking.
func nudge(kick chan struct{}) {
	select {
	case kick <- struct{}{}: // a nil channel is never ready
	default:
	}
}

// write is the writer: it answers waiting client messages and delivers what the subscription
// has ready, round after round, until a round finds nothing new (and, after a delivery, no
// wake-up comes within wsLinger), then ends.
func (w *wsConn) write() {
	var clock *lingerClock // this run's, for its lingers
	for {
		ok := w.round()
		w.mu.Lock()
		if ok && !w.again && !w.stopped && w.delivered {
			if clock == nil {
				clock = newLingerClock()
			}
			at := clock.start()
			w.kick = clock.kick
			w.mu.Unlock()
			woken := w.linger(clock, at) // returns with w.mu held
			clock.finish()
			w.kick = nil
			if w.s.lingerEnded != nil {
				w.mu.Unlock()
				w.s.lingerEnded(woken)
				w.mu.Lock()
			}
		}
		if ok && w.again && !w.stopped {
			w.again = false
			w.mu.Unlock()
			continue
		}
		w.writing = false
		last := w.readerGone
		w.mu.Unlock()
		if clock != nil {
			clock.stop()
		}
		if last {
			w.cleanup()
		}
		return
	}
}

// round sends a due pong and ping, answers the waiting client message, if any, and delivers one
// batch. false: the connection is ending. It delivers in every round, so a client that keeps
// sending actions still gets its events.
func (w *wsConn) round() bool {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	var msg []byte
	has := len(w.inbox) > 0
	if has {
		msg = w.inbox[0]
		w.inbox[0] = nil
		w.inbox = w.inbox[1:]
		w.inboxBytes -= len(msg)
		if len(w.inbox) == 0 {
			w.inbox = nil // an idle connection holds no inbox
		} else {
			w.again = true // the next message in the next round
		}
		w.taken.Signal()
	}
	pong, pongDue := w.pong, w.pongDue
	w.pong, w.pongDue = nil, false
	w.mu.Unlock()
	if pongDue && !w.sendControl(websocket.PongMessage, pong) {
		return false
	}
	if !w.pingIfDue() {
		return false
	}
	if has && !w.handle(msg) {
		return false
	}
	return w.deliver()
}

// pingIfDue sends the ping the heartbeat asked for, if any, and counts it as unanswered until
// the client's next frame. Only pings written count, so a client whose pings wait behind a long
// delivery is not taken for silent; nor do pings written while the reader waits for room in the
// inbox, since the client's answer may be behind the messages it cannot read yet (the client has
// just shown it is alive, and one that then stops reading is closed by the write timeout).
func (w *wsConn) pingIfDue() bool {
	if !w.pingDue.Swap(false) {
		return true
	}
	if !w.sendControl(websocket.PingMessage, nil) {
		return false
	}
	if !w.held.Load() {
		w.missed.Add(1)
	}
	return true
}

// sendControl writes a ping or a pong. One that cannot be written within the write timeout means
// the client reads nothing: it is closed as a slow consumer.
func (w *wsConn) sendControl(kind int, data []byte) bool {
	err := w.conn.WriteControl(kind, data, time.Now().Add(w.s.cfg.WriteTimeout))
	if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		w.stop(websocket.CloseTryAgainLater, telemetry.CloseWriteFailed, "")
		return false
	}
	return true
}

// deliver writes what the subscription has ready. A store error while catching up keeps the
// connection and wakes the writer again a second later.
func (w *wsConn) deliver() bool {
	// Pooled, so an idle connection holds no batch; cleared, so the pool keeps no event alive.
	ep := eventSlices.Get().(*[]*event.Event)
	defer func() { clear(*ep); *ep = (*ep)[:0]; eventSlices.Put(ep) }()
	// Store reads during catch-up carry their own timeouts.
	events, err := w.sub.Next(context.Background(), (*ep)[:0])
	*ep = events
	cork, _ := w.conn.UnderlyingConn().(*corkConn)
	w.delivered = len(events) > 0
	deadline := time.Now().Add(w.s.cfg.WriteTimeout) // one per batch: progressConn extends it while the client reads
	for i := 0; i < len(events); {
		if w.pingDue.Load() { // a long page does not hold the ping back
			if !w.pingIfDue() {
				return false
			}
			deadline = time.Now().Add(w.s.cfg.WriteTimeout) // the ping set a deadline of its own
		}
		j := i + 1
		if cork != nil { // the next events follow this one in its write, up to about corkMaxHeld
			for size := len(events[i].JSON); j < len(events) && size+len(events[j].JSON) <= corkMaxHeld; j++ {
				size += len(events[j].JSON)
			}
			cork.Follow(events[i+1 : j])
		}
		ok := w.sendBy(wsFrame(events[i]), deadline)
		if cork != nil {
			if cork.Pending() {
				j = i + 1 // not batched (see corkConn.Write): the rest go on one by one
			}
			cork.Follow(nil)
		}
		if !ok {
			return false
		}
		i = j
	}
	w.info.delivered(events, err)
	if err != nil {
		w.s.log.Warn("catch-up read failed; retrying", "err", err)
		if w.retryRead == nil {
			w.retryRead = time.AfterFunc(time.Second, w.wake)
		} else {
			w.retryRead.Reset(time.Second)
		}
	}
	return true
}

// wsFrame is the frame carrying e: its JSON, and for a resync also the position delivery continues
// from (SSE sends it as the id: line), so a client that drops right after resumes from there.
func wsFrame(e *event.Event) []byte {
	if !e.Control || e.Type != streams.TypeResync || len(e.JSON) < 2 {
		return e.JSON
	}
	b := make([]byte, 0, len(e.JSON)+48)
	b = append(b, e.JSON[:len(e.JSON)-1]...)
	b = append(b, `,"position":"`...)
	b = e.ID.AppendTo(b)
	return append(b, `"}`...)
}

// send writes one text frame with a write deadline. A client that accepts nothing for the write
// timeout is closed with 1013 and resumes later with its last id; one that keeps reading is not,
// however long a large frame takes it (progressConn).
func (w *wsConn) send(frame []byte) bool {
	return w.sendBy(frame, time.Now().Add(w.s.cfg.WriteTimeout))
}

// sendBy is send with the deadline given.
func (w *wsConn) sendBy(frame []byte, deadline time.Time) bool {
	_ = w.conn.SetWriteDeadline(deadline)
	if err := w.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		w.stop(websocket.CloseTryAgainLater, telemetry.CloseWriteTimeout, "")
		return false
	}
	return true
}

// start sets the control-frame handlers and registers the connection with the server's set,
// whose heartbeat pings it and whose drain closes it.
func (w *wsConn) start() {
	w.conn.SetPongHandler(func(string) error { w.missed.Store(0); return nil })
	w.conn.SetPingHandler(w.onPing)
	w.s.ws.add(w.s, w)
}
