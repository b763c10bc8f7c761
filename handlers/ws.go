package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
)

// maxInboundFrame is the largest client frame; a larger one closes the connection with 1009.
const maxInboundFrame = 64 << 10

// wsLiveBuffer is a WebSocket subscription's live buffer: smaller than SSE's, since an idle
// connection holds it and the writer starts as soon as events arrive; a larger burst is read from
// the log.
const wsLiveBuffer = 16

// wsWriteBuffers is shared by every connection: a connection holds a write buffer only while
// writing, which keeps idle connections small.
var wsWriteBuffers sync.Pool

// wsAction is a client → server message (docs/api.md#websocket).
type wsAction struct {
	Action string   `json:"action"`
	Topics []string `json:"topics"`
	Types  []string `json:"types"`
	Since  *string  `json:"since"`
}

func (s *Server) upgrader() *websocket.Upgrader {
	return &websocket.Upgrader{
		ReadBufferSize:   128, // gorilla's least; client messages are small, a larger one bypasses it
		WriteBufferSize:  4096,
		WriteBufferPool:  &wsWriteBuffers,
		CheckOrigin:      s.checkOrigin,
		HandshakeTimeout: 10 * time.Second,
	}
}

// websocket serves GET /api/v1/ws (SPEC §3). Every rejection happens before the upgrade, as a
// JSON error; after it, the handler returns and the connection's reader and writer own it
// (ws_conn.go).
func (s *Server) websocket(c *gin.Context) {
	start, err := resumeStart(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	asked, err := s.queryFilter(c)
	principal := principalOf(c)
	var filter event.Filter
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
	w := newWSConn(s, principal, asked)
	sub, err := s.subscribeWith(c.Request.Context(), filter, start, streams.SubscribeOptions{Wake: w.wake, Buffer: wsLiveBuffer})
	if err != nil {
		s.reject(c, RejectStoreUnavailable)
		s.fail(c, err)
		return
	}
	w.sub = sub
	conn, err := s.upgrader().Upgrade(progressHijacker{c.Writer}, c.Request, nil)
	if err != nil {
		sub.Close() // Upgrade has already answered the client
		return
	}
	conn.SetReadLimit(maxInboundFrame)
	w.conn = conn
	w.info = s.openConn(c, telemetry.WebSocket, filter, start)
	// The first frame is subscribed, with the position delivery starts from; this goroutine is
	// the writer until it starts the first writer run (w.writing is set until then).
	w.sendSubscribed() // on failure the connection is stopped, and the goroutines below end
	w.start()
	go w.read()
	go w.write()
}

// sendSubscribed sends the connect frame: the filter and where delivery starts.
func (w *wsConn) sendSubscribed() bool {
	return w.sendJSON(subscribedFrame(w.sub.Filter(), w.sub.Position().String()))
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
	// Position is where delivery starts: a client that drops before its first event reconnects
	// with since=<position> and misses nothing.
	Position string `json:"position,omitempty"`
}

// subscribedFrame is the connect frame: the whole filter and the starting position. Replies to
// actions carry only what changed (wsChanged).
func subscribedFrame(f event.Filter, position string) wsSubscribed {
	types := f.Types
	if types == nil {
		types = []string{}
	}
	return wsSubscribed{Type: "subscribed", Topics: f.TopicStrings(), Types: types, Position: position}
}

// handle answers one client message. Malformed messages and bad actions get an error frame; the
// connection stays. Writer only.
func (w *wsConn) handle(msg []byte) bool {
	var a wsAction
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return w.sendJSON(wsError{Type: "error", Code: "bad_request", Message: "malformed message: " + err.Error()})
	}
	switch a.Action {
	case "ping":
		return w.sendJSON(map[string]string{"type": "pong"})
	case "subscribe", "unsubscribe":
		asked, since, err := w.nextFilter(a)
		var f event.Filter
		if err == nil {
			f, err = grantFilter(asked, w.principal)
		}
		if err != nil { // the subscription stays as it was
			return w.sendJSON(wsError{Type: "error", Code: wsCodeOf(err), Message: err.Error()})
		}
		reply := w.changed(w.asked, asked)
		w.asked = asked
		w.sub.Change(f, since)
		return w.sendJSON(reply)
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
func (w *wsConn) nextFilter(a wsAction) (event.Filter, *event.ID, error) {
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
	f, err := event.NewFilterMax(topics, types, w.s.cfg.MaxTopics)
	if err != nil {
		return event.Filter{}, nil, err
	}
	f.Nothing = len(topics) == 0 // unsubscribed from every topic
	if a.Since == nil || a.Action != "subscribe" {
		return f, nil, nil
	}
	start, err := streams.ParseStart(*a.Since)
	if err != nil {
		return event.Filter{}, nil, err
	}
	if start.Live {
		return f, nil, nil
	}
	return f, &start.After, nil
}
