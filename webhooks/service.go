package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// ErrInvalid is wrapped by registration errors other than the URL's (description, ...). Callers
// map it to 400.
var ErrInvalid = errors.New("invalid webhook")

// maxDescription bounds an endpoint's description, in characters.
const maxDescription = 500

// DeliveriesLimit is how many delivery records Deliveries returns at most.
const DeliveriesLimit = 100

// DefaultMaxWebhooks is how many endpoints may exist at once unless WithMaxWebhooks says otherwise
// (EVENTGATE_MAX_WEBHOOKS).
const DefaultMaxWebhooks = 100

// CreateRequest registers an endpoint.
type CreateRequest struct {
	URL         string
	Topics      []string // topic patterns (empty: all)
	Types       []string // event types (empty: all)
	Description string
}

// Service is the management API's view of webhooks: registration with the URL policy, listing,
// enabling and the delivery log. It is safe for concurrent use.
type Service struct {
	store  Store
	log    streams.Log
	policy *Policy
	notify func()
	max    int // endpoints that may exist at once, counted in the store
}

// ServiceOption adjusts a Service at construction.
type ServiceOption func(*Service)

// WithMaxWebhooks caps how many endpoints may exist at once (n <= 0: DefaultMaxWebhooks). The
// count is kept by the store, so with Redis the cap holds across instances.
func WithMaxWebhooks(n int) ServiceOption {
	return func(s *Service) {
		if n > 0 {
			s.max = n
		}
	}
}

// NewService returns the service. notify (may be nil) is called after every change, so the local
// dispatcher picks it up at once (Dispatcher.Kick); other instances notice within their sync
// interval.
func NewService(store Store, log streams.Log, policy *Policy, notify func(), opts ...ServiceOption) *Service {
	if notify == nil {
		notify = func() {}
	}
	s := &Service{store: store, log: log, policy: policy, notify: notify, max: DefaultMaxWebhooks}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Create validates and stores a new endpoint, enabled, whose delivery starts with the first event
// appended after this call began. The returned Webhook carries the secret; it is the only time the
// API shows it. Beyond the cap (WithMaxWebhooks) the error wraps ErrTooMany.
func (s *Service) Create(ctx context.Context, req CreateRequest) (Webhook, error) {
	u, err := s.policy.CheckURL(ctx, req.URL)
	if err != nil {
		return Webhook{}, err
	}
	f, err := event.NewFilter(req.Topics, req.Types)
	if err != nil {
		return Webhook{}, err
	}
	if !utf8.ValidString(req.Description) || utf8.RuneCountInString(req.Description) > maxDescription {
		return Webhook{}, fmt.Errorf("%w: description must be valid UTF-8 of at most %d characters", ErrInvalid, maxDescription)
	}
	b, err := s.log.Bounds(ctx)
	if err != nil {
		return Webhook{}, err
	}
	w := Webhook{ID: newID(), URL: u.String(), Topics: f.TopicStrings(), Types: f.Types, Description: req.Description,
		Secret: NewSecret(), Enabled: true, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if len(f.Topics) == 0 {
		w.Topics = nil
	}
	if err := s.store.CreateWebhook(ctx, w, b.Last, s.max); err != nil {
		return Webhook{}, err
	}
	s.notify()
	return w, nil
}

// List returns every endpoint, oldest first.
func (s *Service) List(ctx context.Context) ([]Webhook, error) { return s.store.Webhooks(ctx) }

// Get returns one endpoint.
func (s *Service) Get(ctx context.Context, id string) (Webhook, error) {
	if !validID(id) {
		return Webhook{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return s.store.Webhook(ctx, id)
}

// SetEnabled turns delivery on (it resumes from where it stopped) or off.
func (s *Service) SetEnabled(ctx context.Context, id string, enabled bool) (Webhook, error) {
	if !validID(id) {
		return Webhook{}, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	w, err := s.store.SetWebhookEnabled(ctx, id, enabled, "disabled through the API")
	if err == nil {
		s.notify()
	}
	return w, err
}

// Delete removes the endpoint, its pending retries and its delivery log.
func (s *Service) Delete(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	err := s.store.DeleteWebhook(ctx, id)
	if err == nil {
		s.notify()
	}
	return err
}

// Deliveries returns the endpoint's most recent delivery records (at most DeliveriesLimit),
// newest first.
func (s *Service) Deliveries(ctx context.Context, id string) ([]Delivery, error) {
	if !validID(id) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return s.store.Deliveries(ctx, id, DeliveriesLimit)
}

// newID returns "wh_" and 24 hex digits.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "wh_" + hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 27 || id[:3] != "wh_" {
		return false
	}
	_, err := hex.DecodeString(id[3:])
	return err == nil
}
