package webhooks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rebindResolver answers a public address for the first lookup (registration) and 127.0.0.1 for
// every later one (dial time): DNS rebinding. The public address is never dialled.
type rebindResolver struct{ calls atomic.Int32 }

func (r *rebindResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if host != "rebind.example" {
		return nil, errors.New("rebindResolver: unexpected host " + host)
	}
	if r.calls.Add(1) == 1 {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// counter is a loopback receiver that counts requests.
func counter(t *testing.T, status int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func TestDNSRebindingBlockedAtDial(t *testing.T) {
	t.Parallel()
	srv, hits := counter(t, http.StatusOK)
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	target := "http://rebind.example:" + port + "/hook"
	for _, tt := range []struct {
		name      string
		allow     []netip.Prefix
		wantHits  int32
		wantBlock bool
	}{
		{"guarded", nil, 0, true},
		// Control: with loopback allowed the same request reaches the receiver, so the guarded
		// case would notice a guard that let it through.
		{"loopback allowed", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hits.Store(0)
			res := &rebindResolver{}
			p := NewPolicy(PolicyOptions{Resolver: res, AllowPorts: []uint16{}, AllowCIDRs: tt.allow})
			if _, err := p.CheckURL(t.Context(), target); err != nil {
				t.Fatalf("registration: %v (the first answer is public)", err)
			}
			resp, err := NewClient(p, ClientOptions{Timeout: 5 * time.Second}).Post(target, "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
			}
			if tt.wantBlock {
				if !errors.Is(err, ErrBlocked) {
					t.Fatalf("POST after rebinding: %v, want ErrBlocked", err)
				}
				if out, class := classify(err); out != OutcomeBlocked || !strings.Contains(class, "127.0.0.1") {
					t.Fatalf("classify = %s %q, want blocked naming 127.0.0.1", out, class)
				}
			} else if err != nil {
				t.Fatalf("POST: %v", err)
			}
			if got := hits.Load(); got != tt.wantHits {
				t.Fatalf("receiver got %d requests, want %d", got, tt.wantHits)
			}
		})
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	inner, innerHits := counter(t, http.StatusOK)
	outer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inner.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(outer.Close)
	p := NewPolicy(PolicyOptions{AllowPorts: []uint16{}, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	c := NewClient(p, ClientOptions{})
	resp, err := c.Post(outer.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || innerHits.Load() != 0 {
		t.Fatalf("status %d, redirect target hit %d times; want 307 and 0", resp.StatusCode, innerHits.Load())
	}
	if tr := c.Transport.(*http.Transport); tr.Proxy != nil {
		t.Fatal("the transport uses a proxy from the environment")
	}
}

func TestClientTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	hole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // accepts, never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); hole.Close() })
	p := NewPolicy(PolicyOptions{AllowPorts: []uint16{}, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	start := time.Now()
	_, err := NewClient(p, ClientOptions{Timeout: 200 * time.Millisecond}).Post(hole.URL, "application/json", strings.NewReader("{}"))
	if out, _ := classify(err); out != OutcomeTimeout {
		t.Fatalf("error %v classified %s, want timeout", err, out)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("timed out after %s, want about 200ms", el)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"x", 0}, {"-5", 0}, {"120", 2 * time.Minute}, {"999999999", maxRetryAfter},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tt.v, now); got != tt.want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", tt.v, got, tt.want)
		}
	}
}
