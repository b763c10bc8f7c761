package main

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
)

// clusterStateReload bounds how stale the cluster client's slot map gets (go-redis's default is a
// minute). go-redis reloads it on MOVED, but a master that died sends none; the log's appends,
// which bypass the client's routing (store.Redis), do not trigger a reload of the tail client.
const clusterStateReload = time.Second

// openRedis builds the Redis store from EVENTGATE_REDIS_URL: one Redis, Sentinel (master_name), or
// with EVENTGATE_REDIS_CLUSTER=true a Redis Cluster; the keys follow store.RedisKeys.
func openRedis(cfg config, logger *slog.Logger, onInvalid func(event.ID, error)) (backend, func(), error) {
	redis.SetLogger(redisLogger{logger})
	var client, tail redis.UniversalClient
	if cfg.RedisCluster {
		c, t, err := clusterClients(cfg.RedisURL)
		if err != nil {
			return backend{}, nil, err
		}
		client, tail = c, t
	} else {
		c, t, err := redisClients(cfg.RedisURL)
		if err != nil {
			return backend{}, nil, err
		}
		client, tail = c, t
	}
	keys := redisKeys(cfg)
	logger.Info("redis keys", "cluster", cfg.RedisCluster, "stream", keys.Log, "log_prefix", keys.LogPrefix, "prefix", keys.Prefix,
		"wait_replicas", cfg.RedisWaitReplicas)
	log := store.NewRedis(client, tail, keys.Log, int64(cfg.Retention), store.RedisOptions{Logger: logger, OnInvalid: onInvalid,
		WaitReplicas: cfg.RedisWaitReplicas, WaitTimeout: cfg.RedisWaitTimeout})
	leases := store.NewRedisLeases(client, keys.Prefix, cfg.LeaseTTL, logger)
	closeAll := func() { _ = client.Close(); _ = tail.Close() }
	return backend{name: "redis", durable: true, log: log, receipts: store.NewRedisReceipts(client, keys.LogPrefix),
		leases: leases, background: leases.Run, redis: client, jobs: store.NewRedisJobs(client, keys.Prefix, cfg.JobStateTTL),
		webhooks: store.NewRedisWebhooks(client, keys.Prefix)}, closeAll, nil
}

// redisKeys is the configured key layout.
func redisKeys(cfg config) store.RedisKeys {
	return store.NewRedisKeys(cfg.StreamKey, cfg.RedisCluster)
}

// redisOnlySettings refuses Redis settings without EVENTGATE_REDIS_URL: silently ignoring them
// would run a deployment that asked for replica acknowledgements without any.
func redisOnlySettings(cfg config) error {
	switch {
	case cfg.RedisURL != "":
		return nil
	case cfg.RedisCluster:
		return errors.New("EVENTGATE_REDIS_CLUSTER=true needs EVENTGATE_REDIS_URL")
	case cfg.RedisWaitReplicas > 0:
		return errors.New("EVENTGATE_REDIS_WAIT_REPLICAS needs EVENTGATE_REDIS_URL")
	}
	return nil
}

// clusterClients builds the main cluster client and the log reader's own (as redisClients does for
// one Redis) from a URL in go-redis's ParseClusterURL form:
// redis://[user:pass@]host:port?addr=host2:port2&addr=host3:port3 (rediss:// for TLS).
//
// The node clients never retry (MaxRetries -1) and honour context deadlines; the cluster client
// still follows MOVED/ASK redirects. Log appends do not go through its retry loop at all
// (store.Redis sends them to the slot's master once).
func clusterClients(rawURL string) (client, tail *redis.ClusterClient, err error) {
	opts, err := redis.ParseClusterURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	urlRead := opts.ReadTimeout
	redisTimeouts(&opts.DialTimeout, &opts.ReadTimeout, &opts.WriteTimeout)
	opts.MaxRetries, opts.DialerRetries, opts.ContextTimeoutEnabled = -1, 1, true
	opts.ClusterStateReloadInterval = clusterStateReload
	if opts.TLSConfig != nil {
		// go-redis names the first node here and reuses the config for every node: let each
		// connection verify its own host instead.
		opts.TLSConfig.ServerName = ""
	}
	tailOpts := *opts
	tailOpts.PoolSize, tailOpts.ReadTimeout = tailPoolSize, cmp.Or(urlRead, tailReadTimeout)
	return redis.NewClusterClient(opts), redis.NewClusterClient(&tailOpts), nil
}

// Parsers of the Redis Cluster settings (the rows are in config.go's settings table).

func boolean(p *bool) func(string) error {
	return func(v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("must be true or false")
		}
		*p = b
		return nil
	}
}
