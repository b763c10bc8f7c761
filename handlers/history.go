package handlers

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/event"
)

const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 1000
	// maxHistoryReads bounds the log reads of one page when a narrow filter skips most events;
	// the client continues from next.
	maxHistoryReads = 8
)

type historyPage struct {
	Events []json.RawMessage `json:"events"`
	Oldest string            `json:"oldest"`
	Next   string            `json:"next"`
	// Truncated is set when events after the requested position were trimmed from the ring, or the
	// log cannot vouch for the position at all (it was reset, or lost and appended to since).
	Truncated bool `json:"truncated,omitempty"`
}

// history serves GET /api/v1/events (docs/api.md#history): a page of matching events after a
// position.
func (s *Server) history(c *gin.Context) {
	after := event.ID{}
	if v := c.Query("after"); v != "" && v != "0" {
		id, err := event.ParseID(v)
		if err != nil {
			s.fail(c, err)
			return
		}
		after = id
	}
	limit := defaultHistoryLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHistoryLimit {
			s.fail(c, fmt.Errorf("%w: limit must be an integer from 1 to %d", errBadRequest, maxHistoryLimit))
			return
		}
		limit = n
	}
	filter, err := s.queryFilter(c)
	if err == nil {
		filter, err = grantFilter(filter, principalOf(c)) // a page never shows an ungranted topic
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	out := historyPage{Events: make([]json.RawMessage, 0, limit)}
	pos := after
	// Read only as many as still fit, so every event read is either returned or filtered out and
	// next is exactly the last position examined.
	for reads := 0; reads < maxHistoryReads && len(out.Events) < limit; reads++ {
		page, err := s.events.Read(c, pos, limit-len(out.Events))
		if err != nil {
			s.fail(c, err)
			return
		}
		if reads == 0 {
			out.Oldest = page.Bounds.First.String()
			// Events after `after` were trimmed, or the log cannot vouch for it at all (it was
			// reset, or restarted empty and was appended to since).
			b := page.Bounds
			out.Truncated = !after.IsZero() && (after.Less(b.MaxDeleted) || !b.Holds(after))
		}
		for _, e := range page.Events {
			if filter.Match(e) {
				out.Events = append(out.Events, e.JSON)
			}
		}
		if page.Next == pos {
			break // end of the log
		}
		pos = page.Next
	}
	out.Next = pos.String()
	c.JSON(http.StatusOK, out)
}
