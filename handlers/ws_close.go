package handlers

import (
	"errors"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/telemetry"
)

// markStopped records the stop and its reason, unless the connection was stopped already
// (false), and lets go of a held reader and a lingering writer. Any goroutine.
func (w *wsConn) markStopped(reason telemetry.CloseReason) bool {
	w.mu.Lock()
	first := !w.stopped
	if first {
		w.stopped, w.reason = true, reason
		w.taken.Broadcast()
	}
	kick := w.kick
	w.mu.Unlock()
	nudge(kick) // a lingering writer ends now, not a linger later
	return first
}

// stop ends the connection: the first call's code and reason win. Any goroutine.
func (w *wsConn) stop(code int, reason telemetry.CloseReason, text string) {
	if !w.markStopped(reason) {
		return
	}
	if text == "" {
		text = string(reason)
	}
	msg := websocket.FormatCloseMessage(code, text)
	// ErrCloseSent: gorilla has written a close frame itself (1009 for a message over the read
	// limit, 1002 for a protocol error, the echo of the client's close), so the client takes
	// frames: it gets the handshake too. Closing at once reset the socket with the rest of an
	// oversized message unread, which could discard that close frame
	// (TestWebSocketTooBigCloseHandshakeReview).
	if err := w.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second)); err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		_ = w.conn.Close() // the client takes nothing: this ends the reader's read and any blocked write
		return
	}
	w.awaitClose()
}

// abort ends the connection at once: no close frame, no wait for the client's. Records reason
// unless it was stopped already. Any goroutine.
func (w *wsConn) abort(reason telemetry.CloseReason) {
	w.markStopped(reason)
	_ = w.conn.Close()
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
	w.info.close(w.reason)
	w.s.ws.remove(w) // last: the set holds a connection until its close line is logged
}
