package streams

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/eventgate/eventgate/event"
)

// ErrOutcomeUnknown is wrapped when the store did not confirm an append (it failed or timed out
// after the request may have reached it): the events may or may not be in the log. A retry with
// the same Idempotency-Key resolves it.
var ErrOutcomeUnknown = errors.New("append outcome unknown")

// DefaultInFlight bounds how long a claimed Idempotency-Key blocks retries before its receipt
// exists: a crash between claim and receipt must not block the key for a day.
const DefaultInFlight = time.Minute

// completeTimeout bounds storing a receipt after the append, which outlives the request's context.
const completeTimeout = 3 * time.Second

// PublisherOptions tune a Publisher. Zero values select the defaults.
type PublisherOptions struct {
	// ReceiptTTL is how long a key's receipt is remembered (default 24h).
	ReceiptTTL time.Duration
	// InFlight is how long a claim blocks the key before its receipt exists (DefaultInFlight).
	InFlight time.Duration
	// Logger receives failures that do not fail the publish (default slog.Default()).
	Logger *slog.Logger
}

// Publisher appends batches to the log, at most once per Idempotency-Key: the protocol of
// POST /api/v1/events, independent of HTTP. It is safe for concurrent use; two publishes with one
// key never both append.
type Publisher struct {
	log      Log
	receipts Receipts
	opts     PublisherOptions
}

// NewPublisher returns a publisher appending to log and remembering keys in receipts.
func NewPublisher(log Log, receipts Receipts, opts PublisherOptions) *Publisher {
	if opts.ReceiptTTL <= 0 {
		opts.ReceiptTTL = 24 * time.Hour
	}
	if opts.InFlight <= 0 {
		opts.InFlight = DefaultInFlight
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Publisher{log: log, receipts: receipts, opts: opts}
}

// Publish appends drafts atomically, at most once per key (empty key: a plain append). When key
// was used before, nothing is appended and prior is the first request's response (ReceiptBody).
// Errors: a key claimed by a request still in flight wraps ErrKeyInFlight; an append whose outcome
// is unknown wraps ErrOutcomeUnknown (and ErrUnavailable or the context's error).
//
// Receipts that combine with the log (AtomicReceipts, Redis) look the key up, append and store
// the receipt in one step: a retry after an unknown outcome finds the receipt or appends, never
// both, and is never blocked. Otherwise the key is claimed, the events appended, then the receipt
// stored; after an unknown outcome the claim is kept until it lapses (InFlight), so a retry is
// refused rather than appending a second copy.
func (p *Publisher) Publish(ctx context.Context, key string, drafts []event.Draft) (ids []event.ID, prior []byte, err error) {
	if key == "" {
		ids, err = p.log.Append(ctx, drafts)
		if err != nil {
			return nil, nil, unknownOutcome(ctx, err)
		}
		return ids, nil, nil
	}
	if ar, ok := p.receipts.(AtomicReceipts); ok {
		ids, prior, ok, err := ar.AppendOnce(ctx, p.log, key, drafts, p.opts.ReceiptTTL)
		switch {
		case !ok:
		case errors.Is(err, ErrKeyInFlight):
			return nil, nil, err
		case err != nil:
			return nil, nil, unknownOutcome(ctx, err)
		default:
			return ids, prior, nil
		}
	}
	prior, claimed, err := p.receipts.Claim(ctx, key, p.opts.InFlight)
	switch {
	case err != nil:
		return nil, nil, err
	case !claimed && prior == nil:
		return nil, nil, fmt.Errorf("publish: %w", ErrKeyInFlight)
	case !claimed:
		return nil, prior, nil
	}
	if ids, err = p.log.Append(ctx, drafts); err != nil {
		if err = unknownOutcome(ctx, err); !errors.Is(err, ErrOutcomeUnknown) {
			if rerr := p.receipts.Release(ctx, key); rerr != nil {
				p.opts.Logger.Warn("releasing idempotency key failed", "err", rerr)
			}
		}
		return nil, nil, err
	}
	// The events are in the log: failing to remember the key must not fail the request, and a
	// client that left must not keep the receipt from being stored (a retry would append again).
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), completeTimeout)
	defer cancel()
	if err := p.receipts.Complete(cctx, key, ReceiptBody(ids), p.opts.ReceiptTTL); err != nil {
		p.opts.Logger.Warn("storing idempotency receipt failed", "err", err)
	}
	return ids, nil, nil
}

// unknownOutcome marks err as leaving the append's outcome unknown when the store may have
// applied it: it was unreachable mid-call or the deadline passed.
func unknownOutcome(ctx context.Context, err error) error {
	if errors.Is(err, ErrUnavailable) || ctx.Err() != nil ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
	}
	return err
}
