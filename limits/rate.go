// Package limits declares the ports of the request and connection limits that hold across
// instances: fixed-window rate limiting (RateLimiter, with Rate and its parser) and per-key
// connection leases (Leases). handlers enforces them; store implements them in process and in
// Redis, so neither depends on the other.
package limits

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidRate is wrapped by ParseRate errors.
var ErrInvalidRate = errors.New("invalid rate")

// Rate is a fixed-window request budget: Limit hits per Period. The zero Rate means "no limit".
// Rates are immutable values.
type Rate struct {
	Limit  int64
	Period time.Duration
}

// Off reports whether the rate imposes no limit.
func (r Rate) Off() bool { return r.Limit <= 0 || r.Period <= 0 }

// String returns the rate in the form ParseRate reads ("10-S"), or "off".
func (r Rate) String() string {
	if r.Off() {
		return "off"
	}
	for _, u := range rateUnits {
		if r.Period == u.period {
			return strconv.FormatInt(r.Limit, 10) + "-" + u.name
		}
	}
	return fmt.Sprintf("%d per %s", r.Limit, r.Period)
}

var rateUnits = []struct {
	name   string
	period time.Duration
}{{"S", time.Second}, {"M", time.Minute}, {"H", time.Hour}, {"D", 24 * time.Hour}}

// ParseRate reads "<limit>-<period>" with period S, M, H or D (ulule/limiter's format, e.g.
// "10-S", "1000-M"), or "off" for no limit. The limit is 1 to 10^9.
func ParseRate(s string) (Rate, error) {
	if strings.EqualFold(s, "off") {
		return Rate{}, nil
	}
	n, unit, ok := strings.Cut(s, "-")
	limit, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || limit < 1 || limit > 1e9 {
		return Rate{}, fmt.Errorf("%w: %q: want <limit>-<S|M|H|D> such as 10-S, limit 1 to 10^9, or off", ErrInvalidRate, s)
	}
	for _, u := range rateUnits {
		if strings.EqualFold(unit, u.name) {
			return Rate{Limit: limit, Period: u.period}, nil
		}
	}
	return Rate{}, fmt.Errorf("%w: %q: the period must be S, M, H or D", ErrInvalidRate, s)
}

// RateResult is the state of one key's budget after a hit.
type RateResult struct {
	// Limit is the budget of a window; Remaining what is left of it after this hit.
	Limit, Remaining int64
	// Reset is when the current window ends and the budget refills.
	Reset time.Time
	// Reached is true when this hit went over the budget: the request must be refused.
	Reached bool
}

// RateLimiter charges hits to keys (a client IP, a token subject) against one Rate. Backed by
// Redis, the budget is shared by every instance. Implementations are safe for concurrent use.
type RateLimiter interface {
	// Allow charges one hit to key. An error means the limiter could not decide (its store is
	// unreachable); the caller chooses to fail open or closed.
	Allow(ctx context.Context, key string) (RateResult, error)
}
