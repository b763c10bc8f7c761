package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/handlers"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
)

// gateway is one running eventgate: the store, the hub and its drainers, the HTTP server and the
// side listeners. run owns it; its steps run in order: assemble, listen, start, wait, drain.
type gateway struct {
	cfg     config
	logger  *slog.Logger
	backend backend
	hub     *streams.Hub
	hooks   *webhookRuntime
	srv     *handlers.Server
	metrics *telemetry.Metrics

	ln       net.Listener
	httpSrv  *http.Server
	side     []*http.Server
	serveErr chan error

	stopHub context.CancelFunc
	hubDone chan struct{}
}

// assemble opens the store and builds the hub, the webhook runtime and the HTTP handlers. On
// failure it prints one line naming the setting and returns a nil gateway and the exit code.
func assemble(cfg config, verifier *auth.Verifier, metrics *telemetry.Metrics, logger *slog.Logger, stderr io.Writer) (*gateway, func(), int) {
	g := &gateway{cfg: cfg, logger: logger, metrics: metrics, serveErr: make(chan error, 3), hubDone: make(chan struct{})}
	b, closeStore, err := openStore(cfg, logger, g.metrics.InvalidEntry)
	if err != nil {
		fmt.Fprintf(stderr, "eventgate: %v\n", err) // the error names the setting
		return nil, nil, 2
	}
	g.backend = b
	g.metrics.Registry().MustRegister(b.collectors...)
	connectLimiter, publishLimiter := rateLimiters(cfg, b.redis)
	window := cfg.CatchUpWindow
	if window == 0 {
		window = -1 // none
	}
	g.hub = streams.NewHub(b.log, streams.HubOptions{Buffer: cfg.SubscriberBuffer, Window: window, Interval: cfg.DispatchInterval, Logger: logger, Observer: g.metrics, Resync: jobs.ResyncQueue(b.jobs)})
	g.hooks = newWebhookRuntime(cfg, logger, g.hub, b.log, b.webhooks, g.metrics.WebhookObserver())
	g.srv, err = handlers.New(handlerConfig(cfg, verifier), handlers.Deps{
		ConnectLimiter: connectLimiter, PublishLimiter: publishLimiter, Metrics: g.metrics,
		Hub: g.hub, Log: b.log, Receipts: b.receipts, Jobs: b.jobs, Leases: b.leases, Store: b.log,
		Logger: logger, Webhooks: g.hooks.service,
	})
	if err != nil {
		closeStore()
		fmt.Fprintf(stderr, "eventgate: invalid configuration: EVENTGATE_TRUSTED_PROXIES: %v\n", err)
		return nil, nil, 2
	}
	return g, closeStore, 0
}

// handlerConfig maps the configuration onto the HTTP server's settings.
func handlerConfig(cfg config, verifier *auth.Verifier) handlers.Config {
	return handlers.Config{
		Heartbeat:           cfg.Heartbeat,
		Retry:               cfg.Retry,
		WriteTimeout:        cfg.WriteTimeout,
		MaxEventBytes:       cfg.MaxEventBytes,
		MaxBodyBytes:        int64(cfg.MaxBodyBytes),
		BodyTimeout:         cfg.BodyTimeout,
		MaxRequestsPerIP:    cfg.MaxRequestsPerIP,
		DrainSpread:         cfg.ShutdownGrace / 2,
		TrustedProxies:      cfg.TrustedProxies,
		AllowedOrigins:      cfg.AllowedOrigins,
		MaxConnections:      cfg.MaxConns,
		MaxConnectionsPerIP: cfg.MaxConnsPerIP,
		MaxTopics:           cfg.MaxTopics,
		ExternalMetrics:     cfg.MetricsAddr != "",
		Auth:                verifier,
	}
}

// listen opens the public listener and the side listeners (metrics, profiles), each on an address
// of its own when configured: never the public one. It returns a non-zero exit code on failure.
func (g *gateway) listen(stderr io.Writer) int {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "eventgate: EVENTGATE_ADDR: %v\n", err)
		return 1
	}
	g.ln = ln
	g.httpSrv = &http.Server{
		Handler:           g.srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// No WriteTimeout: it is a deadline for the whole response and would kill streams.
		// Streams set a deadline per write instead.
		ErrorLog: slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn),
	}
	for _, l := range []struct {
		env, addr, what string
		handler         http.Handler
		writeTimeout    time.Duration // none for profiles: ?seconds= may ask for longer
	}{
		{"EVENTGATE_METRICS_ADDR", g.cfg.MetricsAddr, "metrics", metricsHandler(g.metrics), 30 * time.Second},
		{"EVENTGATE_DEBUG_ADDR", g.cfg.DebugAddr, "profiles", debugHandler(), 0},
	} {
		if l.addr == "" {
			continue
		}
		sln, err := net.Listen("tcp", l.addr)
		if err != nil {
			fmt.Fprintf(stderr, "eventgate: %s: %v\n", l.env, err)
			_ = ln.Close()
			for _, s := range g.side {
				_ = s.Close()
			}
			return 1
		}
		s := &http.Server{Handler: l.handler, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: l.writeTimeout,
			ErrorLog: slog.NewLogLogger(g.logger.Handler(), slog.LevelWarn)}
		g.side = append(g.side, s)
		go func() { g.serveErr <- s.Serve(sln) }()
		g.logger.Info(l.what+" listening", "addr", sln.Addr().String())
	}
	return 0
}

// start runs the hub's reader, the store's upkeep, the job projector and the webhook dispatcher,
// then serves the public listener.
func (g *gateway) start() {
	hubCtx, stopHub := context.WithCancel(context.Background())
	g.stopHub = stopHub
	go func() { defer close(g.hubDone); _ = g.hub.Run(hubCtx) }()
	if g.backend.background != nil {
		go g.backend.background(hubCtx)
	}
	go func() { _ = jobs.NewProjector(g.hub, g.backend.jobs, g.logger).Run(hubCtx) }()
	g.hooks.start()
	go func() { g.serveErr <- g.httpSrv.Serve(g.ln) }()
	g.logger.Info("eventgate listening", "addr", g.ln.Addr().String(), "store", g.backend.name, "durable", g.backend.durable)
	if !g.backend.durable {
		g.logger.Warn("no EVENTGATE_REDIS_URL: using the in-process store; events are lost on restart")
	}
}

// wait blocks until a signal ends ctx (nil) or a listener fails (its error).
func (g *gateway) wait(ctx context.Context) error {
	select {
	case err := <-g.serveErr:
		return err
	case <-ctx.Done():
		return nil
	}
}

// stop ends everything at once, after a failure.
func (g *gateway) stop() {
	_ = g.httpSrv.Close()
	for _, s := range g.side {
		_ = s.Close()
	}
	g.stopHub()
	<-g.hubDone
}

// drain is the graceful shutdown (docs/operations.md#drain-and-shutdown), within EVENTGATE_SHUTDOWN_GRACE: /readyz turns 503,
// streams end spread over half the grace, webhook deliveries in flight finish or stay pending,
// then the listeners close and the hub stops.
func (g *gateway) drain() {
	grace := g.cfg.ShutdownGrace
	g.logger.Info("shutting down", "grace", grace.String())
	began := time.Now()
	g.srv.Drain()
	hooksDone := g.hooks.shutdown(began.Add(grace), g.logger)
	// Keep the listener open while streams end: /readyz answers 503 and a new SSE request gets
	// 200 + retry + shutdown rather than a refused connection.
	for g.srv.Active() > 0 && time.Since(began) < grace*3/4 {
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	ctx, cancel := context.WithDeadline(context.Background(), began.Add(grace))
	defer cancel()
	// Streams still open (stuck clients, WebSockets waiting for their clients' close frames) end
	// now, so that each is released and logged before the process exits; net/http does not track
	// hijacked connections.
	g.srv.CloseStreams(ctx)
	if err := g.httpSrv.Shutdown(ctx); err != nil {
		g.logger.Warn("grace period over; closing remaining connections", "err", err)
		_ = g.httpSrv.Close()
	}
	for _, s := range g.side {
		_ = s.Close() // scrapes and profiles: nothing to drain
	}
	<-hooksDone
	g.stopHub()
	<-g.hubDone
	g.logger.Info("stopped")
}
