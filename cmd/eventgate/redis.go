package main

import (
	"cmp"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis client timeouts (docs/operations.md#redis-timeouts). A URL's own dial_timeout, read_timeout
// and write_timeout win over these.
const (
	// redisDialTimeout bounds connecting to Redis (and the handshake of a new connection).
	redisDialTimeout = 2 * time.Second
	// redisIOTimeout bounds each socket read and write of a command whose context has no earlier
	// deadline (background loops: the hub's bounds, the projector, lease renewal, webhooks). A
	// frozen Redis (SIGSTOP, a stalled host) accepts connections and then never answers: without
	// it a command would wait on the socket for go-redis's 5 s default.
	redisIOTimeout = 3 * time.Second
	// tailReadTimeout is the log reader's client's, above its XREAD BLOCK (store.DefaultTailBlock).
	// go-redis waits BLOCK+10 s for a blocking command whatever ReadTimeout says, or less when
	// the caller's context says so (store.Redis.Tail keeps its block inside that deadline).
	tailReadTimeout = 10 * time.Second
	// tailPoolSize: the hub has one reader; a second connection covers a reconnect.
	tailPoolSize = 2
)

// redisClients builds the main client and the log reader's own client (its blocking XREAD never
// holds a pooled connection that publishers need) from a redis:// or rediss:// URL; a
// master_name query parameter (with sentinel addresses: host and addr=) selects Sentinel.
//
// Both clients honour context deadlines on the socket (ContextTimeoutEnabled): without it go-redis
// ignores a request's deadline while it waits for a reply, so a frozen Redis held /readyz and
// publish for its whole ReadTimeout per command.
func redisClients(rawURL string) (client, tail *redis.Client, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if u.Query().Has("master_name") {
		opts, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, nil, err
		}
		urlRead := opts.ReadTimeout
		redisTimeouts(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
		// Fail fast while Redis is away (callers get a 503 and retry; the reader has its own
		// backoff), and never let go-redis re-send a MULTI/EXEC or script whose reply was lost:
		// that could append twice.
		opts.MaxRetries, opts.DialerRetries, opts.ContextTimeoutEnabled = -1, 1, true
		if opts.TLSConfig != nil {
			// go-redis names the first sentinel here and reuses the config for the master:
			// let each connection verify its own host instead.
			opts.TLSConfig.ServerName = ""
		}
		tailOpts := *opts
		tailOpts.PoolSize, tailOpts.ReadTimeout = tailPoolSize, cmp.Or(urlRead, tailReadTimeout)
		return redis.NewFailoverClient(opts), redis.NewFailoverClient(&tailOpts), nil
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	urlRead := opts.ReadTimeout
	redisTimeouts(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
	opts.MaxRetries, opts.DialerRetries, opts.ContextTimeoutEnabled = -1, 1, true
	tailOpts := *opts
	tailOpts.PoolSize, tailOpts.ReadTimeout = tailPoolSize, cmp.Or(urlRead, tailReadTimeout)
	return redis.NewClient(opts), redis.NewClient(&tailOpts), nil
}

// redisTimeouts fills the timeouts the URL left unset (zero); as in go-redis, an unset write
// timeout follows the read timeout.
func redisTimeouts(dial, read, write *time.Duration) {
	*dial = cmp.Or(*dial, redisDialTimeout)
	*read = cmp.Or(*read, redisIOTimeout)
	*write = cmp.Or(*write, *read)
}
