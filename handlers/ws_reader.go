package handlers

import (
	"errors"
	"io"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/telemetry"
)

// read is the reader goroutine: it reads client frames and hands data messages to the writer.
// Its frame is kept small and its callees out of line, because it sits under gorilla's read
// for the whole life of the connection (see wsConn).
func (w *wsConn) read() {
	for {
		_, r, err := w.conn.NextReader() // parks here while the client is idle
		if err != nil {
			w.readFailed(err)
			w.discard() // after a message over the limit, say, the rest of it is still coming
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
// gorilla's read errors are final: after a message over the read limit or a protocol error it
// reads no more frames, while the client may still be sending (the rest of the oversized
// message, typically). Unless the error is the client's close (nothing follows it), the socket's
// bytes are then dropped raw, until the client's end or the deadline.
//
//go:noinline
func (w *wsConn) discard() {
	var err error
	for err == nil {
		var r io.Reader
		if _, r, err = w.conn.NextReader(); err == nil {
			_, err = io.Copy(io.Discard, r)
		}
	}
	var closed *websocket.CloseError
	if errors.As(err, &closed) {
		return
	}
	if cork, _ := w.conn.UnderlyingConn().(*corkConn); cork != nil {
		_, _ = io.Copy(io.Discard, cork.raw) // a closed socket or a passed deadline fails at once
	}
}

// Client messages waiting for the writer: at most wsInboxMessages, and beyond the first at most
// wsInboxBytes in all. A burst of actions (a UI changing its topics) is read at once, with the
// pongs among it; a client that sends more than that before its answers come is read no further
// until they do, and its memory stays bounded: the inbox's 64 KiB (or one message of the 64 KiB
// limit; a small message holds a buffer of at least 512 bytes, 8 KiB for 16), the message the
// reader holds and the one the writer is answering.
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
