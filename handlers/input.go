package handlers

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// RejectMaxRequestsPerIP is the eventgate_rejections_total reason of a request refused because its
// client IP has EVENTGATE_MAX_REQUESTS_PER_IP non-stream requests in flight (429).
const RejectMaxRequestsPerIP = "max_requests_per_ip"

// Routes the request guards treat apart: streams have their own caps (admit) and live longer than
// any body deadline; probes must answer while a client is being refused.
const (
	routeStream = "/api/v1/stream"
	routeWS     = "/api/v1/ws"
)

// guardRequest is the middleware that runs on every request before routing's handlers and before
// authentication. In order, it refuses:
//   - a query string that cannot be read whole (more than 10,000 parameters, a bad escape, a ';'):
//     400, rather than a handler that sees no filter and no position at all;
//   - a non-stream request over EVENTGATE_MAX_REQUESTS_PER_IP in flight from its client IP (429;
//     /healthz and /readyz are not counted);
//   - a body on a stream route (400);
//   - on a matched state-changing route (not GET, HEAD, OPTIONS), a browser Origin that
//     checkOrigin does not allow (403), as the WebSocket upgrade does;
//   - a body declared larger than EVENTGATE_MAX_BODY_BYTES (413), and on a matched
//     state-changing route a body that is not application/json (415).
//
// A body is then read under a deadline of EVENTGATE_BODY_TIMEOUT from the request's start
// (guardedBody); every answer given before it was read whole closes the connection (fail).
func (s *Server) guardRequest(c *gin.Context) {
	if _, err := url.ParseQuery(c.Request.URL.RawQuery); err != nil {
		s.fail(c, fmt.Errorf("%w: the query string cannot be read whole: %w", errBadRequest, err))
		return
	}
	r, route := c.Request, c.FullPath()
	rc := http.NewResponseController(c.Writer)
	if route == routeStream || route == routeWS {
		// Streams set a deadline per write; none left from an earlier request on the connection.
		_ = rc.SetWriteDeadline(time.Time{})
		if r.ContentLength != 0 {
			s.fail(c, fmt.Errorf("%w: %s takes no request body", errBadRequest, route))
		}
		return
	}
	// A response the client does not read must not hold the handler (and its per-IP place)
	// forever: it is written within the body's time and two write timeouts.
	_ = rc.SetWriteDeadline(time.Now().Add(s.cfg.BodyTimeout + 2*s.cfg.WriteTimeout))
	if route != "/healthz" && route != "/readyz" {
		ip := c.ClientIP()
		if !s.requests.acquire(ip, s.cfg.MaxRequestsPerIP) {
			s.reject(c, RejectMaxRequestsPerIP)
			c.Header("Retry-After", "1")
			s.fail(c, fmt.Errorf("%w: at most %d requests in flight per client", errTooManyRequests, s.cfg.MaxRequestsPerIP))
			return
		}
		defer s.requests.release(ip)
	}
	changes := r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions
	if changes && route != "" && !s.checkOrigin(r) {
		s.fail(c, fmt.Errorf("%w: origin %s may not change state here (EVENTGATE_ALLOWED_ORIGINS)", errForbidden, quoteCut(r.Header.Get("Origin"))))
		return
	}
	if r.ContentLength != 0 {
		if r.ContentLength > s.cfg.MaxBodyBytes {
			s.fail(c, fmt.Errorf("%w: the request body is over %d bytes", errTooLarge, s.cfg.MaxBodyBytes))
			return
		}
		if changes && route != "" && !isJSON(r.Header.Get("Content-Type")) {
			s.fail(c, fmt.Errorf("%w: a request body must be Content-Type: application/json", errUnsupportedMediaType))
			return
		}
		s.guardBody(c)
	}
	c.Next()
}

// isJSON reports whether a Content-Type header names application/json (parameters such as
// charset allowed, case ignored).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// guardBody sets the body's read deadline, EVENTGATE_BODY_TIMEOUT after the request started (its
// headers had arrived), and wraps the body in a guardedBody. Without it, net/http reads a body for
// as long as the client trickles it, even before answering 401.
func (s *Server) guardBody(c *gin.Context) {
	start := time.Now()
	if t, ok := startedAt(c); ok {
		start = t
	}
	rc := http.NewResponseController(c.Writer)
	// ErrNotSupported (test recorders, which hold no connection) leaves nothing to bound.
	_ = rc.SetReadDeadline(start.Add(s.cfg.BodyTimeout))
	b := &guardedBody{ReadCloser: c.Request.Body, rc: rc, timeout: s.cfg.BodyTimeout}
	c.Request.Body = b
	setBody(c, b)
}

// guardedBody is a request body read under a deadline. It turns the deadline into
// errRequestTimeout and lifts it at EOF: net/http then starts a background read that cancels the
// request context on any error, and a deadline left in place would cancel a slow handler. Used by
// the handler's goroutine only (net/http's own draining reads the body under it, not through it).
type guardedBody struct {
	io.ReadCloser
	rc       *http.ResponseController
	timeout  time.Duration
	done     bool // read to EOF
	timedOut bool // the deadline passed while reading
}

func (b *guardedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	switch {
	case err == io.EOF:
		if !b.done {
			b.done = true
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
		err = fmt.Errorf("%w: the request body did not arrive within %s: %w", errRequestTimeout, b.timeout, err)
	}
	return n, err
}

// closeUnreadBody makes an answer given before the request body was read whole the connection's
// last: net/http would otherwise read up to 256 KB of the rest first (before the answer, and again
// when closing the body), at whatever pace the client sends it. The read deadline is moved to now
// so that the final close does not wait either.
func closeUnreadBody(c *gin.Context) {
	if c.Request.ContentLength == 0 {
		return
	}
	if b := bodyOf(c); b != nil && b.done {
		return
	}
	c.Header("Connection", "close")
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now())
}

// ipGate counts each client IP's non-stream requests in flight. Safe for concurrent use.
type ipGate struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes a place for ip if it holds fewer than limit; release gives it back.
func (g *ipGate) acquire(ip string, limit int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[ip] >= limit {
		return false
	}
	if g.n == nil {
		g.n = make(map[string]int)
	}
	g.n[ip]++
	return true
}

func (g *ipGate) release(ip string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n[ip] <= 1 {
		delete(g.n, ip) // the map holds only IPs with requests in flight
		return
	}
	g.n[ip]--
}

// inFlight returns ip's requests in flight.
func (g *ipGate) inFlight(ip string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n[ip]
}
