package handlers

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/telemetry"
)

// admit is the connection cap of /stream and /ws, checked before the stream starts or the upgrade:
// EVENTGATE_MAX_CONNECTIONS per instance (503 + Retry-After), EVENTGATE_MAX_CONNECTIONS_PER_IP
// across instances when leases are in Redis (429). The slots are freed the moment the connection
// ends, whatever the reason.
func (s *Server) admit(c *gin.Context) {
	if s.active.Add(1) > int64(s.cfg.MaxConnections) {
		s.active.Add(-1)
		s.reject(c, RejectMaxConnections)
		c.Header("Retry-After", "5")
		s.fail(c, fmt.Errorf("%w: this instance holds its maximum of %d connections", errOverloaded, s.cfg.MaxConnections))
		return
	}
	id, ip := connID(), c.ClientIP()
	leased := true
	leaseCtx, cancel := context.WithTimeout(c, 500*time.Millisecond) // an outage must not stall connects
	ok, err := s.leases.Acquire(leaseCtx, ip, id, s.cfg.MaxConnectionsPerIP)
	cancel()
	if err != nil {
		// Fail open: a lease store outage must not take streaming down; the per-instance cap
		// still bounds the damage.
		s.log.Warn("connection lease unavailable; admitting without per-IP check", "err", err)
		s.metrics.StoreError(telemetry.StoreLeases)
		ok, leased = true, false
	}
	if !ok {
		s.active.Add(-1)
		s.reject(c, RejectMaxConnectionsPerIP)
		c.Header("Retry-After", "5")
		s.fail(c, fmt.Errorf("%w: at most %d concurrent connections per client", errTooManyConnections, s.cfg.MaxConnectionsPerIP))
		return
	}
	sl := &slot{s: s, id: id, ip: ip, leased: leased}
	setSlot(c, sl)
	// Deferred: a panic below (recovered further up) must not leak the slot or the lease.
	defer func() {
		if !owned(c) {
			sl.release()
		}
	}()
	c.Next()
}

// slot is a connection's place under the caps: one of the instance's and, when leased, its lease
// under the client's IP. A streaming handler takes it over (setOwned) and releases it when the
// connection ends.
type slot struct {
	s        *Server
	id, ip   string // the connection id (the lease's) and the client IP
	leased   bool
	released atomic.Bool
}

// release frees the slot; calls after the first do nothing. Any goroutine.
func (sl *slot) release() {
	if sl.released.Swap(true) {
		return
	}
	sl.s.active.Add(-1)
	if sl.leased {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := sl.s.leases.Release(ctx, sl.ip, sl.id); err != nil {
			sl.s.log.Warn("releasing connection lease failed; it will expire", "err", err)
		}
	}
}

// Active returns the number of streaming connections this instance holds.
func (s *Server) Active() int { return int(s.active.Load()) }
