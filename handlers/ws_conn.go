package handlers

import (
	"context"
	"errors"
	"io"
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
	// kick, while the writer lingers between rounds, wakes it for the next one.
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

// wsLinger is how long a writer that just delivered events waits for the next wake-up before it
// ends. Under load the next batch comes within it, and a writer started afresh would grow its
// stack again (7 % of the server's CPU at 10,000 x 20, where events come every 50 ms or later:
// docs/performance.md); an idle connection's writer, woken only for pings, never lingers.
const wsLinger = 250 * time.Millisecond

// write is the writer: it answers waiting client messages and delivers what the subscription
// has ready, round after round, until a round finds nothing new (and, after a delivery, no
// wake-up comes within wsLinger), then ends.
func (w *wsConn) write() {
	var kick chan struct{} // this writer's, for its lingers
	var linger *time.Timer
	for {
		ok := w.round()
		w.mu.Lock()
		if ok && !w.again && !w.stopped && w.delivered {
			if kick == nil {
				kick, linger = make(chan struct{}, 1), time.NewTimer(wsLinger)
			} else {
				linger.Reset(wsLinger)
			}
			w.kick = kick
			w.mu.Unlock()
			woken := lingerWait(kick, linger)
			if w.s.lingerEnded != nil {
				w.s.lingerEnded(woken)
			}
			w.mu.Lock()
			w.kick = nil
		}
		if ok && w.again && !w.stopped {
			w.again = false
			w.mu.Unlock()
			continue
		}
		w.writing = false
		last := w.readerGone
		w.mu.Unlock()
		if linger != nil {
			linger.Stop()
		}
		if last {
			w.cleanup()
		}
		return
	}
}

// lingerWait waits for a kick (true) or the linger's end (false), parked with 2 KiB of its
// stack in use: the collector halves the stack of a goroutine that uses under a quarter of it,
// so a writer parked shallow would lose the stack its delivery grew at every collection and copy
// it back at its next delivery (docs/performance.md). 2 KiB in use keeps an 8 KiB stack whole.
//
//go:noinline
func lingerWait(kick chan struct{}, linger *time.Timer) bool {
	var pad [2 << 10]byte
	keepStack(&pad)
	select {
	case <-kick:
		return true
	case <-linger.C:
		return false
	}
}

// keepStack makes its argument live on the caller's stack.
//
//go:noinline
func keepStack(*[2 << 10]byte) {}

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
	ep := eventSlices.Get().(*[]*event.Event) // pooled: an idle connection holds no batch
	defer func() { *ep = (*ep)[:0]; eventSlices.Put(ep) }()
	// Store reads during catch-up carry their own timeouts.
	events, err := w.sub.Next(context.Background(), (*ep)[:0])
	*ep = events
	cork, _ := w.conn.UnderlyingConn().(*corkConn)
	if cork != nil {
		defer cork.Hold(false)
	}
	w.delivered = len(events) > 0
	deadline := time.Now().Add(w.s.cfg.WriteTimeout) // one per batch: progressConn extends it while the client reads
	for i, e := range events {
		if cork != nil {
			cork.Hold(i < len(events)-1) // the batch's frames leave in one write (corkConn)
		}
		if w.pingDue.Load() { // a long page does not hold the ping back
			if !w.pingIfDue() {
				return false
			}
			deadline = time.Now().Add(w.s.cfg.WriteTimeout) // the ping set a deadline of its own
		}
		if !w.sendBy(wsFrame(e), deadline) {
			return false
		}
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

// read is the reader goroutine: it reads client frames and hands data messages to the writer.
// Its frame is kept small and its callees out of line, because it sits under gorilla's read
// for the whole life of the connection (see wsConn).
func (w *wsConn) read() {
	for {
		_, r, err := w.conn.NextReader() // parks here while the client is idle
		if err != nil {
			w.readFailed(err)
			break
		}
		if !w.handOver(r) {
			w.discard()
			break
		}
	}
	w.readerLeft() // not deferred: a defer's record would deepen the parked reader's frame
}

// discard reads and drops the client's frames after the connection stopped, until its close
// frame, a read error or awaitClose's deadline: the socket is then closed with nothing unread in
// it, so the client sees its end, not a reset (see awaitClose).
//
//go:noinline
func (w *wsConn) discard() {
	for {
		_, r, err := w.conn.NextReader()
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return
		}
	}
}

// Client messages waiting for the writer: at most wsInboxMessages, and beyond the first at most
// wsInboxBytes in all. A burst of actions (a UI changing its topics) is read at once, with the
// pongs among it; a client that sends more than that before its answers come is read no further
// until they do, and its memory stays bounded (two messages of the 64 KiB limit at most: the
// inbox's and the one the reader holds).
const (
	wsInboxMessages = 16
	wsInboxBytes    = 64 << 10
)

// handOver reads a client message and puts it in the writer's inbox, waiting while the inbox is
// full. false: the connection has stopped.
//
//go:noinline
func (w *wsConn) handOver(r io.Reader) bool {
	msg, err := readBody(r)
	if err != nil {
		w.readFailed(err)
		return false
	}
	w.missed.Store(0) // any frame shows the client is alive
	w.mu.Lock()
	for w.inboxFull(len(msg)) && !w.stopped {
		w.held.Store(true)
		w.taken.Wait()
	}
	w.held.Store(false)
	if w.stopped {
		w.mu.Unlock()
		return false
	}
	w.inbox = append(w.inbox, msg)
	w.inboxBytes += len(msg)
	w.mu.Unlock()
	w.wake()
	return true
}

// inboxFull reports whether a message of n bytes must wait for the writer. w.mu held.
func (w *wsConn) inboxFull(n int) bool {
	return len(w.inbox) >= wsInboxMessages || (len(w.inbox) > 0 && w.inboxBytes+n > wsInboxBytes)
}

// readBody reads a message's body on a goroutine of its own while the reader waits: growing the
// buffer for a large message takes more stack than the reader may ever use.
//
//go:noinline
func readBody(r io.Reader) ([]byte, error) {
	type body struct {
		msg []byte
		err error
	}
	ch := make(chan body, 1)
	go func() {
		msg, err := io.ReadAll(r)
		ch <- body{msg, err}
	}()
	b := <-ch
	return b.msg, b.err
}

// readFailed ends the connection with the close code that fits the read error.
//
//go:noinline
func (w *wsConn) readFailed(err error) {
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		w.stop(websocket.CloseMessageTooBig, telemetry.CloseFrameTooLarge, "")
	case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
		w.stop(websocket.CloseNormalClosure, telemetry.CloseClient, "")
	default:
		w.stop(websocket.CloseNormalClosure, telemetry.CloseReadFailed, "")
	}
}

// onPing leaves the answer to a client's ping to the writer: gorilla calls it from inside the
// read, where a write would deepen the reader's stack, and a goroutine per ping would let a
// client that pings without reading pile them up.
func (w *wsConn) onPing(data string) error {
	w.missed.Store(0)
	w.mu.Lock()
	w.pong, w.pongDue = []byte(data), true
	w.mu.Unlock()
	w.wake()
	return nil
}

// start sets the control-frame handlers and registers the connection with the server's set,
// whose heartbeat pings it and whose drain closes it.
func (w *wsConn) start() {
	w.conn.SetPongHandler(func(string) error { w.missed.Store(0); return nil })
	w.conn.SetPingHandler(w.onPing)
	w.s.ws.add(w.s, w)
}

// stop ends the connection: the first call's code and reason win. Any goroutine.
func (w *wsConn) stop(code int, reason telemetry.CloseReason, text string) {
	w.mu.Lock()
	if w.stopped {
		w.mu.Unlock()
		return
	}
	w.stopped, w.reason = true, reason
	w.taken.Broadcast()
	kick := w.kick
	w.mu.Unlock()
	nudge(kick) // a lingering writer ends now, not a linger later
	if text == "" {
		text = string(reason)
	}
	msg := websocket.FormatCloseMessage(code, text)
	if w.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)) != nil {
		_ = w.conn.Close() // the client takes nothing: this ends the reader's read and any blocked write
		return
	}
	w.awaitClose()
}

// wsCloseWait is how long a stopped connection waits for the client to answer its close frame.
const wsCloseWait = time.Second

// awaitClose lets the client answer the close frame before the socket closes: the socket's
// write side is shut (the client reads the close frame, then the end), and the reader reads on
// until the client's close frame comes, for at most wsCloseWait; readerLeft then closes the
// socket. A socket closed with the client's frames still unread in it is reset instead, and a
// reset can discard what the client has not read yet, the close frame included (a browser then
// sees 1006, not the code it should act on). gorilla writes nothing after the close frame.
func (w *wsConn) awaitClose() {
	cork, _ := w.conn.UnderlyingConn().(*corkConn)
	var half interface{ CloseWrite() error }
	if cork != nil {
		half, _ = cork.raw.(interface{ CloseWrite() error })
	}
	if half == nil || half.CloseWrite() != nil || w.conn.SetReadDeadline(time.Now().Add(wsCloseWait)) != nil {
		_ = w.conn.Close()
	}
}

// readerLeft records the reader's end; the connection is released once no writer runs.
func (w *wsConn) readerLeft() {
	w.stop(websocket.CloseNormalClosure, telemetry.CloseReadFailed, "") // no-op when already stopped
	_ = w.conn.Close()                                                  // after awaitClose's wait, if any
	w.mu.Lock()
	w.readerGone = true
	last := !w.writing
	w.mu.Unlock()
	if last {
		w.cleanup()
	}
}

// cleanup releases what the connection holds. It runs once, after the reader has left and while
// no writer runs (and none can start: the connection is stopped).
func (w *wsConn) cleanup() {
	w.sub.Close()
	if w.retryRead != nil {
		w.retryRead.Stop()
	}
	w.s.ws.remove(w)
	w.info.close(w.reason)
}
