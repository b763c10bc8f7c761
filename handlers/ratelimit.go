package handlers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/streams"
)

// errRateLimited is wrapped when a rate limit refuses a request (429).
var errRateLimited = errors.New("rate limited")

// limiterTimeout bounds one limiter decision (a healthy Redis answers in well under a
// millisecond); past it the route's failure policy applies.
const limiterTimeout = 500 * time.Millisecond

// limiterLogEvery bounds the limiter-failure log lines to one per route per interval; the
// counter still counts every failure.
const limiterLogEvery = 10 * time.Second

// Rate-limited routes, as named in logs, counters and LimiterErrors. Their refusals are counted
// in eventgate_rejections_total with reason "<route>_rate" (connect_rate, publish_rate).
const (
	RouteConnect = "connect" // GET /api/v1/stream and /api/v1/ws, per client IP
	RoutePublish = "publish" // POST /api/v1/events, per token subject
)

// rateRoute is one rate-limited route: its limiter, its key, and what happens when the limiter
// fails. Its counters are safe for concurrent use.
type rateRoute struct {
	name    string
	limiter limits.RateLimiter
	key     func(c *gin.Context) string
	// failOpen admits the request when the limiter cannot decide (its store is down); otherwise
	// the request is refused with 503.
	failOpen bool

	errors  atomic.Uint64
	mu      sync.Mutex
	lastLog time.Time
	muted   uint64 // failures not logged since lastLog
}

// Why each route fails open (docs/operations.md#rate-limits): the limiter shares the Redis of the
// log.
//   - connect: streaming availability matters more than the connect budget, and the connection
//     caps (per instance, per IP) still bound what a flood can hold.
//   - publish: while Redis is down the append fails with 503 anyway; when only the limiter's call
//     failed, refusing would drop events that the log could take.
const (
	connectFailOpen = true
	publishFailOpen = true
)

// connectKey buckets stream connections by client IP (gin's ClientIP, which believes
// X-Forwarded-For only from EVENTGATE_TRUSTED_PROXIES).
func connectKey(c *gin.Context) string { return "ip:" + c.ClientIP() }

// publishKey buckets publishes by token subject, or by client IP when auth is disabled.
func publishKey(c *gin.Context) string {
	if sub := subjectOf(c); sub != "" {
		return "sub:" + sub
	}
	return "ip:" + c.ClientIP()
}

// rateLimit is the middleware of r. It sets X-RateLimit-Limit, -Remaining and -Reset (Unix
// seconds) on every answer it decides, and refuses a request over the budget with 429 +
// Retry-After. A nil limiter admits everything.
func (s *Server) rateLimit(r *rateRoute) gin.HandlerFunc {
	return func(c *gin.Context) {
		if r.limiter == nil {
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), limiterTimeout)
		res, err := r.limiter.Allow(ctx, r.key(c))
		cancel()
		if err != nil && c.Request.Context().Err() != nil {
			c.Abort() // the client went away: nothing to decide, nothing to count
			return
		}
		if err != nil {
			s.metrics.LimiterError(c.FullPath())
			r.failed(s, err)
			if r.failOpen {
				return
			}
			s.fail(c, fmt.Errorf("%w: the rate limiter is unavailable: %w", streams.ErrUnavailable, err))
			return
		}
		h := c.Writer.Header()
		h.Set("X-RateLimit-Limit", strconv.FormatInt(res.Limit, 10))
		h.Set("X-RateLimit-Remaining", strconv.FormatInt(res.Remaining, 10))
		h.Set("X-RateLimit-Reset", strconv.FormatInt(res.Reset.Unix(), 10))
		if !res.Reached {
			return
		}
		// Reset is whole seconds, cut down: the window ends within the second after it.
		wait := max(int64(math.Ceil(time.Until(res.Reset.Add(time.Second)).Seconds())), 1)
		h.Set("Retry-After", strconv.FormatInt(wait, 10))
		s.reject(c, r.name+"_rate")
		s.fail(c, fmt.Errorf("%w: at most %d %s requests per window; retry in %d s", errRateLimited, res.Limit, r.name, wait))
	}
}

// failed counts a limiter failure and logs it, at most once per limiterLogEvery.
func (r *rateRoute) failed(s *Server, err error) {
	r.errors.Add(1)
	r.mu.Lock()
	now := time.Now()
	if now.Sub(r.lastLog) < limiterLogEvery {
		r.muted++
		r.mu.Unlock()
		return
	}
	muted := r.muted
	r.lastLog, r.muted = now, 0
	r.mu.Unlock()
	policy := "failing closed (503)"
	if r.failOpen {
		policy = "failing open (request admitted)"
	}
	s.log.Warn("rate limiter unavailable; "+policy, "route", r.name, "err", err, "unlogged_failures", muted)
}

// LimiterErrors returns how many decisions of route's rate limiter (RouteConnect, RoutePublish)
// failed since start, each of which applied the route's failure policy. Safe for concurrent use.
func (s *Server) LimiterErrors(route string) uint64 {
	switch route {
	case RouteConnect:
		return s.connectRate.errors.Load()
	case RoutePublish:
		return s.publishRate.errors.Load()
	}
	return 0
}
