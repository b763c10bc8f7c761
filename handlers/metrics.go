package handlers

import (
	"time"

	"github.com/gin-gonic/gin"
)

// Rejection reasons, the values of the reason label of eventgate_rejections_total. Rate limiters
// pass their own constant reason to RateLimited.
const (
	// RejectMaxConnections: the instance holds EVENTGATE_MAX_CONNECTIONS (503).
	RejectMaxConnections = "max_connections"
	// RejectMaxConnectionsPerIP: the client holds EVENTGATE_MAX_CONNECTIONS_PER_IP (429).
	RejectMaxConnectionsPerIP = "max_connections_per_ip"
	// RejectDraining: the server is shutting down (SSE: 200 + shutdown; WebSocket: 503).
	RejectDraining = "draining"
	// RejectStoreUnavailable: the log is not readable yet (SSE: 200 + retry; WebSocket: 503).
	RejectStoreUnavailable = "store_unavailable"
)

// observeHTTP is the middleware that records eventgate_http_request_duration_seconds by route
// template ("unmatched" for no route). A streaming route is observed once, when it ends: SSE when
// the handler returns, WebSocket (whose handler returns after the upgrade) when the connection
// closes (see connInfo.close).
func (s *Server) observeHTTP(c *gin.Context) {
	start := time.Now()
	setStarted(c, start)
	defer func() {
		if observesLater(c) {
			return
		}
		s.metrics.ObserveRequest(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
	}()
	c.Next()
}

// reject counts a refusal of the request in c (see the Reject constants).
func (s *Server) reject(c *gin.Context, reason string) { s.metrics.RateLimited(c.FullPath(), reason) }
