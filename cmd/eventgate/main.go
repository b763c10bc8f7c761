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
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/handlers"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
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

// run starts the server and blocks until it has shut down; it returns the exit code: 0 after a
// clean drain, 1 when serving failed, 2 for invalid configuration.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, verifier, code := configure(args, getenv, stderr)
	if cfg == nil {
		return code
	}
	logger := newLogger(*cfg, stderr)
	slog.SetDefault(logger)
	tuneGC(logger)
	logAuth(logger, *cfg, verifier)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	metrics := telemetry.NewMetrics()
	stopCatalogue, ok := startCatalogue(cfg.Catalogue, logger, metrics, stderr)
	if !ok {
		return 2
	}
	defer stopCatalogue()
	g, closeStore, code := assemble(*cfg, verifier, metrics, logger, stderr)
	if g == nil {
		return code
	}
	defer closeStore()
	if code := g.listen(stderr); code != 0 {
		return code
	}
	g.start()
	if err := g.wait(ctx); err != nil {
		logger.Error("server failed", "err", err)
		g.stop()
		return 1
	}
	stop() // a second signal now ends the process at once (Go's default behaviour)
	g.drain()
	return 0
}

// configure reads the configuration and the token verifier; nil config means exit with code.
func configure(args []string, getenv func(string) string, stderr io.Writer) (*config, *auth.Verifier, int) {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, nil, 0
		}
		fmt.Fprintf(stderr, "eventgate: invalid configuration: %v\n", err)
		return nil, nil, 2
	}
	verifier, err := buildVerifier(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "eventgate: invalid configuration: %v\n", err)
		return nil, nil, 2
	}
	return &cfg, verifier, 0
}

func logAuth(logger *slog.Logger, cfg config, verifier *auth.Verifier) {
	if verifier == nil {
		logger.Warn("EVENTGATE_AUTH=none: authentication is off; every route is open to anyone who can reach this address")
		return
	}
	logger.Info("authentication on", "algorithm", verifier.Algorithm(), "connect_rate", cfg.ConnectRate.String(), "publish_rate", cfg.PublishRate.String())
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
	if err := redisOnlySettings(cfg); err != nil {
		return backend{}, nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if cfg.RedisURL == "" && cfg.DataDir != "" {
		return openDiskStore(cfg, logger, onInvalid)
	}
	if cfg.RedisURL == "" {
		return backend{name: "memory", log: store.NewMemory(cfg.Retention), receipts: store.NewMemoryReceipts(),
			leases: store.NewMemoryLeases(), jobs: store.NewMemoryJobs(cfg.JobStateTTL), webhooks: store.NewMemoryWebhooks()}, func() {}, nil
	}
	warnDataDirIgnored(cfg, logger)
	b, closeAll, err := openRedis(cfg, logger, onInvalid)
	if err != nil {
		return backend{}, nil, fmt.Errorf("invalid configuration: EVENTGATE_REDIS_URL: %w", err)
	}
	return b, closeAll, nil
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
