package handlers

import (
	"errors"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/event"
)

// queryFilter builds the filter that a stream, WebSocket or history request asks for with its
// topic and type parameters: at most MaxTopics distinct patterns and as many types, else an error
// wrapping event.ErrInvalidFilter (400 invalid_filter).
func (s *Server) queryFilter(c *gin.Context) (event.Filter, error) {
	return event.NewFilterMax(c.QueryArray("topic"), c.QueryArray("type"), s.cfg.MaxTopics)
}

// wsCodeOf is codeOf for WebSocket error frames, which name an oversized filter precisely: the
// connection stays open, so the client can tell "too many" from a malformed pattern and act.
func wsCodeOf(err error) string {
	switch {
	case errors.Is(err, event.ErrTooManyTopics):
		return "too_many_topics"
	case errors.Is(err, event.ErrTooManyTypes):
		return "too_many_types"
	}
	return codeOf(err)
}

// wsChanged answers a subscribe or unsubscribe action with what the action changed, not the
// whole filter (that is in the connect frame, wsSubscribed): Topics are the patterns it added,
// Types the types it added, Removed the patterns it removed — a first subscribe replaces the
// implicit "*" (or the token's grants), which then shows in Removed.
type wsChanged struct {
	Type    string   `json:"type"` // "subscribed", as in SPEC §3
	Topics  []string `json:"topics"`
	Types   []string `json:"types"`
	Removed []string `json:"removed"`
}

// changed describes the step from filter old to filter next, both as the client asked for them
// (before the topic grants). Linear in the sizes of both. Writer only.
func (w *wsConn) changed(old, next event.Filter) wsChanged {
	was, is := w.topicsOf(old), w.topicsOf(next)
	return wsChanged{
		Type:    "subscribed",
		Topics:  minus(is, was),
		Types:   minus(next.Types, old.Types),
		Removed: minus(was, is),
	}
}

// topicsOf lists the patterns a filter the client asked for subscribes to: none after it
// unsubscribed from everything, everything (w.everything) when it named none.
func (w *wsConn) topicsOf(f event.Filter) []string {
	switch {
	case f.Nothing:
		return nil
	case len(f.Topics) == 0:
		return w.everything()
	}
	return f.TopicStrings()
}

// minus returns the strings of a that are not in b, in a's order; never nil, so that the frame
// shows an empty list rather than null.
func minus(a, b []string) []string {
	in := make(map[string]struct{}, len(b))
	for _, s := range b {
		in[s] = struct{}{}
	}
	out := []string{}
	for _, s := range a {
		if _, ok := in[s]; !ok {
			out = append(out, s)
		}
	}
	return out
}
