package webhooks

import (
	"context"
	"errors"
	"time"

	"github.com/eventgate/eventgate/event"
)

// Webhook storage: the registry of endpoints, the per-endpoint delivery state (ownership lease,
// cursor, retry queue) and the delivery log. This file declares the ports the service and the
// delivery engine need; package store implements them (and so imports this package, never the
// other way round).

var (
	// ErrNotFound is returned for an unknown endpoint id. Callers map it to 404.
	ErrNotFound = errors.New("webhook not found")
	// ErrLeaseLost is returned by the fenced queue operations when the caller no longer owns the
	// endpoint (its lease expired and another instance took over, or the endpoint was deleted).
	ErrLeaseLost = errors.New("webhook lease lost")
	// ErrTooMany is returned by CreateWebhook when the registry already holds its limit
	// of endpoints. Callers map it to 409.
	ErrTooMany = errors.New("too many webhooks")
)

// Webhook is a registered endpoint. Values are copies: changing one changes nothing stored.
type Webhook struct {
	ID          string
	URL         string
	Topics      []string // topic patterns as written (empty: all)
	Types       []string // event types (empty: all)
	Description string
	// Secret is the signing secret ("whsec_" + base64 of 32 random bytes).
	Secret  string
	Enabled bool
	// DisabledReason says why delivery stopped ("disabled by API", "endpoint answered 410 Gone").
	DisabledReason string
	CreatedAt      time.Time
}

// Retry is one event waiting for another delivery attempt to one endpoint.
type Retry struct {
	// EventID is the log position of the event; it is the webhook-id of every attempt.
	EventID event.ID
	// Attempt is the number of the next attempt (2 for the first retry).
	Attempt int
	// Due is when the attempt may start.
	Due time.Time
	// Body is the event envelope (docs/api.md#envelope), kept with the retry so that a retry outlives
	// the event's stay in the capped log.
	Body []byte
}

// Delivery is one entry of an endpoint's delivery log: an attempt, or a note (resync).
type Delivery struct {
	EventID event.ID
	Attempt int
	// Outcome is success, http_3xx, http_4xx, http_5xx, timeout, blocked, network, or note.
	Outcome string
	// Status is the HTTP status answered (0 when none).
	Status int
	// Error is a short error class or note text ("" on success).
	Error    string
	Duration time.Duration
	Time     time.Time
	// NextAttempt is when the event is tried again (zero: no further attempt).
	NextAttempt time.Time
	// Final marks the last attempt of an event that failed for good.
	Final bool
}

// Registry stores endpoints. Implementations are safe for concurrent use and, in Redis,
// shared by every instance.
type Registry interface {
	// CreateWebhook stores w (its ID must be new) with its delivery cursor at cursor: delivery
	// starts with the first event after it. With limit > 0 it refuses, with an error wrapping
	// ErrTooMany and nothing stored, when limit endpoints exist already; the count and the
	// insert are one atomic step, so concurrent creations (in Redis: from any instance) never
	// exceed the limit.
	CreateWebhook(ctx context.Context, w Webhook, cursor event.ID, limit int) error
	// Webhook returns one endpoint or an error wrapping ErrNotFound.
	Webhook(ctx context.Context, id string) (Webhook, error)
	// Webhooks returns every endpoint, oldest first.
	Webhooks(ctx context.Context) ([]Webhook, error)
	// SetWebhookEnabled turns delivery on or off, with the reason when off, and returns the result.
	SetWebhookEnabled(ctx context.Context, id string, enabled bool, reason string) (Webhook, error)
	// DeleteWebhook removes the endpoint with its cursor, retries, lease and delivery log.
	DeleteWebhook(ctx context.Context, id string) error
}

// Queue is the durable delivery state of endpoints. One instance at a time owns an
// endpoint through a renewable lease; the cursor and retry operations are fenced by it and return
// an error wrapping ErrLeaseLost when owner no longer holds the lease.
type Queue interface {
	// AcquireWebhook takes or renews the lease on endpoint id for owner, for ttl. ok is false when
	// another owner holds it or the endpoint does not exist.
	AcquireWebhook(ctx context.Context, id, owner string, ttl time.Duration) (ok bool, err error)
	// ReleaseWebhook gives the lease up if owner holds it.
	ReleaseWebhook(ctx context.Context, id, owner string) error
	// WebhookCursor returns the last position handed off (delivered or queued for retry).
	WebhookCursor(ctx context.Context, id string) (event.ID, error)
	// AdvanceWebhookCursor moves the cursor forward to to (never back).
	AdvanceWebhookCursor(ctx context.Context, id, owner string, to event.ID) error
	// ScheduleRetry queues r (replacing any retry of the same event).
	ScheduleRetry(ctx context.Context, id, owner string, r Retry) error
	// ClaimRetry takes the earliest retry due at now, hiding it from other claims until now+hold
	// (an owner that dies mid-attempt leaves it to the next owner). ok is false when none is due.
	ClaimRetry(ctx context.Context, id, owner string, now time.Time, hold time.Duration) (r Retry, ok bool, err error)
	// CompleteRetry removes the retry of event from the queue.
	CompleteRetry(ctx context.Context, id, owner string, event event.ID) error
	// RetryStats returns the number of queued retries and the earliest due time (zero if none).
	RetryStats(ctx context.Context, id string) (pending int, next time.Time, err error)
}

// DeliveryLog keeps the most recent delivery records of each endpoint.
type DeliveryLog interface {
	// RecordDelivery adds d to the endpoint's log, keeping the newest entries only.
	RecordDelivery(ctx context.Context, id string, d Delivery) error
	// Deliveries returns up to limit records, newest first.
	Deliveries(ctx context.Context, id string, limit int) ([]Delivery, error)
}

// Store is everything webhook delivery keeps in a store.
type Store interface {
	Registry
	Queue
	DeliveryLog
}
