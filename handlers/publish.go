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

// inFlightTTL bounds how long a claimed Idempotency-Key blocks retries before its receipt exists.
const inFlightTTL = time.Minute

// publishTimeout bounds a publish's store calls (claim, append, receipt), counted from when the
// body has been read and validated: a frozen store gets a 503 within it, not a hung request.
const publishTimeout = 3 * time.Second

// errAppendUnknown is wrapped when the store did not confirm an append (it failed or timed out
// after the request may have reached it): the events may or may not be in the log.
var errAppendUnknown = errors.New("append outcome unknown")

// publish serves POST /api/v1/events (docs/api.md#publishing): one event or a batch, validated
// whole before anything is appended, appended atomically, with an optional Idempotency-Key.
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

	// The topics grant bounds publishing too (docs/api.md#topic-grants); checked before the
	// Idempotency-Key is claimed, so a refused batch does not spend the key.
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
	ids, prior, err := s.appendOnce(ctx, key, drafts)
	switch {
	case err != nil:
		s.fail(c, err)
		return
	case prior != nil:
		c.Header("Idempotent-Replayed", "true")
		c.Data(http.StatusCreated, "application/json; charset=utf-8", prior)
		return
	}
	s.metrics.publishedEvents(drafts)
	c.Data(http.StatusCreated, "application/json; charset=utf-8", streams.ReceiptBody(ids)) // {"ids":[...]}
}

// appendOnce appends drafts, at most once per Idempotency-Key (none: a plain append). When key
// was used before, nothing is appended and prior is the first request's response. An error whose
// outcome is unknown (the store may have applied the append) wraps errAppendUnknown.
//
// Receipts that combine with the log (Redis) look the key up, append and store the receipt in
// one atomic step: a retry after an unknown outcome finds the receipt or appends, never both,
// and is never blocked. Otherwise (in process) the key is claimed, the events appended, then the
// receipt stored; after an unknown outcome the claim is kept until it lapses (inFlightTTL), so a
// retry gets 409 rather than a second copy.
func (s *Server) appendOnce(ctx context.Context, key string, drafts []event.Draft) (ids []event.ID, prior []byte, err error) {
	unknown := func(err error) error {
		if errors.Is(err, streams.ErrUnavailable) || ctx.Err() != nil ||
			errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return fmt.Errorf("%w: %w", errAppendUnknown, err)
		}
		return err
	}
	if key == "" {
		ids, err = s.events.Append(ctx, drafts)
		if err != nil {
			return nil, nil, unknown(err)
		}
		return ids, nil, nil
	}
	if ar, ok := s.receipts.(streams.AtomicReceipts); ok {
		ids, prior, ok, err := ar.AppendOnce(ctx, s.events, key, drafts, s.cfg.IdempotencyTTL)
		switch {
		case !ok:
		case errors.Is(err, streams.ErrKeyInFlight):
			return nil, nil, fmt.Errorf("%w: a request with this Idempotency-Key is still in progress", errIdempotencyInUse)
		case err != nil:
			return nil, nil, unknown(err)
		default:
			return ids, prior, nil
		}
	}
	// The in-flight claim is short-lived: a crash between claim and receipt must not block the
	// key for a day. The receipt itself is kept for IdempotencyTTL.
	prior, claimed, err := s.receipts.Claim(ctx, key, inFlightTTL)
	switch {
	case err != nil:
		return nil, nil, err
	case !claimed && prior == nil:
		return nil, nil, fmt.Errorf("%w: a request with this Idempotency-Key is still in progress", errIdempotencyInUse)
	case !claimed:
		return nil, prior, nil
	}
	if ids, err = s.events.Append(ctx, drafts); err != nil {
		if err = unknown(err); !errors.Is(err, errAppendUnknown) {
			if rerr := s.receipts.Release(ctx, key); rerr != nil {
				s.log.Warn("releasing idempotency key failed", "err", rerr)
			}
		}
		return nil, nil, err
	}
	// The events are in the log: failing to remember the key must not fail the request.
	if err := s.receipts.Complete(ctx, key, streams.ReceiptBody(ids), s.cfg.IdempotencyTTL); err != nil {
		s.log.Warn("storing idempotency receipt failed", "err", err)
	}
	return ids, nil, nil
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > 255 {
		return false
	}
	return !bytes.ContainsFunc([]byte(k), func(r rune) bool { return r < 0x21 || r > 0x7e })
}
