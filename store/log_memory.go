// Package store implements eventgate's log backends (an in-process ring and Redis Streams) and the
// small Redis-backed stores the handlers need. It implements interfaces declared in streams.
package store

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

var _ streams.Log = (*Memory)(nil)

// defaultMemoryPoll is how long Tail waits for new events before returning an empty page.
const defaultMemoryPoll = 2 * time.Second

// Memory is an in-process ring buffer log that keeps the newest retention events. It is not
// durable: a restart loses everything. Safe for concurrent use; appends are serialised by a mutex,
// which also defines the total order.
type Memory struct {
	mu         sync.Mutex
	ring       eventRing // the newest retention events
	last       event.ID
	maxDeleted event.ID
	wake       chan struct{} // closed and replaced on every append, waking Tail
	poll       time.Duration
	now        func() time.Time
}

// NewMemory returns an empty ring that keeps at most retention events (at least 1).
func NewMemory(retention int) *Memory {
	if retention < 1 {
		retention = 1
	}
	return &Memory{
		ring: newEventRing(retention),
		wake: make(chan struct{}),
		poll: defaultMemoryPoll,
		now:  time.Now,
	}
}

// SetPoll sets how long Tail waits for new events before returning an empty page. Call it before
// the log is shared.
func (m *Memory) SetPoll(d time.Duration) { m.poll = d }

// Append places drafts at the end of the ring atomically, evicting the oldest events when full.
// IDs are <unix ms>-<seq>, strictly increasing even if the clock steps back.
func (m *Memory) Append(ctx context.Context, drafts []event.Draft) ([]event.ID, error) {
	if len(drafts) == 0 {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids := make([]event.ID, len(drafts))
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := uint64(m.now().UnixMilli())
	for i, d := range drafts {
		id := event.ID{MS: ms}
		if id.Compare(m.last) <= 0 {
			id = m.last.Next()
		}
		m.last = id
		ids[i] = id
		if old := m.ring.push(event.NewEvent(id, d)); old != nil {
			m.maxDeleted = old.ID
		}
	}
	close(m.wake)
	m.wake = make(chan struct{})
	return ids, nil
}

// Read returns up to limit events after after, with the bounds at the same instant.
func (m *Memory) Read(ctx context.Context, after event.ID, limit int) (streams.Page, error) {
	if err := ctx.Err(); err != nil {
		return streams.Page{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.readLocked(after, limit), nil
}

func (m *Memory) readLocked(after event.ID, limit int) streams.Page {
	p := streams.Page{Next: after, Bounds: streams.Bounds{Last: m.last, MaxDeleted: m.maxDeleted, Trimmed: !m.maxDeleted.IsZero()}}
	r := &m.ring
	if r.n > 0 {
		p.Bounds.First = r.at(0).ID
	}
	i := sort.Search(r.n, func(i int) bool { return after.Less(r.at(i).ID) })
	if limit <= 0 || i == r.n {
		return p
	}
	k := min(limit, r.n-i)
	p.Events = make([]*event.Event, k)
	for j := range k {
		p.Events[j] = r.at(i + j)
	}
	p.Next = p.Events[k-1].ID
	return p
}

// Bounds returns what the ring holds now.
func (m *Memory) Bounds(ctx context.Context) (streams.Bounds, error) {
	p, err := m.Read(ctx, event.ID{}, 0) // limit 0: bounds only
	return p.Bounds, err
}

// Tail waits until there are events after after (or the poll interval passes, or ctx ends) and
// returns up to limit of them.
func (m *Memory) Tail(ctx context.Context, after event.ID, limit int) (streams.Page, error) {
	timer := time.NewTimer(m.poll)
	defer timer.Stop()
	for {
		m.mu.Lock()
		p := m.readLocked(after, limit)
		wake := m.wake
		m.mu.Unlock()
		if len(p.Events) > 0 {
			return p, nil
		}
		if done, err := awaitWake(ctx, wake, timer); done {
			return p, err
		}
	}
}

// awaitWake waits for an append to close wake. done is true when, instead, the timer fired (err
// nil: the poll interval passed) or ctx ended (err is ctx's error); then Tail returns what it has.
func awaitWake(ctx context.Context, wake <-chan struct{}, timer *time.Timer) (done bool, err error) {
	select {
	case <-wake:
		return false, nil
	case <-timer.C:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// Ping always succeeds: the ring is in process.
func (m *Memory) Ping(context.Context) error { return nil }
