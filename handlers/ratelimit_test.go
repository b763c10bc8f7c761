package handlers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// fakeLimiter records the keys it is asked about and answers from a script.
type fakeLimiter struct {
	mu     sync.Mutex
	keys   []string
	answer func(n int) (limits.RateResult, error)
}

func (f *fakeLimiter) Allow(_ context.Context, key string) (limits.RateResult, error) {
	f.mu.Lock()
	f.keys = append(f.keys, key)
	n := len(f.keys)
	f.mu.Unlock()
	return f.answer(n)
}

func (f *fakeLimiter) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.keys...)
}

var errLimiterDown = fmt.Errorf("limiter: %w: connection refused", streams.ErrUnavailable)

// TestRateLimitResponses: within the budget the request passes with the X-RateLimit headers;
// over it, 429 in the error shape with Retry-After; a failing limiter fails open, counted.
func TestRateLimitResponses(t *testing.T) {
	t.Parallel()
	reset := time.Now().Add(30 * time.Second)
	budget := func(n int) (limits.RateResult, error) {
		if n <= 2 {
			return limits.RateResult{Limit: 2, Remaining: int64(2 - n), Reset: reset}, nil
		}
		return limits.RateResult{Limit: 2, Remaining: 0, Reset: reset, Reached: true}, nil
	}
	down := func(int) (limits.RateResult, error) { return limits.RateResult{}, errLimiterDown }
	event := `{"type":"queue.status","data":{"pending":1,"active":0}}`
	tests := []struct {
		name, method, target, body string
		connect                    bool // the limiter under test is the connect one
		answer                     func(int) (limits.RateResult, error)
		want                       []int // statuses of successive requests
		headers                    bool  // X-RateLimit-* expected
		failures                   uint64
	}{
		{"publish budget", "POST", "/api/v1/events", event, false, budget, []int{201, 201, 429, 429}, true, 0},
		{"history is not connect-limited", "GET", "/api/v1/events", "", true, budget, []int{200, 200, 200}, false, 0},
		{"ws budget", "GET", "/api/v1/ws", "", true, budget, []int{400, 400, 429}, true, 0}, // 400: not an upgrade
		{"publish fails open", "POST", "/api/v1/events", event, false, down, []int{201, 201}, false, 2},
		{"ws fails open", "GET", "/api/v1/ws", "", true, down, []int{400, 400}, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lim := &fakeLimiter{answer: tt.answer}
			var s *Server
			if tt.connect {
				s, _ = newAuthServer(t, Config{}, lim, nil)
			} else {
				s, _ = newAuthServer(t, Config{}, nil, lim)
			}
			h := bearer(hsToken(t, claimsFor("rl", "subscribe publish")))
			for i, want := range tt.want {
				rec := do(s, tt.method, tt.target, tt.body, h)
				if rec.Code != want {
					t.Fatalf("request %d: status %d, want %d: %s", i+1, rec.Code, want, rec.Body)
				}
				if got := rec.Header().Get("X-RateLimit-Limit"); (got != "") != tt.headers {
					t.Fatalf("request %d: X-RateLimit-Limit %q, want headers: %v", i+1, got, tt.headers)
				}
				if tt.headers {
					if got := rec.Header().Get("X-RateLimit-Limit"); got != "2" {
						t.Fatalf("request %d: X-RateLimit-Limit %q, want 2", i+1, got)
					}
					if got := rec.Header().Get("X-RateLimit-Reset"); got != strconv.FormatInt(reset.Unix(), 10) {
						t.Fatalf("request %d: X-RateLimit-Reset %q, want %d", i+1, got, reset.Unix())
					}
				}
				if want == http.StatusTooManyRequests {
					if code, msg := errorCode(t, rec); code != "rate_limited" || msg == "" {
						t.Fatalf("429 body %s", rec.Body)
					}
					// About the seconds left until the limiter's reset, counted now: on a loaded
					// machine this subtest may start seconds after reset was set.
					left := int(time.Until(reset).Seconds())
					ra, err := strconv.Atoi(rec.Header().Get("Retry-After"))
					if err != nil || ra < left || ra > left+2 || rec.Header().Get("X-RateLimit-Remaining") != "0" {
						t.Fatalf("429 headers %v, want Retry-After about %d and remaining 0", rec.Header(), left)
					}
				}
			}
			route := RoutePublish
			if tt.connect {
				route = RouteConnect
			}
			if got := s.LimiterErrors(route); got != tt.failures {
				t.Fatalf("LimiterErrors(%s) = %d, want %d", route, got, tt.failures)
			}
		})
	}
}

// TestRateLimitKeys: the connect limit keys on the client IP — X-Forwarded-For counts only from
// a trusted proxy — and the publish limit on the token subject.
func TestRateLimitKeys(t *testing.T) {
	t.Parallel()
	ok := func(int) (limits.RateResult, error) {
		return limits.RateResult{Limit: 10, Remaining: 9, Reset: time.Now().Add(time.Second)}, nil
	}
	forged := http.Header{"X-Forwarded-For": {"203.0.113.7"}, "X-Real-Ip": {"203.0.113.8"}}
	tests := []struct {
		name    string
		trusted []string
		remote  string
		want    string
	}{
		{"untrusted peer, forged header ignored", nil, "192.0.2.1:1234", "ip:192.0.2.1"},
		{"peer outside the trusted range", []string{"198.51.100.0/24"}, "192.0.2.1:1234", "ip:192.0.2.1"},
		{"trusted proxy", []string{"192.0.2.0/24"}, "192.0.2.1:1234", "ip:203.0.113.7"},
		{"trusted proxy by address", []string{"192.0.2.1"}, "192.0.2.1:1234", "ip:203.0.113.7"},
		{"ipv6 peer", nil, "[2001:db8::1]:1234", "ip:2001:db8::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			connect, publish := &fakeLimiter{answer: ok}, &fakeLimiter{answer: ok}
			s, _ := newAuthServer(t, Config{TrustedProxies: tt.trusted}, connect, publish)
			h := bearer(hsToken(t, claimsFor("subject-1", "subscribe publish")))
			for k, v := range forged {
				h[k] = v
			}
			req := httptest.NewRequest("GET", "/api/v1/ws", nil)
			req.RemoteAddr = tt.remote
			req.Header = h
			s.Handler().ServeHTTP(httptest.NewRecorder(), req)
			req = httptest.NewRequest("POST", "/api/v1/events", strings.NewReader(`{"type":"queue.status","data":{"pending":1,"active":0}}`))
			req.RemoteAddr = tt.remote
			req.Header = h.Clone()
			req.Header.Set("Content-Type", "application/json")
			s.Handler().ServeHTTP(httptest.NewRecorder(), req)
			if got := connect.seen(); len(got) != 1 || got[0] != tt.want {
				t.Fatalf("connect keys %v, want [%s]", got, tt.want)
			}
			if got := publish.seen(); len(got) != 1 || got[0] != "sub:subject-1" {
				t.Fatalf("publish keys %v, want [sub:subject-1]", got)
			}
		})
	}
}

// TestPublishRatePerSubject: with the memory limiter, one subject's exhausted budget leaves
// another's untouched.
func TestPublishRatePerSubject(t *testing.T) {
	t.Parallel()
	lim := store.NewMemoryRateLimiter("publish", limits.Rate{Limit: 2, Period: time.Minute})
	s, _ := newAuthServer(t, Config{}, nil, lim)
	event := `{"type":"queue.status","data":{"pending":1,"active":0}}`
	alice, bob := bearer(hsToken(t, claimsFor("alice", "publish"))), bearer(hsToken(t, claimsFor("bob", "publish")))
	for i, want := range []int{201, 201, 429} {
		if rec := do(s, "POST", "/api/v1/events", event, alice); rec.Code != want {
			t.Fatalf("alice %d: %d, want %d", i+1, rec.Code, want)
		}
	}
	if rec := do(s, "POST", "/api/v1/events", event, bob); rec.Code != 201 || rec.Header().Get("X-RateLimit-Remaining") != "1" {
		t.Fatalf("bob: %d remaining %q, want 201 with 1 remaining", rec.Code, rec.Header().Get("X-RateLimit-Remaining"))
	}
}

// TestLimiterFailureLogThrottled: a limiter outage is logged once per interval, counted always.
func TestLimiterFailureLogThrottled(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	r := &rateRoute{name: RouteConnect, failOpen: true}
	s := &Server{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	for i := 0; i < 5; i++ {
		r.failed(s, errLimiterDown)
	}
	if n := strings.Count(buf.String(), "rate limiter unavailable"); n != 1 || r.errors.Load() != 5 {
		t.Fatalf("%d log lines and %d counted, want 1 and 5:\n%s", n, r.errors.Load(), buf.String())
	}
	if !strings.Contains(buf.String(), "failing open") || !errors.Is(errLimiterDown, streams.ErrUnavailable) {
		t.Fatalf("log %s: want the policy named", buf.String())
	}
}
