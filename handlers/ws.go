package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/streams"
)

// maxInboundFrame is the largest client frame; a larger one closes the connection with 1009.
const maxInboundFrame = 64 << 10

// wsWriteBuffers is shared by every connection: a connection holds a write buffer only while
// writing, which keeps idle connections small.
var wsWriteBuffers sync.Pool

// wsAction is a client → server message (SPEC §3).
type wsAction struct {
	Action string   `json:"action"`
	Topics []string `json:"topics"`
	Types  []string `json:"types"`
	Since  *string  `json:"since"`
}

// wsConn is one WebSocket connection. The reader goroutine only reads and forwards actions; the
// writer goroutine is the only one that writes frames (gorilla allows one concurrent writer), and
// the only one that touches the subscription.
type wsConn struct {
	s       *Server
	conn    *websocket.Conn
	sub     *streams.Subscription
	actions chan wsAction
	done    chan struct{} // closed when the reader stops
	stopped chan struct{} // closed when the writer stops
	// Set by the reader before it closes done; read by the writer only after done is closed.
	readCode   int
	readReason string
	// Owned by the writer.
	retryRead <-chan time.Time // set while the store fails during catch-up
	closeCode int
	reason    string
	closeText string // the close frame's text when it differs from reason
	info      *connInfo
	// principal is the token's (nil with auth off); asked is the filter as the client asked for
	// it, before the topic grants bound it (subscribe/unsubscribe actions edit it).
	principal *Principal
	asked     streams.Filter
}

func (s *Server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:   1024,
		WriteBufferSize:  4096,
		WriteBufferPool:  &wsWriteBuffers,
		CheckOrigin:      s.checkOrigin,
		HandshakeTimeout: 10 * time.Second,
	}
}

// checkOrigin allows requests without an Origin (non-browser clients), same-host origins, and the
// configured origins. A foreign Origin with cookie auth would be cross-site WebSocket hijacking.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	for _, allowed := range s.cfg.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(allowed, origin) {
			return true
		}
	}
	return strings.EqualFold(u.Host, r.Host)
}

// websocket serves GET /api/v1/ws (SPEC §3). Every rejection happens before the upgrade, as a
// JSON error; after it, the handler returns and two goroutines own the connection.
func (s *Server) websocket(c *gin.Context) {
	start, err := resumeStart(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	asked, err := streams.NewFilter(c.QueryArray("topic"), c.QueryArray("type"))
	principal := principalOf(c)
	var filter streams.Filter
	if err == nil {
		filter, err = grantFilter(asked, principal)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.isDraining() {
		s.reject(c, RejectDraining)
		s.fail(c, errDraining)
		return
	}
	if !s.checkOrigin(c.Request) {
		s.fail(c, fmt.Errorf("%w: origin %q is not allowed", errForbidden, c.GetHeader("Origin")))
		return
	}
	sub, err := s.subscribe(c.Request.Context(), filter, start)
	if err != nil {
		s.reject(c, RejectStoreUnavailable)
		s.fail(c, err)
		return
	}
	conn, err := s.upgrader().Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		sub.Close() // Upgrade has already answered the client
		return
	}
	conn.SetReadLimit(maxInboundFrame)
	w := &wsConn{
		s: s, conn: conn, sub: sub,
		actions:   make(chan wsAction, 1),
		done:      make(chan struct{}),
		stopped:   make(chan struct{}),
		closeCode: websocket.CloseNormalClosure,
		readCode:  websocket.CloseNormalClosure,
		info:      s.openConn(c, "websocket", filter, start),
		principal: principal,
		asked:     asked,
	}
	go w.read()
	go w.write()
}

// read is the connection's only reader. Pongs extend the read deadline; a client silent for two
// heartbeats is gone.
func (w *wsConn) read() {
	defer close(w.done)
	wait := 2 * w.s.cfg.Heartbeat
	_ = w.conn.SetReadDeadline(time.Now().Add(wait))
	w.conn.SetPongHandler(func(string) error { return w.conn.SetReadDeadline(time.Now().Add(wait)) })
	for {
		_, msg, err := w.conn.ReadMessage()
		if err != nil {
			w.readReason = "client_closed"
			var ne interface{ Timeout() bool }
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				w.readReason, w.readCode = "frame_too_large", websocket.CloseMessageTooBig
			case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived):
			case errors.As(err, &ne) && ne.Timeout():
				w.readReason, w.readCode = "ping_timeout", websocket.ClosePolicyViolation
			default:
				w.readReason = "read_failed"
			}
			return
		}
		_ = w.conn.SetReadDeadline(time.Now().Add(wait)) // any frame shows the client is alive
		var a wsAction
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			a = wsAction{Action: "invalid", Topics: []string{err.Error()}}
		}
		select {
		case w.actions <- a:
		case <-w.stopped:
			return
		}
	}
}

// write is the connection's only writer: events, control frames, pings, and the close frame.
func (w *wsConn) write() {
	defer w.finish()
	ping := time.NewTicker(w.s.cfg.Heartbeat)
	defer ping.Stop()
	draining, drainNow := w.s.draining, (<-chan time.Time)(nil)
	expired, stopExpiry := w.principal.expiry() // nil channel when auth is off
	defer stopExpiry()
	if !w.sendSubscribed() {
		return
	}
	// The loop only selects; the work happens in methods, so the frame this goroutine parks in
	// while idle stays small and the runtime can shrink its stack.
	for {
		select {
		case <-w.done:
			w.closeCode, w.reason = w.readCode, w.readReason
			return
		case <-draining:
			draining, drainNow = nil, w.s.drainDelay()
		case <-drainNow:
			w.closeCode, w.reason = websocket.CloseServiceRestart, "shutdown"
			return
		case <-expired:
			// The client reconnects with a fresh token and its last id (SPEC §3).
			w.closeCode, w.reason, w.closeText = websocket.ClosePolicyViolation, "auth_expired", "token expired"
			return
		case <-ping.C:
			if !w.ping() {
				return
			}
		case a := <-w.actions:
			if !w.handle(a) {
				return
			}
		case <-w.retryRead:
			w.retryRead = nil
			if !w.deliver() {
				return
			}
		case <-w.sub.Ready():
			if !w.deliver() {
				return
			}
		}
	}
}

// sendSubscribed sends the connect frame: the filter and where delivery starts.
func (w *wsConn) sendSubscribed() bool {
	return w.sendJSON(subscribedFrame(w.sub.Filter(), w.sub.Position().String()))
}

func (w *wsConn) ping() bool {
	if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(w.s.cfg.WriteTimeout)); err != nil {
		w.reason = "write_failed"
		return false
	}
	return true
}

// deliver writes what the subscription has ready. A store error while catching up keeps the
// connection and schedules another attempt.
func (w *wsConn) deliver() bool {
	ep := eventSlices.Get().(*[]*streams.Event) // pooled: an idle connection holds no batch
	defer func() { *ep = (*ep)[:0]; eventSlices.Put(ep) }()
	// Store reads during catch-up carry their own timeouts.
	events, err := w.sub.Next(context.Background(), (*ep)[:0])
	*ep = events
	for _, e := range events {
		if !w.send(e.JSON) {
			return false
		}
	}
	w.info.delivered(events, err)
	if err != nil {
		w.s.log.Warn("catch-up read failed; retrying", "err", err)
		w.retryRead = time.After(time.Second)
	}
	return true
}

// send writes one text frame with a write deadline. A client that accepts nothing for the write
// timeout is closed with 1013 and resumes later with its last id.
func (w *wsConn) send(frame []byte) bool {
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.s.cfg.WriteTimeout))
	if err := w.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		w.closeCode, w.reason = websocket.CloseTryAgainLater, "write_timeout"
		return false
	}
	return true
}

func (w *wsConn) sendJSON(v any) bool {
	b, _ := json.Marshal(v)
	return w.send(b)
}

type wsError struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type wsSubscribed struct {
	Type   string   `json:"type"`
	Topics []string `json:"topics"`
	Types  []string `json:"types"`
	// Position, in the frame sent on connect, is where delivery starts: a client that drops before
	// its first event reconnects with since=<position> and misses nothing.
	Position string `json:"position,omitempty"`
}

// subscribedFrame describes filter f (and, on connect, the starting position).
func subscribedFrame(f streams.Filter, position string) wsSubscribed {
	types := f.Types
	if types == nil {
		types = []string{}
	}
	return wsSubscribed{Type: "subscribed", Topics: f.TopicStrings(), Types: types, Position: position}
}

// handle applies one client action. Bad actions get an error frame; the connection stays.
func (w *wsConn) handle(a wsAction) bool {
	switch a.Action {
	case "ping":
		return w.sendJSON(map[string]string{"type": "pong"})
	case "subscribe", "unsubscribe":
		asked, since, err := w.nextFilter(a)
		var f streams.Filter
		if err == nil {
			f, err = grantFilter(asked, w.principal)
		}
		if err != nil {
			return w.sendJSON(wsError{Type: "error", Code: codeOf(err), Message: err.Error()})
		}
		w.asked = asked
		w.sub.Change(f, since)
		return w.sendJSON(subscribedFrame(f, ""))
	case "invalid":
		return w.sendJSON(wsError{Type: "error", Code: "bad_request", Message: "malformed message: " + strings.Join(a.Topics, "")})
	default:
		return w.sendJSON(wsError{Type: "error", Code: "bad_request", Message: fmt.Sprintf("unknown action %q (want subscribe, unsubscribe or ping)", a.Action)})
	}
}

// everything is what "every topic" means on this connection: "*", or the token's topic grants.
func (w *wsConn) everything() []string {
	if w.principal == nil || w.principal.Topics == nil {
		return []string{"*"}
	}
	out := make([]string, len(w.principal.Topics))
	for i, p := range w.principal.Topics {
		out[i] = p.String()
	}
	return out
}

// nextFilter computes the filter after a subscribe (union) or unsubscribe (removal) action.
func (w *wsConn) nextFilter(a wsAction) (streams.Filter, *streams.ID, error) {
	cur := w.asked
	topics := cur.TopicStrings()
	if len(cur.Topics) == 0 && !cur.Nothing {
		topics = w.everything()
	}
	if len(cur.Topics) == 0 && a.Action == "subscribe" {
		topics = nil // "everything" plus more is still everything, but an explicit list replaces the implicit "*"
		if len(a.Topics) == 0 {
			topics = w.everything()
		}
	}
	types := cur.Types
	if a.Action == "subscribe" {
		topics = append(topics, a.Topics...)
		types = append(append([]string(nil), types...), a.Types...)
	} else {
		drop := make(map[string]bool, len(a.Topics))
		for _, t := range a.Topics {
			drop[t] = true
		}
		var kept []string
		for _, t := range topics {
			if !drop[t] {
				kept = append(kept, t)
			}
		}
		topics = kept
	}
	f, err := streams.NewFilter(topics, types)
	if err != nil {
		return streams.Filter{}, nil, err
	}
	f.Nothing = len(topics) == 0 // unsubscribed from every topic
	if a.Since == nil || a.Action != "subscribe" {
		return f, nil, nil
	}
	start, err := streams.ParseStart(*a.Since)
	if err != nil {
		return streams.Filter{}, nil, err
	}
	if start.Live {
		return f, nil, nil
	}
	return f, &start.After, nil
}

// finish closes the subscription and the connection with the recorded close code.
func (w *wsConn) finish() {
	close(w.stopped)
	w.sub.Close()
	text := w.reason
	if w.closeText != "" {
		text = w.closeText
	}
	msg := websocket.FormatCloseMessage(w.closeCode, text)
	_ = w.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
	_ = w.conn.Close()
	<-w.done
	w.info.close(w.reason)
}
