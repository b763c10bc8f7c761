// Package handlers is eventgate's HTTP surface: routes, SSE, WebSocket and middleware. It drains
// subscriptions of the streams.Hub and never talks to a store backend directly.
package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
	"github.com/eventgate/eventgate/webhooks"
)

// Config holds the HTTP layer's settings. Zero values select the documented defaults (docs/operations.md#configuration).
type Config struct {
	// Heartbeat is the interval of SSE comment lines (default 15s).
	Heartbeat time.Duration
	// Retry is the reconnect delay sent in the stream's first retry: line (default 2s).
	Retry time.Duration
	// WriteTimeout bounds each write to a client; a client that accepts nothing for this long is
	// disconnected (default 10s). It is per write, never per response, so streams live on.
	WriteTimeout time.Duration
	// DrainSpread spreads the shutdown of open streams over this long after Drain (default 0: at
	// once), so clients do not all reconnect in the same instant.
	DrainSpread time.Duration
	// MaxEventBytes caps one event's size (default 65536).
	MaxEventBytes int
	// MaxBodyBytes caps a publish request body (default 8 MiB).
	MaxBodyBytes int64
	// BodyTimeout bounds reading a request body, from the request's start (default 10s; 408).
	BodyTimeout time.Duration
	// MaxRequestsPerIP caps each client IP's non-stream requests in flight on this instance
	// (default 32; 429).
	MaxRequestsPerIP int
	// IdempotencyTTL is how long an Idempotency-Key is remembered (default 24h).
	IdempotencyTTL time.Duration
	// AllowedOrigins are the browser origins (scheme://host[:port]) allowed on the WebSocket route
	// and on state-changing routes besides the server's own host; "*" allows any (default: same
	// host only).
	AllowedOrigins []string
	// MaxConnections caps streaming connections on this instance (default 1000).
	MaxConnections int
	// MaxConnectionsPerIP caps streaming connections per client IP, across instances when the
	// leases are in Redis (default 10).
	MaxConnectionsPerIP int
	// MaxTopics caps the distinct topic patterns, and the distinct types, of one SSE or history
	// request and of one WebSocket connection (default 64).
	MaxTopics int
	// TrustedProxies are CIDRs whose X-Forwarded-For / X-Real-IP are believed (default none).
	TrustedProxies []string
	// Auth verifies bearer tokens on the API routes; nil disables authentication (only
	// EVENTGATE_AUTH=none does that at the binary level).
	Auth *auth.Verifier
	// ExternalMetrics means /metrics is served on a listener of its own (EVENTGATE_METRICS_ADDR,
	// with telemetry.Metrics.Handler) and not by Handler.
	ExternalMetrics bool
}

func (c *Config) defaults() {
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Retry <= 0 {
		c.Retry = 2 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.MaxEventBytes <= 0 {
		c.MaxEventBytes = 65536
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 8 << 20
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 1000
	}
	if c.BodyTimeout <= 0 {
		c.BodyTimeout = 10 * time.Second
	}
	if c.MaxRequestsPerIP <= 0 {
		c.MaxRequestsPerIP = 32
	}
	if c.MaxConnectionsPerIP <= 0 {
		c.MaxConnectionsPerIP = 10
	}
	if c.MaxTopics <= 0 {
		c.MaxTopics = 64
	}
	if c.IdempotencyTTL <= 0 {
		c.IdempotencyTTL = 24 * time.Hour
	}
}

// Pinger is a store that can say whether it answers (for /readyz).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the collaborators a Server drains and calls. All are required.
type Deps struct {
	Hub      *streams.Hub
	Log      streams.Log
	Receipts streams.Receipts
	// Jobs holds job and queue state folded from the log (docs/api.md#job-and-queue-state).
	Jobs   jobs.Store
	Leases limits.Leases
	Store  Pinger
	Logger *slog.Logger
	// ConnectLimiter charges each /stream and /ws request to its client IP (EVENTGATE_CONNECT_RATE);
	// PublishLimiter each publish to its token subject (EVENTGATE_PUBLISH_RATE). Optional: nil
	// admits everything.
	ConnectLimiter, PublishLimiter limits.RateLimiter
	// Metrics is the metric set (nil: a fresh one, seen only on this server's /metrics). Pass the
	// same set to the hub (HubOptions.Observer) and the store (RedisOptions.OnInvalid).
	Metrics *telemetry.Metrics
	// Webhooks is the webhook management service (docs/api.md#webhooks); nil leaves its routes out.
	Webhooks *webhooks.Service
	// Catalogue returns the catalogue GET /api/v1/catalogue lists (nil: event.Current, the
	// installed one, which a reload replaces).
	Catalogue func() *event.Catalogue
}

// Server serves eventgate's HTTP API. Its methods are safe for concurrent use.
type Server struct {
	cfg    Config
	hub    *streams.Hub
	log    *slog.Logger
	events streams.Log
	// publisher appends published batches, at most once per Idempotency-Key.
	publisher *streams.Publisher
	jobs      jobs.Store
	leases    limits.Leases
	store     Pinger
	metrics   *telemetry.Metrics
	webhooks  *webhooks.Service
	active    atomic.Int64 // streaming connections held
	requests  ipGate       // non-stream requests in flight per client IP (input.go)
	// connectRate and publishRate are the rate-limited routes (handlers/ratelimit.go).
	connectRate, publishRate *rateRoute
	engine                   *gin.Engine
	// trusted is TrustedProxies parsed: whose X-Forwarded-Proto the origin check believes.
	trusted []netip.Prefix

	ws wsConns // open WebSocket connections, for Drain
	// lingerEnded, if set (tests only), is told how each WebSocket writer's linger ended: by a
	// wake-up (true) or by running out (false). Timing alone cannot tell a lost wake-up.
	lingerEnded func(woken bool)
	// drainCtx ends when the server starts draining (startDrain).
	drainCtx   context.Context
	startDrain context.CancelFunc
	// abortCtx ends when CloseStreams ends the streams still open: a hijacked SSE stream's
	// departure context derives from it.
	abortCtx     context.Context
	abortStreams context.CancelFunc
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) (*Server, error) {
	cfg.defaults()
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Metrics == nil {
		deps.Metrics = telemetry.NewMetrics()
	}
	s := &Server{
		cfg: cfg, hub: deps.Hub, log: deps.Logger, events: deps.Log, jobs: deps.Jobs, leases: deps.Leases,
		store: deps.Store, metrics: deps.Metrics, webhooks: deps.Webhooks,
		connectRate: &rateRoute{name: RouteConnect, limiter: deps.ConnectLimiter, key: connectKey, failOpen: connectFailOpen},
		publishRate: &rateRoute{name: RoutePublish, limiter: deps.PublishLimiter, key: publishKey, failOpen: publishFailOpen},
	}
	s.publisher = streams.NewPublisher(deps.Log, deps.Receipts, streams.PublisherOptions{ReceiptTTL: cfg.IdempotencyTTL, Logger: deps.Logger})
	drainCtx, startDrain := context.WithCancel(context.Background())
	s.drainCtx, s.startDrain = drainCtx, startDrain
	s.abortCtx, s.abortStreams = context.WithCancel(context.Background())
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	// gin trusts every proxy by default, letting clients pick their IP with X-Forwarded-For.
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	trusted, err := parseTrusted(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies: %w", err)
	}
	s.trusted = trusted
	e.RemoteIPHeaders = []string{"X-Forwarded-For", "X-Real-IP"}
	e.HandleMethodNotAllowed = true
	// gin answers a trailing-slash variant with a redirect before any middleware runs, so the
	// request guards (a body's deadline among them) would not apply: 404 instead.
	e.RedirectTrailingSlash = false
	e.Use(s.observeHTTP, s.recover, s.guardRequest)
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, fmt.Errorf("%w: no route %s %s", errNotFound, c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, fmt.Errorf("%w: %s is not allowed on %s", errMethod, c.Request.Method, c.Request.URL.Path))
	})

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/", s.console)                   // the live console page (console.go); open, holds no data
	e.GET("/console/:file", s.consoleAsset) // its script, style sheet and icon
	if !cfg.ExternalMetrics {
		e.GET("/metrics", gin.WrapH(s.metrics.Handler())) // open (docs/operations.md#metrics); keep it off public proxies
	}
	api := e.Group("/api/v1")
	// Auth first, then the rate limit (per client IP / per subject), then the connection caps.
	subscribe, connect := s.requireScope(auth.ScopeSubscribe), s.rateLimit(s.connectRate)
	api.GET("/stream", subscribe, connect, s.admit, s.stream)
	api.GET("/ws", subscribe, connect, s.admit, s.websocket)
	api.POST("/events", s.requireScope(auth.ScopePublish), s.rateLimit(s.publishRate), s.publish)
	api.GET("/events", subscribe, s.history)
	api.GET("/jobs/:id", subscribe, s.job)
	api.GET("/queue", subscribe, s.queue)
	s.webhookRoutes(api)
	s.catalogueRoutes(api, deps.Catalogue)
	s.engine = e
	return s, nil
}

// Handler returns the HTTP handler serving every route.
func (s *Server) Handler() http.Handler { return s.engine }

// Drain starts the graceful shutdown: /readyz turns 503, open streams get a shutdown event and
// end, new stream requests get 200 + retry: + shutdown. Idempotent.
func (s *Server) Drain() {
	s.startDrain()
	s.ws.drain() // idle WebSocket connections have no goroutine watching s.drainCtx
}

// CloseStreams ends every streaming connection still open — a WebSocket without waiting for its
// client's answer to the close frame, an SSE stream even in the middle of a write — and waits
// until each is released (its close line logged, as ended by the shutdown) or ctx ends: the last
// step of a drain whose grace runs out, before the process exits. net/http tracks neither: both
// hijack their connections.
func (s *Server) CloseStreams(ctx context.Context) {
	s.abortStreams()
	s.ws.closeAll()
	for s.Active() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond) // poll interval: streams end as soon as their sockets close
	}
}

func (s *Server) aborted() bool { return s.abortCtx.Err() != nil }

func (s *Server) isDraining() bool { return s.drainCtx.Err() != nil }

// recover turns a panic into a logged 500 in the JSON error shape (docs/api.md#errors).
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			if r == http.ErrAbortHandler {
				panic(r)
			}
			s.log.Error("panic in handler", "route", c.FullPath(), "panic", fmt.Sprint(r))
			if !c.Writer.Written() {
				s.fail(c, fmt.Errorf("panic: %v", r))
			}
		}
	}()
	c.Next()
}

func (s *Server) healthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// readyTimeout bounds /readyz's store check, so that the answer (503 when the store does not
// answer) comes within the 2 s that probes allow it, whatever the store does.
const readyTimeout = 1500 * time.Millisecond

func (s *Server) readyz(c *gin.Context) {
	if s.isDraining() {
		s.fail(c, errDraining)
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.fail(c, fmt.Errorf("%w: %v", streams.ErrUnavailable, err))
		return
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}
