package handlers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// ctxOwned marks that a streaming handler took over the connection's slots (and will release
// them when the connection ends); ctxConnID carries the connection id.
const (
	ctxOwned  = "eventgate.owned"
	ctxConnID = "eventgate.conn"
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
		s.metrics.storeErr(storeErrLeases)
		ok, leased = true, false
	}
	if !ok {
		s.active.Add(-1)
		s.reject(c, RejectMaxConnectionsPerIP)
		c.Header("Retry-After", "5")
		s.fail(c, fmt.Errorf("%w: at most %d concurrent connections per client", errTooManyConnections, s.cfg.MaxConnectionsPerIP))
		return
	}
	release := sync.OnceFunc(func() {
		s.active.Add(-1)
		if leased {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := s.leases.Release(ctx, ip, id); err != nil {
				s.log.Warn("releasing connection lease failed; it will expire", "err", err)
			}
		}
	})
	c.Set(ctxConnID, id)
	c.Set(ctxRelease, release)
	// Deferred: a panic below (recovered further up) must not leak the slot or the lease.
	defer func() {
		if !c.GetBool(ctxOwned) {
			release()
		}
	}()
	c.Next()
}

// Active returns the number of streaming connections this instance holds.
func (s *Server) Active() int { return int(s.active.Load()) }
