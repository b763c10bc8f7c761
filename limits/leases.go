package limits

import "context"

// Leases count live streaming connections per key (a client IP), across every instance when
// backed by Redis. A lease expires on its own unless its holder keeps renewing it, so an instance
// that dies never leaves phantom connections behind. Implementations are safe for concurrent use.
type Leases interface {
	// Acquire takes a lease named id under key when fewer than max leases are held there; ok is
	// false when the key is full. The holder must Release it.
	Acquire(ctx context.Context, key, id string, max int) (ok bool, err error)
	// Release frees the lease at once. Releasing an unknown lease is a no-op.
	Release(ctx context.Context, key, id string) error
}
