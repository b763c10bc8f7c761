package store

import (
	"context"
	"sync"
	"time"

	"github.com/eventgate/eventgate/streams"
)

var _ streams.Receipts = (*MemoryReceipts)(nil)

// memorySweepEvery bounds how often Claim scans the whole map for expired receipts.
const memorySweepEvery = time.Minute

// MemoryReceipts keeps idempotency receipts in process (not shared, not durable). Safe for
// concurrent use: one mutex guards the map. Expired receipts are dropped when their key is touched
// and by a full sweep at most once a minute, so memory stays bounded by the keys of one TTL.
type MemoryReceipts struct {
	mu        sync.Mutex
	m         map[string]memoryReceipt
	lastSweep time.Time
	now       func() time.Time
}

type memoryReceipt struct {
	response []byte // nil while in flight; owned by the map, copied in and out
	expires  time.Time
}

// NewMemoryReceipts returns empty in-process receipts.
func NewMemoryReceipts() *MemoryReceipts {
	return &MemoryReceipts{m: make(map[string]memoryReceipt), now: time.Now}
}

// Claim reserves key for ttl unless an unexpired receipt exists.
func (r *MemoryReceipts) Claim(ctx context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.lastSweep) >= memorySweepEvery {
		r.lastSweep = now
		for k, v := range r.m {
			if !now.Before(v.expires) {
				delete(r.m, k)
			}
		}
	}
	if v, ok := r.m[key]; ok && now.Before(v.expires) {
		if v.response == nil {
			return nil, false, nil
		}
		return append([]byte(nil), v.response...), false, nil
	}
	r.m[key] = memoryReceipt{expires: now.Add(ttl)}
	return nil, true, nil
}

// Complete stores response (which must not be empty) for key for ttl.
func (r *MemoryReceipts) Complete(ctx context.Context, key string, response []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(response) == 0 {
		return errEmptyResponse
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[key] = memoryReceipt{response: append([]byte(nil), response...), expires: r.now().Add(ttl)}
	return nil
}

// Release forgets key.
func (r *MemoryReceipts) Release(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, key)
	return nil
}
