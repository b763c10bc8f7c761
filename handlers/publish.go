package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// publishTimeout bounds a publish's store calls (claim, append, receipt), counted from when the
// body has been read and validated: a frozen store gets a 503 within it, not a hung request.
const publishTimeout = 3 * time.Second

// publish serves POST /api/v1/events (docs/api.md#publishing): one event or a batch, validated whole before
// anything is appended, appended atomically, with an optional Idempotency-Key.
func (s *Server) publish(c *gin.Context) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(c, fmt.Errorf("%w: the request body is over %d bytes", errTooLarge, s.cfg.MaxBodyBytes))
			return
		}
		s.fail(c, fmt.Errorf("%w: reading the body: %v", errBadRequest, err))
		return
	}
	drafts, err := event.ParseBatch(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	for i, d := range drafts {
		if n := len(d.Payload()); n > s.cfg.MaxEventBytes {
			s.fail(c, fmt.Errorf("%w: event[%d] is %d bytes, over the limit of %d", errTooLarge, i, n, s.cfg.MaxEventBytes))
			return
		}
	}

	// The topics grant bounds publishing too (docs/api.md#topic-grants); checked before the Idempotency-Key is
	// claimed, so a refused batch does not spend the key.
	if p := principalOf(c); p != nil {
		for i, d := range drafts {
			if !event.GrantMatches(p.Topics, d.Topic) {
				s.fail(c, fmt.Errorf("%w: event[%d] has topic %q, which the token's topics claim does not grant", errForbidden, i, d.Topic))
				return
			}
		}
	}

	// Not c: gin's Context carries neither the request's cancellation nor a deadline.
	ctx, cancel := context.WithTimeout(c.Request.Context(), publishTimeout)
	defer cancel()
	key := c.GetHeader("Idempotency-Key")
	if key != "" {
		if !validIdempotencyKey(key) {
			s.fail(c, fmt.Errorf("%w: Idempotency-Key must be 1 to 255 printable ASCII characters", errBadRequest))
			return
		}
		key = subjectScoped(c, key) // one subject cannot replay (or block) another's keys
	}
	ids, prior, err := s.publisher.Publish(ctx, key, drafts)
	switch {
	case err != nil:
		s.fail(c, err)
		return
	case prior != nil:
		c.Header("Idempotent-Replayed", "true")
		c.Data(http.StatusCreated, "application/json; charset=utf-8", prior)
		return
	}
	s.metrics.Published(drafts)
	c.Data(http.StatusCreated, "application/json; charset=utf-8", streams.ReceiptBody(ids)) // {"ids":[...]}
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	return !bytes.ContainsFunc([]byte(k), func(r rune) bool { return r < 0x21 || r > 0x7e })
}
