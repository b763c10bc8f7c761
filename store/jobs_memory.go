package store

import (
	"context"
	"sync"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
)

var _ jobs.Store = (*MemoryJobs)(nil)

// MemoryJobs keeps folded job state in process, each job for ttl after its last update. Safe for
// concurrent use.
type MemoryJobs struct {
	ttl    time.Duration
	mu     sync.Mutex
	jobs   map[string]memoryJob
	queue  jobs.QueueState
	cursor event.ID
	now    func() time.Time
}

type memoryJob struct {
	st      jobs.State
	expires time.Time
}

// NewMemoryJobs returns an empty job state store whose entries expire ttl after their last update.
func NewMemoryJobs(ttl time.Duration) *MemoryJobs {
	return &MemoryJobs{ttl: ttl, jobs: make(map[string]memoryJob), now: time.Now}
}

// Job returns a job's state.
func (m *MemoryJobs) Job(_ context.Context, id string) (jobs.State, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok || m.now().After(j.expires) {
		delete(m.jobs, id)
		return jobs.State{}, false, nil
	}
	return j.st, true, nil
}

// SwapJob stores next if the stored last event id is still prev.
func (m *MemoryJobs) SwapJob(_ context.Context, prev string, next jobs.State) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := m.jobs[next.JobID]
	if m.now().After(cur.expires) {
		cur = memoryJob{}
	}
	if cur.st.LastEventID != prev {
		return false, nil
	}
	m.jobs[next.JobID] = memoryJob{st: next, expires: m.now().Add(m.ttl)}
	if len(m.jobs)%1024 == 0 {
		m.pruneLocked()
	}
	return true, nil
}

func (m *MemoryJobs) pruneLocked() {
	now := m.now()
	for id, j := range m.jobs {
		if now.After(j.expires) {
			delete(m.jobs, id)
		}
	}
}

// Queue returns the latest queue state.
func (m *MemoryJobs) Queue(context.Context) (jobs.QueueState, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queue, m.queue.LastEventID != "", nil
}

// SwapQueue stores next if the stored last event id is still prev.
func (m *MemoryJobs) SwapQueue(_ context.Context, prev string, next jobs.QueueState) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.queue.LastEventID != prev {
		return false, nil
	}
	m.queue = next
	return true, nil
}

// Cursor returns the folded position.
func (m *MemoryJobs) Cursor(context.Context) (event.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cursor, nil
}

// SetCursor records the folded position.
func (m *MemoryJobs) SetCursor(_ context.Context, id event.ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cursor.Less(id) {
		m.cursor = id
	}
	return nil
}
