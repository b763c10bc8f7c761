// Command eventgate is an SSE-first event gateway: producers publish typed events, eventgate
// appends them to a capped log (Redis Streams or an in-process ring) and fans them out to
// subscribers over Server-Sent Events.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/handlers"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/webhooks"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "publish":
			os.Exit(clientCommand(runPublishStd, os.Args[2:]))
		case "tail":
			os.Exit(clientCommand(runTailStd, os.Args[2:]))
		case "token":
			os.Exit(runToken(os.Args[2:], os.Getenv, os.Stdout, os.Stderr))
		case "dev-secret":
			os.Exit(runDevSecret(os.Args[2:], os.Stderr))
		case "nginx-config":
			os.Exit(runNginxConfig(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run starts the server and blocks until it has shut down; it returns the exit code.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "eventgate: invalid configuration: %v\n", err)
		return 2
	}
	verifier, err := buildVerifier(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "eventgate: invalid configuration: %v\n", err)
		return 2
	}
	logger := newLogger(cfg, stderr)
	slog.SetDefault(logger)
	tuneGC(logger)
	if verifier == nil {
		logger.Warn("EVENTGATE_AUTH=none: authentication is off; every route is open to anyone who can reach this address")
	} else {
		logger.Info("authentication on", "algorithm", verifier.Algorithm(), "connect_rate", cfg.ConnectRate.String(), "publish_rate", cfg.PublishRate.String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	metrics := handlers.NewMetrics()
	backend, closeBackend, err := openStore(cfg, logger, metrics.InvalidEntry)
	if err != nil {
		fmt.Fprintf(stderr, "eventgate: %v\n", err)
		return 2
	}
	defer closeBackend()
	metrics.Registry().MustRegister(backend.collectors...)
	connectLimiter, publishLimiter := rateLimiters(cfg, backend.redis)

	hub := streams.NewHub(backend.log, streams.HubOptions{Buffer: cfg.SubscriberBuffer, Logger: logger, Observer: metrics, Resync: jobs.ResyncQueue(backend.jobs)})
	hooks := newWebhookRuntime(cfg, logger, hub, backend.log, backend.webhooks, metrics.WebhookObserver())
	srv, err := handlers.New(handlers.Config{
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
		ExternalMetrics:     cfg.MetricsAddr != "",
		Auth:                verifier,
	}, handlers.Deps{ConnectLimiter: connectLimiter, PublishLimiter: publishLimiter, Metrics: metrics, Hub: hub, Log: backend.log, Receipts: backend.receipts, Jobs: backend.jobs, Leases: backend.leases, Store: backend.log, Logger: logger,
		Webhooks: hooks.service})
	if err != nil {
		fmt.Fprintf(stderr, "eventgate: invalid configuration: EVENTGATE_TRUSTED_PROXIES: %v\n", err)
		return 2
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		fmt.Fprintf(stderr, "eventgate: EVENTGATE_ADDR: %v\n", err)
		return 1
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		// No WriteTimeout: it is a deadline for the whole response and would kill streams.
		// Streams set a deadline per write instead.
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	hubCtx, stopHub := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(hubCtx) }()
	if backend.background != nil {
		go backend.background(hubCtx)
	}
	go func() { _ = jobs.NewProjector(hub, backend.jobs, logger).Run(hubCtx) }()
	hooks.start()

	serveErr := make(chan error, 3)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	// Side listeners, each on an address of its own when configured: never the public one.
	var side []*http.Server
	for _, l := range []struct {
		env, addr, what string
		handler         http.Handler
		writeTimeout    time.Duration // none for profiles: ?seconds= may ask for longer
	}{
		{"EVENTGATE_METRICS_ADDR", cfg.MetricsAddr, "metrics", metricsHandler(metrics), 30 * time.Second},
		{"EVENTGATE_DEBUG_ADDR", cfg.DebugAddr, "profiles", debugHandler(), 0},
	} {
		if l.addr == "" {
			continue
		}
		sln, err := net.Listen("tcp", l.addr)
		if err != nil {
			fmt.Fprintf(stderr, "eventgate: %s: %v\n", l.env, err)
			for _, srv := range side {
				_ = srv.Close()
			}
			_ = httpSrv.Close()
			stopHub()
			<-hubDone
			return 1
		}
		srv := &http.Server{Handler: l.handler, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: l.writeTimeout,
			ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		side = append(side, srv)
		go func() { serveErr <- srv.Serve(sln) }()
		logger.Info(l.what+" listening", "addr", sln.Addr().String())
	}
	logger.Info("eventgate listening", "addr", ln.Addr().String(), "store", backend.name, "durable", backend.durable)
	if !backend.durable {
		logger.Warn("no EVENTGATE_REDIS_URL or EVENTGATE_DATA_DIR: using the in-process store; events are lost on restart")
	}

	select {
	case err := <-serveErr:
		logger.Error("server failed", "err", err)
		stopHub()
		<-hubDone
		return 1
	case <-ctx.Done():
	}
	stop() // a second signal now ends the process at once (Go's default behaviour)
	logger.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	began := time.Now()
	srv.Drain()
	hooksDone := hooks.shutdown(began.Add(cfg.ShutdownGrace), logger) // in flight finish or stay pending
	// Keep the listener open while streams end (spread over half the grace): /readyz answers 503
	// and a new SSE request gets 200 + retry + shutdown rather than a refused connection.
	for srv.Active() > 0 && time.Since(began) < cfg.ShutdownGrace*3/4 {
		time.Sleep(50 * time.Millisecond)
	}
	shutdownCtx, cancel := context.WithDeadline(context.Background(), began.Add(cfg.ShutdownGrace))
	defer cancel()
	code := 0
	if err := httpSrv.Shutdown(shutdownCtx); err != nil {
		logger.Warn("grace period over; closing remaining connections", "err", err)
		_ = httpSrv.Close()
	}
	for _, srv := range side {
		_ = srv.Close() // scrapes and profiles: nothing to drain
	}
	<-hooksDone
	stopHub()
	<-hubDone
	logger.Info("stopped")
	return code
}

// backend is the configured log with its companions.
type backend struct {
	name    string
	durable bool
	log     interface {
		streams.Log
		handlers.Pinger
	}
	receipts streams.Receipts
	leases   limits.Leases
	jobs     jobs.Store
	webhooks webhooks.Store
	// background runs the store's upkeep (lease renewal) until its context ends; may be nil.
	background func(context.Context)
	// redis is the shared Redis client (rate limiters); nil on the in-process store.
	redis redis.UniversalClient
	// collectors are the store's own metrics (disk.go).
	collectors []prometheus.Collector
}

// openStore builds the Redis store when EVENTGATE_REDIS_URL is set (EVENTGATE_DATA_DIR is then
// ignored), else the on-disk store when EVENTGATE_DATA_DIR is set, else the in-process ring.
// A Redis that is down at start-up is not fatal: /readyz says 503 and the reader retries.
func openStore(cfg config, logger *slog.Logger, onInvalid func(event.ID, error)) (backend, func(), error) {
	if cfg.RedisURL == "" && cfg.DataDir != "" {
		return openDiskStore(cfg, logger, onInvalid)
	}
	if cfg.RedisURL == "" {
		return backend{name: "memory", log: store.NewMemory(cfg.Retention), receipts: store.NewMemoryReceipts(),
			leases: store.NewMemoryLeases(), jobs: store.NewMemoryJobs(cfg.JobStateTTL), webhooks: store.NewMemoryWebhooks()}, func() {}, nil
	}
	redis.SetLogger(redisLogger{logger})
	client, tail, err := redisClients(cfg.RedisURL)
	if err != nil {
		return backend{}, nil, fmt.Errorf("invalid configuration: EVENTGATE_REDIS_URL: %w", err)
	}
	warnDataDirIgnored(cfg, logger)
	log := store.NewRedis(client, tail, cfg.StreamKey, int64(cfg.Retention), store.RedisOptions{Logger: logger, OnInvalid: onInvalid})
	closeAll := func() { _ = client.Close(); _ = tail.Close() }
	leases := store.NewRedisLeases(client, cfg.StreamKey+":", cfg.LeaseTTL, logger)
	return backend{name: "redis", durable: true, log: log, receipts: store.NewRedisReceipts(client, cfg.StreamKey+":"),
		leases: leases, background: leases.Run, redis: client, jobs: store.NewRedisJobs(client, cfg.StreamKey+":", cfg.JobStateTTL),
		webhooks: store.NewRedisWebhooks(client, cfg.StreamKey+":")}, closeAll, nil
}

// redisLogger sends go-redis's internal messages (dial failures, pool notices) to slog, so the
// log stays one JSON object per line.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	format := cfg.LogFormat
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			format = "text"
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// defaultGCPercent is the garbage collector's target unless GOGC is set. eventgate's heap is
// mostly long-lived connection state, allocated slowly (delivery allocates nothing per
// subscriber), while every upgrade leaves a burst of garbage (net/http's hijacked buffers, the
// request). With Go's default of 100 the heap grows to twice the live heap plus stacks before a
// collection, which that garbage fills: resident memory per connection about doubles. At 50 it
// grows by half as much, for collections twice as often — cheap when little is allocated (README,
// Performance: idle-connection memory and broadcast latency with both settings).
const defaultGCPercent = 50

// tuneGC applies defaultGCPercent unless the environment sets GOGC (which then wins, as it does
// for any Go program).
func tuneGC(logger *slog.Logger) {
	if _, set := os.LookupEnv("GOGC"); set {
		return
	}
	debug.SetGCPercent(defaultGCPercent)
	logger.Debug("garbage collector target set", "gogc", defaultGCPercent)
}
