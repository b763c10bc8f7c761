package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// EnvClusterURL names the variable holding the test Redis Cluster's URL, in go-redis's
// ParseClusterURL form (redis://host:port?addr=host2:port2&addr=...). .ci/redis-cluster.sh sets it.
const EnvClusterURL = "EVENTGATE_TEST_REDIS_CLUSTER_URL"

// ClusterURL returns the test cluster's URL. When none is configured or it does not answer, the
// test is skipped, or fails when EVENTGATE_TEST_REQUIRE_REDIS=1 (CI starts one).
func ClusterURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv(EnvClusterURL)
	if url == "" {
		skipOrFail(t, fmt.Sprintf("redistest: no Redis Cluster: %s is empty and %s=1 (start one with .ci/redis-cluster.sh)", EnvClusterURL, EnvRequire),
			fmt.Sprintf("redistest: no Redis Cluster (set %s; .ci/redis-cluster.sh starts one)", EnvClusterURL))
	}
	if err := clusterReachable(url); err != nil {
		skipOrFail(t, fmt.Sprintf("redistest: Redis Cluster at %s unusable and %s=1: %v", url, EnvRequire, err),
			fmt.Sprintf("redistest: Redis Cluster at %s unusable: %v", url, err))
	}
	return url
}

// ClusterClient connects to the test cluster (see ClusterURL) and returns the client, the URL and
// a key prefix unique to this test ("egtest:<test name>:<random>:", no hash tag). At cleanup every
// key starting with the prefix, or with "{" and the prefix (a tagged stream key), is deleted from
// every master, and the client closed.
func ClusterClient(t testing.TB) (client *redis.ClusterClient, url string, prefix string) {
	t.Helper()
	url = ClusterURL(t)
	opts, err := redis.ParseClusterURL(url)
	if err != nil {
		t.Fatalf("redistest: %s=%q: %v", EnvClusterURL, url, err)
	}
	client = redis.NewClusterClient(opts)
	prefix = ownPrefix(t, client.Close, func(ctx context.Context, prefix string) error {
		return DeleteClusterPrefix(ctx, client, prefix)
	})
	return client, url, prefix
}

// DeleteClusterPrefix deletes, on every master, the keys that start with prefix or with "{" and
// prefix. Keys are unlinked one by one: a multi-key UNLINK may not span slots.
func DeleteClusterPrefix(ctx context.Context, client *redis.ClusterClient, prefix string) error {
	if prefix == "" {
		panic("redistest: refusing to delete every key (empty prefix)")
	}
	return client.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		for _, p := range []string{prefix, "{" + prefix} {
			iter := node.Scan(ctx, 0, escapeGlob(p)+"*", 500).Iterator()
			var keys []string
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
			if err := iter.Err(); err != nil {
				return err
			}
			if len(keys) == 0 {
				continue
			}
			if _, err := node.Pipelined(ctx, func(pipe redis.Pipeliner) error {
				for _, k := range keys {
					pipe.Unlink(ctx, k)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
}

var clusterProbe onceProbe

// clusterReachable checks once per process that the cluster answers and serves every slot.
func clusterReachable(url string) error {
	return clusterProbe.check(url, 5*time.Second, errURLChanged, func(ctx context.Context) error {
		opts, err := redis.ParseClusterURL(url)
		if err != nil {
			return err
		}
		opts.DialTimeout, opts.DialerRetries, opts.MaxRetries = 2*time.Second, 1, -1
		c := redis.NewClusterClient(opts)
		defer c.Close()
		info, err := c.ClusterInfo(ctx).Result()
		switch {
		case err != nil:
			return err
		case !strings.Contains(info, "cluster_state:ok"):
			return errClusterNotOK
		}
		return nil
	})
}

var (
	errClusterNotOK = errors.New("redistest: the cluster does not say cluster_state:ok")
	errURLChanged   = errors.New("redistest: " + EnvClusterURL + " changed during the run")
)
