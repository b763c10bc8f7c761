package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

func TestRedisRateLimiter(t *testing.T) {
	t.Parallel()
	storetest.RunRateLimiter(t, true, func(t *testing.T, shared string, rate limits.Rate) limits.RateLimiter {
		client, _, prefix := redistest.Client(t)
		// Tests that want a shared budget name the same prefix; redistest's prefix is per call.
		return store.NewRedisRateLimiter(client, prefixFor(t, prefix, shared), rate)
	})
}

// prefixFor returns one key prefix per (test, shared) pair, so that limiters a test makes with the
// same shared name meet in Redis even though each redistest.Client call has its own prefix.
func prefixFor(t *testing.T, fresh, shared string) string {
	key := fmt.Sprintf("%p/%s", t, shared) // this run of this test: -count=N runs do not meet
	prefixes.mu.Lock()
	defer prefixes.mu.Unlock()
	if p, ok := prefixes.m[key]; ok {
		return p
	}
	p := fresh + "rl:" + shared
	prefixes.m[key] = p
	return p
}

// TestRedisRateLimiterUnavailable: with Redis unreachable, Allow returns an error wrapping
// streams.ErrUnavailable (never a panic), and retries of the start-up are rate-limited.
func TestRedisRateLimiterUnavailable(t *testing.T) {
	t.Parallel()
	var dials atomic.Int32
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, DialerRetries: 1, MaxRetries: -1,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr) // loopback port 1: refused
		}})
	t.Cleanup(func() { _ = client.Close() })
	l := store.NewRedisRateLimiter(client, "egtest:unreachable:rl", limits.Rate{Limit: 1, Period: time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		r, err := l.Allow(ctx, "k")
		if !errors.Is(err, streams.ErrUnavailable) {
			t.Fatalf("call %d: %+v, %v; want an error wrapping ErrUnavailable", i, r, err)
		}
	}
	// After the first failure the start-up is not retried within a second: the later calls
	// answer with the remembered error and never dial.
	if n := dials.Load(); n != 1 {
		t.Fatalf("%d dials for 3 calls, want 1", n)
	}
}

var prefixes = struct {
	mu sync.Mutex
	m  map[string]string
}{m: make(map[string]string)}

// TestRedisRateLimiterBreaker: after a failure (here a deadline), Allow answers with that failure
// for a while without asking Redis, then asks again.
func TestRedisRateLimiterBreaker(t *testing.T) {
	t.Parallel()
	client, _, prefix := redistest.Client(t)
	l := store.NewRedisRateLimiter(client, prefix+"rl", limits.Rate{Limit: 100, Period: time.Minute})
	if _, err := l.Allow(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	expired, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := l.Allow(expired, "k"); !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("Allow with an expired deadline: %v, want ErrUnavailable", err)
	}
	if _, err := l.Allow(t.Context(), "k"); !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("Allow right after a failure: %v, want the remembered failure", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := l.Allow(t.Context(), "k")
		if err == nil {
			if r.Reached || r.Remaining < 97 {
				t.Fatalf("after recovery: %+v, want the budget intact (2 or 3 hits counted)", r)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 5s after one failure: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}
