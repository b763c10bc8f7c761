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
