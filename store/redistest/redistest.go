// Package redistest gives tests a Redis client on the test server and a key prefix of their own,
// removed after the test. It never flushes a database: tests may share a server with others.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	// EnvURL names the variable holding the test server's URL.
	EnvURL = "EVENTGATE_TEST_REDIS_URL"
	// EnvRequire names the variable that, set to 1, turns an unreachable server into a failure
	// instead of a skip (CI sets it).
	EnvRequire = "EVENTGATE_TEST_REQUIRE_REDIS"
	// DefaultURL is used when EnvURL is unset.
	DefaultURL = "redis://127.0.0.1:6379/0"
)

// URL returns the test server's URL: $EVENTGATE_TEST_REDIS_URL, else DefaultURL.
func URL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// Client connects to the test server and returns the client, the server's URL (for tests that
// need a client of their own, e.g. a separate tail client) and a key prefix unique to this test
// ("egtest:<test name>:<random>:"). If the server does not answer, the test is skipped, or fails
// when EVENTGATE_TEST_REQUIRE_REDIS=1. At cleanup every key with the prefix is deleted (SCAN +
// UNLINK, never FLUSHDB) and the client closed; keys are not shared between tests, so parallel
// tests are safe. The client belongs to the test: do not use it after the test ends.
func Client(t testing.TB) (client *redis.Client, url string, prefix string) {
	t.Helper()
	url = URL()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("redistest: %s=%q: %v", EnvURL, url, err)
	}
	if err := reachable(url); err != nil {
		skipOrFail(t, fmt.Sprintf("redistest: Redis at %s unreachable and %s=1: %v", url, EnvRequire, err),
			fmt.Sprintf("redistest: Redis at %s unreachable (set %s, or %s=1 to fail): %v", url, EnvURL, EnvRequire, err))
	}
	client = redis.NewClient(opts)
	prefix = ownPrefix(t, client.Close, func(ctx context.Context, prefix string) error {
		return DeletePrefix(ctx, client, prefix)
	})
	return client, url, prefix
}

// DeletePrefix deletes every key of the client's database that starts with prefix, using SCAN
// MATCH (glob characters in prefix are escaped) and UNLINK.
func DeletePrefix(ctx context.Context, client redis.UniversalClient, prefix string) error {
	if prefix == "" {
		panic("redistest: refusing to delete every key (empty prefix)")
	}
	iter := client.Scan(ctx, 0, escapeGlob(prefix)+"*", 500).Iterator()
	batch := make([]string, 0, 500)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := client.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		if k := iter.Val(); strings.HasPrefix(k, prefix) {
			batch = append(batch, k)
		}
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	return flush()
}

var probe onceProbe

// reachable pings the server once per process (with a short timeout and no retries), so that
// every test of an unreachable server skips at once.
func reachable(url string) error {
	return probe.check(url, 3*time.Second, fmt.Errorf("redistest: %s changed during the run", EnvURL), func(ctx context.Context) error {
		opts, err := redis.ParseURL(url)
		if err != nil {
			return err
		}
		opts.DialTimeout = 2 * time.Second
		opts.DialerRetries = 1
		opts.MaxRetries = -1
		c := redis.NewClient(opts)
		defer c.Close()
		return c.Ping(ctx).Err()
	})
}

// escapeGlob escapes the characters SCAN MATCH treats specially.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
