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

	"github.com/eventgate/eventgate/streams"
)

// inFlightTTL bounds how long a claimed Idempotency-Key blocks retries before its receipt exists.
const inFlightTTL = time.Minute

// publish serves POST /api/v1/events (SPEC §4): one event or a batch, validated whole before
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
	drafts, err := streams.ParseBatch(body)
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

	// The topics grant bounds publishing too (SPEC §8); checked before the Idempotency-Key is
	// claimed, so a refused batch does not spend the key.
	if p := principalOf(c); p != nil {
		for i, d := range drafts {
			if !streams.GrantMatches(p.Topics, d.Topic) {
				s.fail(c, fmt.Errorf("%w: event[%d] has topic %q, which the token's topics claim does not grant", errForbidden, i, d.Topic))
				return
			}
		}
	}

	key := c.GetHeader("Idempotency-Key")
	if key != "" {
		if !validIdempotencyKey(key) {
			s.fail(c, fmt.Errorf("%w: Idempotency-Key must be 1 to 255 printable ASCII characters", errBadRequest))
			return
		}
		key = subjectScoped(c, key) // one subject cannot replay (or block) another's keys
		// The in-flight claim is short-lived: a crash between claim and receipt must not block
		// the key for a day. The receipt itself is kept for IdempotencyTTL.
		prior, claimed, err := s.receipts.Claim(c, key, inFlightTTL)
		if err != nil {
			s.fail(c, err)
			return
		}
		if !claimed {
			if prior == nil {
				s.fail(c, fmt.Errorf("%w: a request with this Idempotency-Key is still in progress", errIdempotencyInUse))
				return
			}
			c.Header("Idempotent-Replayed", "true")
			c.Data(http.StatusCreated, "application/json; charset=utf-8", prior)
			return
		}
	}

	ids, stored, err := s.appendOnce(c, key, drafts)
	if err != nil {
		// After ErrUnavailable the batch may or may not be in the log: keep the claim (it lapses
		// after inFlightTTL), so an immediate retry gets 409 rather than appending it twice.
		// (With Redis the events and the receipt are written together, so a later retry finds
		// the receipt if the append happened.)
		if key != "" && !errors.Is(err, streams.ErrUnavailable) {
			if rerr := s.receipts.Release(c, key); rerr != nil {
				s.log.Warn("releasing idempotency key failed", "err", rerr)
			}
		}
		s.fail(c, err)
		return
	}
	s.metrics.publishedEvents(drafts)
	out := streams.ReceiptBody(ids) // {"ids":[...]}
	if key != "" && !stored {
		// The events are in the log: failing to remember the key must not fail the request.
		if err := s.receipts.Complete(c, key, out, s.cfg.IdempotencyTTL); err != nil {
			s.log.Warn("storing idempotency receipt failed", "err", err)
		}
	}
	c.Data(http.StatusCreated, "application/json; charset=utf-8", out)
}

// appendOnce appends drafts; with an Idempotency-Key and receipts that can write atomically with
// the log, the receipt is stored in the same step (stored is then true).
func (s *Server) appendOnce(ctx context.Context, key string, drafts []streams.Draft) (ids []streams.ID, stored bool, err error) {
	if ar, ok := s.receipts.(streams.AtomicReceipts); ok && key != "" {
		ids, ok, err := ar.AppendOnce(ctx, s.events, key, drafts, s.cfg.IdempotencyTTL)
		if ok {
			return ids, err == nil, err
		}
	}
	ids, err = s.events.Append(ctx, drafts)
	return ids, false, err
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	return !bytes.ContainsFunc([]byte(k), func(r rune) bool { return r < 0x21 || r > 0x7e })
}
