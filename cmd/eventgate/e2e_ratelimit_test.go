package main

// End-to-end tests of the rate limits (docs/api.md#rate-limits): a connect budget shared by two
// instances on one Redis, the publish budget per token subject, the limiter with its Redis stopped
// (fail-open, no 500, no panic), and the client IP behind trusted and untrusted proxies.

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventgate/eventgate/store/redistest"
)

// expectRateLimited requires 429 rate_limited with Retry-After and the X-RateLimit headers.
func expectRateLimited(t *testing.T, status int, h http.Header, raw []byte, limit int) {
	t.Helper()
	expectError(t, status, raw, http.StatusTooManyRequests, "rate_limited")
	ra, err := strconv.Atoi(h.Get("Retry-After"))
	reset, err2 := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	switch {
	case err != nil || ra < 1:
		t.Fatalf("Retry-After %q, want a positive number of seconds", h.Get("Retry-After"))
	case h.Get("X-RateLimit-Limit") != strconv.Itoa(limit) || h.Get("X-RateLimit-Remaining") != "0":
		t.Fatalf("X-RateLimit-Limit %q Remaining %q, want %d and 0", h.Get("X-RateLimit-Limit"), h.Get("X-RateLimit-Remaining"), limit)
	case err2 != nil || reset < time.Now().Unix()-1 || reset > time.Now().Add(2*time.Minute).Unix():
		t.Fatalf("X-RateLimit-Reset %q, want a Unix time within the window", h.Get("X-RateLimit-Reset"))
	}
}

// TestE2ERateLimitsAcrossInstances: two instances on one Redis share the connect budget per client
// IP and the publish budget per subject; another subject is unaffected.
func TestE2ERateLimitsAcrossInstances(t *testing.T) {
	t.Parallel()
	_, url, prefix := redistest.Client(t)
	env := authEnv(map[string]string{
		"EVENTGATE_REDIS_URL": url, "EVENTGATE_STREAM_KEY": prefix + "events",
		"EVENTGATE_CONNECT_RATE": "6-M", "EVENTGATE_PUBLISH_RATE": "3-M",
	})
	a, b := startServer(t, env), startServer(t, env)
	sub := bearerHeader(tokenFor(t, "reader", "subscribe", time.Hour))
	for i, s := range []*server{a, b, a, b, a, b} {
		path := "/api/v1/stream"
		if i%3 == 2 {
			path = "/api/v1/ws" // both routes draw on one budget (400 here: not an upgrade)
		}
		status, h, raw := probe(t, s.URL()+path, sub)
		if status == http.StatusTooManyRequests || h.Get("X-RateLimit-Limit") != "6" {
			t.Fatalf("request %d to %s%s: %d %s (X-RateLimit-Limit %q), want admitted", i+1, s.name, path, status, raw, h.Get("X-RateLimit-Limit"))
		}
		if want := strconv.Itoa(5 - i); h.Get("X-RateLimit-Remaining") != want {
			t.Fatalf("request %d: X-RateLimit-Remaining %q, want %s", i+1, h.Get("X-RateLimit-Remaining"), want)
		}
	}
	for _, s := range []*server{a, b} {
		status, h, raw := probe(t, s.URL()+"/api/v1/stream", sub)
		expectRateLimited(t, status, h, raw, 6)
	}

	alice := bearerHeader(tokenFor(t, "alice", "publish", time.Hour))
	for i, s := range []*server{a, b, a} {
		if status, _, raw := publish(t, s.URL(), queueStatus(i, 0), alice); status != http.StatusCreated {
			t.Fatalf("alice's publish %d: %d %s", i+1, status, raw)
		}
	}
	status, h, raw := doRequest(t, http.MethodPost, b.URL()+"/api/v1/events", queueStatus(9, 0), alice)
	expectRateLimited(t, status, h, raw, 3)
	if status, _, raw := publish(t, b.URL(), queueStatus(1, 1), bearerHeader(tokenFor(t, "bob", "publish", time.Hour))); status != http.StatusCreated {
		t.Fatalf("bob after alice's budget ran out: %d %s, want 201", status, raw)
	}
}

// TestE2ERateLimitRedisDown: with the limiter's Redis stopped, the connect limit fails open (a
// client over its budget is admitted), nothing answers 500, nothing panics, and the failure is
// logged and counted; when Redis returns, the limit applies again.
func TestE2ERateLimitRedisDown(t *testing.T) {
	t.Parallel()
	redisSrv := startPrivateRedis(t)
	s := startServer(t, map[string]string{
		"EVENTGATE_REDIS_URL": redisSrv.url(), "EVENTGATE_STREAM_KEY": "egtest:ratelimit-down:events",
		"EVENTGATE_CONNECT_RATE": "2-M", "EVENTGATE_PUBLISH_RATE": "2-M",
	})
	for i := 0; i < 2; i++ {
		if status, _, raw := probe(t, s.URL()+"/api/v1/stream", nil); status != http.StatusOK {
			t.Fatalf("stream %d: %d %s", i+1, status, raw)
		}
	}
	status, h, raw := probe(t, s.URL()+"/api/v1/stream", nil)
	expectRateLimited(t, status, h, raw, 2)

	redisSrv.stop()
	// Over budget, but the limiter cannot decide: connect fails open.
	status, _, raw = probe(t, s.URL()+"/api/v1/stream", nil)
	if status != http.StatusOK {
		t.Fatalf("stream with Redis down: %d %s, want 200 (connect fails open)", status, raw)
	}
	for _, r := range []struct{ method, path, body string }{
		{http.MethodPost, "/api/v1/events", queueStatus(1, 1)}, // the log is down too: 503
		{http.MethodGet, "/api/v1/ws", ""},
	} {
		status, _, raw := doRequest(t, r.method, s.URL()+r.path, r.body, nil)
		if status >= 500 && status != http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
			t.Fatalf("%s %s with Redis down: %d %s, want no 500 and no 429", r.method, r.path, status, raw)
		}
	}
	if !strings.Contains(s.stderr.String(), "rate limiter unavailable; failing open") {
		t.Fatalf("no limiter failure logged:\n%s", s.stderr.String())
	}
	_, _, metrics := doRequest(t, http.MethodGet, s.URL()+"/metrics", "", nil)
	m := regexp.MustCompile(`(?m)^eventgate_limiter_errors_total\{route="/api/v1/stream"\} (\d+)`).FindSubmatch(metrics)
	if m == nil || string(m[1]) == "0" {
		t.Fatalf("eventgate_limiter_errors_total for /api/v1/stream not counted:\n%s", grepLines(string(metrics), "limiter"))
	}

	// Redis back (its AOF kept the count): the limiter recovers on its own and refuses again.
	redisSrv.start()
	eventually(t, "the limiter to refuse again after Redis returned", func() bool {
		status, _, raw := probe(t, s.URL()+"/api/v1/stream", nil)
		return status == http.StatusTooManyRequests && strings.Contains(string(raw), "rate_limited")
	})
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestE2EClientIP: a forged X-Forwarded-For from an untrusted peer does not change the client IP
// (one connect budget, the TCP peer in the log); from a trusted proxy it does.
func TestE2EClientIP(t *testing.T) {
	t.Parallel()
	forwarded := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	t.Run("untrusted", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, map[string]string{"EVENTGATE_CONNECT_RATE": "1-M"})
		if status, _, raw := probe(t, s.URL()+"/api/v1/stream", forwarded("203.0.113.1")); status != http.StatusOK {
			t.Fatalf("first: %d %s", status, raw)
		}
		status, h, raw := probe(t, s.URL()+"/api/v1/stream", forwarded("203.0.113.2"))
		expectRateLimited(t, status, h, raw, 1)
		eventually(t, "the connection log line", func() bool { return strings.Contains(s.stderr.String(), `"msg":"connection opened"`) })
		if out := s.stderr.String(); strings.Contains(out, "203.0.113.") || !strings.Contains(out, `"client_ip":"127.0.0.1"`) {
			t.Fatalf("log: want client_ip 127.0.0.1 and no forged address:\n%s", out)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, map[string]string{"EVENTGATE_CONNECT_RATE": "1-M", "EVENTGATE_TRUSTED_PROXIES": "127.0.0.1/32"})
		for _, ip := range []string{"203.0.113.1", "203.0.113.2"} {
			if status, _, raw := probe(t, s.URL()+"/api/v1/stream", forwarded(ip)); status != http.StatusOK {
				t.Fatalf("client %s behind the proxy: %d %s, want its own budget", ip, status, raw)
			}
		}
		status, h, raw := probe(t, s.URL()+"/api/v1/stream", forwarded("203.0.113.1"))
		expectRateLimited(t, status, h, raw, 1)
		eventually(t, "the connection log lines", func() bool { return strings.Count(s.stderr.String(), `"msg":"connection opened"`) >= 2 })
		if out := s.stderr.String(); !strings.Contains(out, `"client_ip":"203.0.113.2"`) {
			t.Fatalf("log: want client_ip 203.0.113.2:\n%s", out)
		}
	})
}
