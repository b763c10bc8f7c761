package store

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/webhooks"
)

var _ webhooks.Store = (*MemoryWebhooks)(nil)

// DeliveryLogSize is how many delivery records each endpoint keeps.
const DeliveryLogSize = 100

// MemoryWebhooks keeps endpoints and their delivery state in this process (lost on restart).
// Leases behave as in Redis (they expire unless renewed) so the dispatcher runs the same code on
// both stores. Safe for concurrent use.
type MemoryWebhooks struct {
	mu  sync.Mutex
	eps map[string]*memoryEndpoint
	seq int // creation counter, for ordering
	now func() time.Time
}

type memoryEndpoint struct {
	hook     webhooks.Webhook
	cursor   event.ID
	owner    string
	until    time.Time // lease expiry
	retries  map[event.ID]*webhooks.Retry
	log      []webhooks.Delivery // newest last
	sequence int                 // creation order
}

// NewMemoryWebhooks returns an empty registry.
func NewMemoryWebhooks() *MemoryWebhooks {
	return &MemoryWebhooks{eps: make(map[string]*memoryEndpoint), now: time.Now}
}

func (m *MemoryWebhooks) get(id string) (*memoryEndpoint, error) {
	ep := m.eps[id]
	if ep == nil {
		return nil, fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	return ep, nil
}

// owned returns the endpoint if owner holds its lease.
func (m *MemoryWebhooks) owned(id, owner string) (*memoryEndpoint, error) {
	ep := m.eps[id]
	if ep == nil || ep.owner != owner || !m.now().Before(ep.until) {
		return nil, fmt.Errorf("%w: %q", webhooks.ErrLeaseLost, id)
	}
	return ep, nil
}

func copyHook(w webhooks.Webhook) webhooks.Webhook {
	w.Topics = slices.Clone(w.Topics)
	w.Types = slices.Clone(w.Types)
	return w
}

// CreateWebhook stores w with its cursor, unless limit > 0 endpoints exist already.
func (m *MemoryWebhooks) CreateWebhook(_ context.Context, w webhooks.Webhook, cursor event.ID, limit int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.eps[w.ID] != nil {
		return fmt.Errorf("webhook %q exists", w.ID)
	}
	if limit > 0 && len(m.eps) >= limit {
		return tooManyWebhooks(limit)
	}
	m.seq++
	m.eps[w.ID] = &memoryEndpoint{hook: copyHook(w), cursor: cursor, retries: make(map[event.ID]*webhooks.Retry), sequence: m.seq}
	return nil
}

// Webhook returns one endpoint.
func (m *MemoryWebhooks) Webhook(_ context.Context, id string) (webhooks.Webhook, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.get(id)
	if err != nil {
		return webhooks.Webhook{}, err
	}
	return copyHook(ep.hook), nil
}

// Webhooks returns every endpoint, oldest first.
func (m *MemoryWebhooks) Webhooks(_ context.Context) ([]webhooks.Webhook, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	eps := make([]*memoryEndpoint, 0, len(m.eps))
	for _, ep := range m.eps {
		eps = append(eps, ep)
	}
	slices.SortFunc(eps, func(a, b *memoryEndpoint) int { return a.sequence - b.sequence })
	out := make([]webhooks.Webhook, len(eps))
	for i, ep := range eps {
		out[i] = copyHook(ep.hook)
	}
	return out, nil
}

// SetWebhookEnabled turns delivery on or off.
func (m *MemoryWebhooks) SetWebhookEnabled(_ context.Context, id string, enabled bool, reason string) (webhooks.Webhook, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.get(id)
	if err != nil {
		return webhooks.Webhook{}, err
	}
	ep.hook.Enabled = enabled
	ep.hook.DisabledReason = ""
	if !enabled {
		ep.hook.DisabledReason = reason
	}
	return copyHook(ep.hook), nil
}

// DeleteWebhook removes the endpoint and everything kept for it.
func (m *MemoryWebhooks) DeleteWebhook(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.get(id); err != nil {
		return err
	}
	delete(m.eps, id)
	return nil
}

// AcquireWebhook takes or renews the lease.
func (m *MemoryWebhooks) AcquireWebhook(_ context.Context, id, owner string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep := m.eps[id]
	if ep == nil {
		return false, nil
	}
	now := m.now()
	if ep.owner != owner && now.Before(ep.until) {
		return false, nil
	}
	ep.owner, ep.until = owner, now.Add(ttl)
	return true, nil
}

// ReleaseWebhook gives the lease up.
func (m *MemoryWebhooks) ReleaseWebhook(_ context.Context, id, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ep := m.eps[id]; ep != nil && ep.owner == owner {
		ep.owner, ep.until = "", time.Time{}
	}
	return nil
}

// WebhookCursor returns the cursor.
func (m *MemoryWebhooks) WebhookCursor(_ context.Context, id string) (event.ID, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.get(id)
	if err != nil {
		return event.ID{}, err
	}
	return ep.cursor, nil
}

// AdvanceWebhookCursor moves the cursor forward.
func (m *MemoryWebhooks) AdvanceWebhookCursor(_ context.Context, id, owner string, to event.ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.owned(id, owner)
	if err != nil {
		return err
	}
	if ep.cursor.Less(to) {
		ep.cursor = to
	}
	return nil
}

// ScheduleRetry queues r.
func (m *MemoryWebhooks) ScheduleRetry(_ context.Context, id, owner string, r webhooks.Retry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.owned(id, owner)
	if err != nil {
		return err
	}
	r.Body = slices.Clone(r.Body)
	ep.retries[r.EventID] = &r
	return nil
}

// ClaimRetry takes the earliest due retry and hides it until now+hold.
func (m *MemoryWebhooks) ClaimRetry(_ context.Context, id, owner string, now time.Time, hold time.Duration) (webhooks.Retry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.owned(id, owner)
	if err != nil {
		return webhooks.Retry{}, false, err
	}
	var best *webhooks.Retry
	for _, r := range ep.retries {
		if r.Due.After(now) {
			continue
		}
		if best == nil || r.Due.Before(best.Due) || r.Due.Equal(best.Due) && r.EventID.Less(best.EventID) {
			best = r
		}
	}
	if best == nil {
		return webhooks.Retry{}, false, nil
	}
	out := *best
	out.Body = slices.Clone(best.Body)
	best.Due = now.Add(hold)
	return out, true, nil
}

// CompleteRetry removes a retry.
func (m *MemoryWebhooks) CompleteRetry(_ context.Context, id, owner string, event event.ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.owned(id, owner)
	if err != nil {
		return err
	}
	delete(ep.retries, event)
	return nil
}

// RetryStats counts queued retries.
func (m *MemoryWebhooks) RetryStats(_ context.Context, id string) (int, time.Time, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.get(id)
	if err != nil {
		return 0, time.Time{}, err
	}
	var next time.Time
	for _, r := range ep.retries {
		if next.IsZero() || r.Due.Before(next) {
			next = r.Due
		}
	}
	return len(ep.retries), next, nil
}

// RecordDelivery appends d, keeping the newest DeliveryLogSize records.
func (m *MemoryWebhooks) RecordDelivery(_ context.Context, id string, d webhooks.Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.get(id)
	if err != nil {
		return err
	}
	ep.log = append(ep.log, d)
	if n := len(ep.log); n > DeliveryLogSize {
		ep.log = slices.Delete(ep.log, 0, n-DeliveryLogSize)
	}
	return nil
}

// Deliveries returns up to limit records, newest first.
func (m *MemoryWebhooks) Deliveries(_ context.Context, id string, limit int) ([]webhooks.Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ep, err := m.get(id)
	if err != nil {
		return nil, err
	}
	out := make([]webhooks.Delivery, 0, min(limit, len(ep.log)))
	for i := len(ep.log) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, ep.log[i])
	}
	return out, nil
}
