package auth

import (
	"slices"
	"time"

	"github.com/eventgate/eventgate/event"
)

// Scopes a token may carry in its space-separated scope claim (docs/api.md#authentication).
const (
	ScopeSubscribe = "subscribe"
	ScopePublish   = "publish"
	ScopeAdmin     = "admin"
)

// KnownScope reports whether s is one of the scopes eventgate checks. Verify keeps unknown
// scopes (unused); Mint's callers refuse them, since a typo would mint a useless token.
func KnownScope(s string) bool {
	return s == ScopeSubscribe || s == ScopePublish || s == ScopeAdmin
}

// Principal is who a verified token speaks for. Immutable once built; shared by the goroutines
// of one connection.
type Principal struct {
	// Subject is the token's sub: rate limits and idempotency keys are per subject.
	Subject string
	// Scopes are the token's scopes (subscribe, publish, admin; unknown ones are kept, unused).
	Scopes []string
	// Topics are the patterns the token may subscribe to; nil means every topic. It is a grant
	// in the sense of event.GrantCovers.
	Topics []event.Pattern
	// Expires is the token's exp: live connections end then.
	Expires time.Time
}

// HasScope reports whether the principal holds scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }
