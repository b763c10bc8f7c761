package handlers

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// TestOriginScheme: the origin check compares schemes — in the configured list and for the same
// host, where the scheme is https on TLS or as a trusted proxy's X-Forwarded-Proto says, http
// otherwise — so a plain-http page of a host cannot use the WebSocket of its https service.
func TestOriginScheme(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{AllowedOrigins: []string{"https://app.example"}, TrustedProxies: []string{"127.0.0.2/32"}})
	const proxy, stranger = "127.0.0.2:40000", "127.0.0.3:40000"
	tests := []struct {
		name, origin, host, peer, proto string
		tls                             bool
		ok                              bool
	}{
		{"no origin", "", "api.example", stranger, "", false, true},
		{"listed", "https://app.example", "api.example", stranger, "", false, true},
		{"listed host, other scheme", "http://app.example", "api.example", stranger, "", false, false},
		{"same host over TLS", "https://app.example", "app.example", stranger, "", true, true},
		{"plain-http page, TLS request", "http://app.example", "app.example", stranger, "", true, false},
		{"https page, proxy says https", "https://api.example", "api.example", proxy, "https", false, true},
		{"plain-http page, proxy says https", "http://api.example", "api.example", proxy, "https", false, false},
		{"proxies appended, the first counts", "http://api.example", "api.example", proxy, "https, http", false, false},
		{"https page, proxy says http", "https://api.example", "api.example", proxy, "http", false, false},
		{"plain http, same host", "http://api.example:8080", "api.example:8080", stranger, "", false, true},
		{"https page over plain http", "https://api.example", "api.example", stranger, "", false, false},
		{"untrusted X-Forwarded-Proto", "https://api.example", "api.example", stranger, "https", false, false},
		{"other host", "https://evil.example", "api.example", proxy, "https", false, false},
		{"opaque origin", "null", "api.example", stranger, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "http://"+tt.host+"/api/v1/ws", nil)
			r.RemoteAddr = tt.peer
			if tt.origin != "" {
				r.Header.Set("Origin", tt.origin)
			}
			if tt.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tt.proto)
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := s.checkOrigin(r); got != tt.ok {
				t.Fatalf("Origin %q to %s (peer %s, TLS %v, X-Forwarded-Proto %q): allowed %v, want %v",
					tt.origin, tt.host, tt.peer, tt.tls, tt.proto, got, tt.ok)
			}
		})
	}
}

// TestWebSocketOriginOverTLS: over TLS, the same host's https page may connect and its plain-http
// page may not (403 before the upgrade).
func TestWebSocketOriginOverTLS(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	ts := httptest.NewTLSServer(s.Handler())
	t.Cleanup(ts.Close)
	host := strings.TrimPrefix(ts.URL, "https://")
	d := websocket.Dialer{TLSClientConfig: ts.Client().Transport.(*http.Transport).TLSClientConfig}
	for _, tt := range []struct {
		origin string
		status int
	}{
		{"https://" + host, http.StatusSwitchingProtocols},
		{"http://" + host, http.StatusForbidden},
	} {
		conn, resp, err := d.Dial("wss://"+host+"/api/v1/ws", http.Header{"Origin": {tt.origin}})
		if conn != nil {
			conn.Close()
		}
		if resp == nil || resp.StatusCode != tt.status {
			t.Fatalf("Origin %s: %v (%v), want %d", tt.origin, resp, err, tt.status)
		}
	}
}
