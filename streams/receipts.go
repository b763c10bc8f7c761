package streams

import (
	"context"
	"errors"
	"time"

	"github.com/eventgate/eventgate/event"
)

// Receipts remembers publish responses by Idempotency-Key, so a repeated request returns the first
// response and appends nothing. Implementations are safe for concurrent use; in Redis they are
// shared by all instances.
type Receipts interface {
	// Claim reserves key for ttl. When the key is new it returns claimed=true and the caller must
	// later Complete or Release it. When the key exists it returns claimed=false and the stored
	// response, which is nil while the first request is still in flight.
	Claim(ctx context.Context, key string, ttl time.Duration) (prior []byte, claimed bool, err error)
	// Complete stores the response for a claimed key for ttl.
	Complete(ctx context.Context, key string, response []byte, ttl time.Duration) error
	// Release forgets a claimed key whose request failed, so that a retry can succeed.
	Release(ctx context.Context, key string) error
}

// AtomicReceipts are Receipts that can also look the key up, append to the log and store the
// key's receipt in one atomic step, without a separate Claim. Then an append whose answer was lost
// (the store's outcome unknown) cannot be repeated by a retry, and cannot block the key either:
// either the events and the receipt are both there (the retry gets the receipt), or neither is
// (the retry appends).
type AtomicReceipts interface {
	Receipts
	// AppendOnce checks key and, when it is free, appends drafts to log and stores ReceiptBody of
	// their IDs under key for ttl, atomically. When key already holds a response nothing is
	// appended and prior is that response; when a Claim holds it (a request in flight), nothing is
	// appended and err wraps ErrKeyInFlight. ok is false, with nothing done, when it cannot
	// combine with this log (then use Claim, Append and Complete).
	AppendOnce(ctx context.Context, log Log, key string, drafts []event.Draft, ttl time.Duration) (ids []event.ID, prior []byte, ok bool, err error)
}

// ErrKeyInFlight means an Idempotency-Key is claimed by a request that has not finished.
var ErrKeyInFlight = errors.New("idempotency key in flight")

// ReceiptBody is the publish response remembered for an Idempotency-Key: {"ids":["<id>",...]}.
func ReceiptBody(ids []event.ID) []byte {
	b := append(make([]byte, 0, 10+len(ids)*26), `{"ids":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = id.AppendTo(b)
		b = append(b, '"')
	}
	return append(b, "]}"...)
}
