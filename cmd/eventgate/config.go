package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/eventgate/eventgate/limits"
)

// config is the process configuration, from EVENTGATE_* variables overridden by flags.
type config struct {
	Addr        string
	MetricsAddr string
	DebugAddr   string
	RedisURL    string
	DataDir     string // EVENTGATE_DATA_DIR (cmd/eventgate/disk.go)
	// Redis Cluster and replica acknowledgements (cmd/eventgate/redis_cluster.go).
	RedisCluster      bool
	RedisWaitReplicas int
	RedisWaitTimeout  time.Duration
	StreamKey         string
	Retention         int
	Heartbeat         time.Duration
	Retry             time.Duration
	WriteTimeout      time.Duration
	ShutdownGrace     time.Duration
	MaxEventBytes     int
	MaxBodyBytes      int
	BodyTimeout       time.Duration
	MaxRequestsPerIP  int
	SubscriberBuffer  int
	CatchUpWindow     int
	DispatchInterval  time.Duration
	TrustedProxies    []string
	AllowedOrigins    []string
	MaxConns          int
	MaxConnsPerIP     int
	MaxTopics         int
	LeaseTTL          time.Duration
	JobStateTTL       time.Duration
	LogFormat         string
	LogLevel          string
	Catalogue         string // EVENTGATE_CATALOGUE (cmd/eventgate/catalogue.go)

	// Authentication and rate limits (cmd/eventgate/auth.go turns them into the verifier and
	// limiters).
	Auth             string
	JWTSecret        string
	JWTSecretFile    string
	JWTPublicKeyFile string
	JWTAudience      string
	JWTIssuer        string
	ConnectRate      limits.Rate
	PublishRate      limits.Rate

	WebhookAllowCIDRs    []netip.Prefix
	WebhookAllowPorts    []uint16
	WebhookRetrySchedule []time.Duration
	WebhookTimeout       time.Duration
	WebhookConcurrency   int
	WebhookLeaseTTL      time.Duration
	MaxWebhooks          int
}

// setting is one configuration variable: its environment name, default, and parser.
type setting struct {
	env, def, usage string
	set             func(string) error
}

func (c *config) settings() []setting {
	return []setting{
		{"EVENTGATE_ADDR", ":8080", "listen address", str(&c.Addr)},
		{"EVENTGATE_METRICS_ADDR", "", "separate listen address for /metrics (then not served on EVENTGATE_ADDR); empty = on EVENTGATE_ADDR", str(&c.MetricsAddr)},
		{"EVENTGATE_DEBUG_ADDR", "", "listen address for Go's profiles (/debug/pprof/); keep it private; empty = off", str(&c.DebugAddr)},
		{"EVENTGATE_REDIS_URL", "", "redis:// or rediss:// URL; empty = the on-disk store in EVENTGATE_DATA_DIR, or with neither the in-process store (not durable)", redisURL(&c.RedisURL)},
		{"EVENTGATE_DATA_DIR", "", "folder of the on-disk store (one process per folder) when EVENTGATE_REDIS_URL is empty; empty = in-process store (not durable)", str(&c.DataDir)},
		{"EVENTGATE_REDIS_CLUSTER", "false", "true: EVENTGATE_REDIS_URL names Redis Cluster nodes (redis://host:port?addr=host2:port2&addr=...)", boolean(&c.RedisCluster)},
		{"EVENTGATE_REDIS_WAIT_REPLICAS", "0", "replicas that must acknowledge each publish (WAIT) before 201; fewer: 503, retry with the Idempotency-Key", intRange(&c.RedisWaitReplicas, 0, 64)},
		{"EVENTGATE_REDIS_WAIT_TIMEOUT", "1s", "longest WAIT for EVENTGATE_REDIS_WAIT_REPLICAS per publish", duration(&c.RedisWaitTimeout, time.Millisecond)},
		{"EVENTGATE_STREAM_KEY", "eventgate:events", "Redis Stream key of the log", nonEmpty(&c.StreamKey)},
		{"EVENTGATE_RETENTION", "100000", "events kept in the log", intRange(&c.Retention, 1, 1<<31-1)},
		{"EVENTGATE_HEARTBEAT", "15s", "SSE heartbeat / WebSocket ping interval (1s or more)", duration(&c.Heartbeat, time.Second)},
		{"EVENTGATE_RETRY", "2s", "reconnect delay suggested to SSE clients", duration(&c.Retry, 100*time.Millisecond)},
		{"EVENTGATE_WRITE_TIMEOUT", "10s", "a client that accepts no write for this long is disconnected", duration(&c.WriteTimeout, 100*time.Millisecond)},
		{"EVENTGATE_SHUTDOWN_GRACE", "10s", "time to drain connections on SIGTERM", duration(&c.ShutdownGrace, 0)},
		{"EVENTGATE_MAX_EVENT_BYTES", "65536", "largest accepted event", intRange(&c.MaxEventBytes, 256, 16<<20)},
		{"EVENTGATE_MAX_BODY_BYTES", "8388608", "largest accepted publish body", intRange(&c.MaxBodyBytes, 256, 1<<30)},
		{"EVENTGATE_BODY_TIMEOUT", "10s", "time to receive a request body, from the request's start (408 beyond; not for streams)", duration(&c.BodyTimeout, 100*time.Millisecond)},
		{"EVENTGATE_MAX_REQUESTS_PER_IP", "32", "non-stream requests in flight per client IP on one instance (429 beyond; not /healthz, /readyz)", intRange(&c.MaxRequestsPerIP, 1, 1<<24)},
		{"EVENTGATE_SUBSCRIBER_BUFFER", "64", "live events buffered per subscriber before it reads from the log", intRange(&c.SubscriberBuffer, 1, 65536)},
		{"EVENTGATE_DISPATCH_INTERVAL", "5ms", "least time between two fan-outs while events keep coming (events gathered meanwhile go out as one batch); 0 = every read", durationRange(&c.DispatchInterval, 0, time.Second)},
		{"EVENTGATE_CATCHUP_WINDOW", "4096", "recent events kept in memory (at most 16 MiB) for subscribers catching up; 0 = read the log", intRange(&c.CatchUpWindow, 0, 1<<20)},
		{"EVENTGATE_MAX_CONNECTIONS", "1000", "streaming connections per instance (503 beyond)", intRange(&c.MaxConns, 1, 1<<24)},
		{"EVENTGATE_MAX_CONNECTIONS_PER_IP", "10", "streaming connections per client IP, across instances with Redis (429 beyond)", intRange(&c.MaxConnsPerIP, 1, 1<<24)},
		{"EVENTGATE_MAX_TOPICS", "64", "distinct topic patterns (and types) per SSE or history request and per WebSocket connection", intRange(&c.MaxTopics, 1, 10000)},
		{"EVENTGATE_CONN_LEASE_TTL", "30s", "how long a dead instance's per-IP connection count lingers (Redis)", duration(&c.LeaseTTL, time.Second)},
		{"EVENTGATE_JOB_STATE_TTL", "168h", "how long a job's folded state is kept after its last event", duration(&c.JobStateTTL, time.Second)},
		{"EVENTGATE_ALLOWED_ORIGINS", "", "comma-separated origins allowed on /api/v1/ws and state-changing routes besides the same host; * for any", list(&c.AllowedOrigins)},
		{"EVENTGATE_TRUSTED_PROXIES", "", "comma-separated CIDRs whose X-Forwarded-For is trusted", cidrs(&c.TrustedProxies)},
		{"EVENTGATE_AUTH", "jwt", "jwt (a token on every API route) or none (authentication off; logged as a warning)", oneOf(&c.Auth, "jwt", "none")},
		{"EVENTGATE_JWT_SECRET", "", "HS256 secret, at least 32 bytes (EVENTGATE_JWT_SECRET_FILE keeps it out of the environment)", str(&c.JWTSecret)},
		{"EVENTGATE_JWT_SECRET_FILE", "", "file holding the HS256 secret (surrounding whitespace ignored)", str(&c.JWTSecretFile)},
		{"EVENTGATE_JWT_PUBLIC_KEY_FILE", "", "PEM public key or certificate; RSA → RS256, P-256 → ES256, Ed25519 → EdDSA", str(&c.JWTPublicKeyFile)},
		{"EVENTGATE_JWT_AUDIENCE", "", "if set, tokens must name it in aud", str(&c.JWTAudience)},
		{"EVENTGATE_JWT_ISSUER", "", "if set, tokens must have it as iss", str(&c.JWTIssuer)},
		{"EVENTGATE_CONNECT_RATE", "10-S", "new /stream and /ws requests per client IP, <n>-<S|M|H|D> or off (shared through Redis)", rate(&c.ConnectRate)},
		{"EVENTGATE_PUBLISH_RATE", "1000-S", "publish requests per token subject, <n>-<S|M|H|D> or off (shared through Redis)", rate(&c.PublishRate)},
		{"EVENTGATE_WEBHOOK_ALLOW_CIDRS", "", "comma-separated CIDRs webhooks may reach although the deny list covers them (internal receivers, tests)", cidrPrefixes(&c.WebhookAllowCIDRs)},
		{"EVENTGATE_WEBHOOK_ALLOW_PORTS", "80,443,8080,8443", "comma-separated ports webhook URLs may use; * for any", ports(&c.WebhookAllowPorts)},
		{"EVENTGATE_WEBHOOK_RETRY_SCHEDULE", "5s,5m,30m,2h,5h,10h,10h", "delays before each webhook retry (±20% jitter); after the last the delivery is failed", durations(&c.WebhookRetrySchedule, 10*time.Millisecond)},
		{"EVENTGATE_WEBHOOK_TIMEOUT", "10s", "timeout of one webhook attempt (connect at most 5s of it)", duration(&c.WebhookTimeout, 100*time.Millisecond)},
		{"EVENTGATE_WEBHOOK_CONCURRENCY", "4", "webhook attempts in flight per endpoint", intRange(&c.WebhookConcurrency, 1, 256)},
		{"EVENTGATE_WEBHOOK_LEASE_TTL", "15s", "how long a dead instance keeps its webhook endpoints before another takes over (Redis)", duration(&c.WebhookLeaseTTL, time.Second)},
		{"EVENTGATE_MAX_WEBHOOKS", "100", "webhook endpoints that may exist at once, across instances with Redis (409 too_many_webhooks beyond)", intRange(&c.MaxWebhooks, 1, 1<<20)},
		{"EVENTGATE_CATALOGUE", "", "YAML or JSON file of operator-defined event types (reloaded on SIGHUP); empty = the built-in types only", str(&c.Catalogue)},
		{"EVENTGATE_LOG_FORMAT", "auto", "json, text, or auto (text on a terminal)", oneOf(&c.LogFormat, "auto", "json", "text")},
		{"EVENTGATE_LOG_LEVEL", "info", "debug, info, warn or error", oneOf(&c.LogLevel, "debug", "info", "warn", "error")},
	}
}

// flagName turns EVENTGATE_MAX_EVENT_BYTES into max-event-bytes.
func flagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "EVENTGATE_")), "_", "-")
}

// loadConfig applies defaults, then the environment, then flags. The error names the variable.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("eventgate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for _, s := range c.settings() {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		if err := s.set(v); err != nil {
			return c, fmt.Errorf("%s=%q: %w", s.env, v, err)
		}
		fs.Func(flagName(s.env), s.usage+" ($"+s.env+", default "+strconv.Quote(s.def)+")", func(v string) error {
			if err := s.set(v); err != nil {
				return fmt.Errorf("%s: %w", s.env, err)
			}
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return c, nil
}

func str(p *string) func(string) error { return func(v string) error { *p = v; return nil } }

func nonEmpty(p *string) func(string) error {
	return func(v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		*p = v
		return nil
	}
}

func redisURL(p *string) func(string) error {
	return func(v string) error {
		if v != "" && !strings.HasPrefix(v, "redis://") && !strings.HasPrefix(v, "rediss://") {
			return errors.New("must start with redis:// or rediss://")
		}
		*p = v
		return nil
	}
}

func intRange(p *int, lo, hi int) func(string) error {
	return func(v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("must be an integer from %d to %d", lo, hi)
		}
		*p = n
		return nil
	}
}

// durationRange is duration with an upper bound too.
func durationRange(p *time.Duration, least, most time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least || d > most {
			return fmt.Errorf("must be a duration from %s to %s", least, most)
		}
		*p = d
		return nil
	}
}

func duration(p *time.Duration, least time.Duration) func(string) error {
	return func(v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return fmt.Errorf("must be a duration such as 15s, at least %s", least)
		}
		*p = d
		return nil
	}
}

func cidrs(p *[]string) func(string) error {
	return func(v string) error {
		var out []string
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if _, err := netip.ParsePrefix(part); err != nil {
				if _, err := netip.ParseAddr(part); err != nil {
					return fmt.Errorf("%q is not a CIDR or IP address", part)
				}
			}
			out = append(out, part)
		}
		*p = out
		return nil
	}
}

func list(p *[]string) func(string) error {
	return func(v string) error {
		*p = nil
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				*p = append(*p, part)
			}
		}
		return nil
	}
}

func oneOf(p *string, allowed ...string) func(string) error {
	return func(v string) error {
		for _, a := range allowed {
			if v == a {
				*p = v
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

func rate(p *limits.Rate) func(string) error {
	return func(v string) error {
		r, err := limits.ParseRate(v)
		if err != nil {
			return err
		}
		*p = r
		return nil
	}
}
