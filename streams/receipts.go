package streams

import (
	"context"
	"time"
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

// AtomicReceipts are Receipts that can also append to the log and store the key's receipt in one
// atomic step. Then an append whose answer was lost (the store's outcome unknown) cannot be
// repeated by a retry: either the events and the receipt are both there, or neither is.
type AtomicReceipts interface {
	Receipts
	// AppendOnce appends drafts to log and stores ReceiptBody of their IDs under key for ttl,
	// atomically. ok is false, with nothing done, when it cannot combine with this log.
	AppendOnce(ctx context.Context, log Log, key string, drafts []Draft, ttl time.Duration) (ids []ID, ok bool, err error)
}

// ReceiptBody is the publish response remembered for an Idempotency-Key: {"ids":["<id>",...]}.
func ReceiptBody(ids []ID) []byte {
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
