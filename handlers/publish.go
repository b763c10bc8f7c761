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

// publishTimeout bounds a publish's store calls (claim, append, receipt), counted from when the
// body has been read and validated: a frozen store gets a 503 within it, not a hung request.
const publishTimeout = 3 * time.Second

// errAppendUnknown is wrapped when the store did not confirm an append (it failed or timed out
// after the request may have reached it): the events may or may not be in the log.
var errAppendUnknown = errors.New("append outcome unknown")

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
		// The in-flight claim is short-lived: a crash between claim and receipt must not block
		// the key for a day. The receipt itself is kept for IdempotencyTTL.
		prior, claimed, err := s.receipts.Claim(ctx, key, inFlightTTL)
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

	ids, stored, err := s.appendOnce(ctx, key, drafts)
	if err != nil {
		// After ErrUnavailable or a deadline (or a cancellation) the batch may or may not be in
		// the log: a frozen Redis runs the script still in its socket buffer when it resumes.
		// Keep the claim (it lapses after inFlightTTL), so an immediate retry gets 409 rather
		// than appending it twice. (With Redis the events and the receipt are written together,
		// so a later retry finds the receipt if the append happened.)
		unknown := errors.Is(err, streams.ErrUnavailable) || ctx.Err() != nil ||
			errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
		if key != "" && !unknown {
			if rerr := s.receipts.Release(ctx, key); rerr != nil {
				s.log.Warn("releasing idempotency key failed", "err", rerr)
			}
		}
		if unknown {
			err = fmt.Errorf("%w: %w", errAppendUnknown, err)
		}
		s.fail(c, err)
		return
	}
	s.metrics.publishedEvents(drafts)
	out := streams.ReceiptBody(ids) // {"ids":[...]}
	if key != "" && !stored {
		// The events are in the log: failing to remember the key must not fail the request.
		if err := s.receipts.Complete(ctx, key, out, s.cfg.IdempotencyTTL); err != nil {
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
