package store

import (
	"context"
	"sync"

	"github.com/eventgate/eventgate/limits"
)

var _ limits.Leases = (*MemoryLeases)(nil)

// MemoryLeases counts connections per key in this process only. Leases never expire: the process
// that holds them is the one that would release them. Safe for concurrent use.
type MemoryLeases struct {
	mu   sync.Mutex
	held map[string]map[string]struct{}
}

// NewMemoryLeases returns an empty lease table.
func NewMemoryLeases() *MemoryLeases {
	return &MemoryLeases{held: make(map[string]map[string]struct{})}
}

// Acquire takes lease id under key if fewer than max are held.
func (m *MemoryLeases) Acquire(_ context.Context, key, id string, max int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := m.held[key]
	if len(ids) >= max {
		return false, nil
	}
	if ids == nil {
		ids = make(map[string]struct{})
		m.held[key] = ids
	}
	ids[id] = struct{}{}
	return true, nil
}

// Release frees lease id under key.
func (m *MemoryLeases) Release(_ context.Context, key, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ids := m.held[key]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(m.held, key)
		}
	}
	return nil
}
