package handlers

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// openSSE opens a stream and waits for its preamble, so the connection holds its slot.
func openSSE(t *testing.T, ts *httptest.Server) *http.Response {
	t.Helper()
	resp, err := http.Get(ts.URL + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("stream status %d", resp.StatusCode)
	}
	bufio.NewReader(resp.Body).ReadString('\n')
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func wsURL(ts *httptest.Server) string {
	return "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws"
}

// rejected checks the next SSE and WebSocket attempts are both refused with status and code.
func rejected(t *testing.T, ts *httptest.Server, status int, code string) {
	t.Helper()
	resp, err := http.Get(ts.URL + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	rec := recordResponse(resp)
	if resp.StatusCode != status || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("sse: status %d Retry-After %q, want %d with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"), status)
	}
	if got, _ := errorCode(t, rec); got != code {
		t.Fatalf("sse: code %s, want %s", got, code)
	}
	_, wsResp, err := websocket.DefaultDialer.Dial(wsURL(ts), nil)
	if err == nil || wsResp == nil || wsResp.StatusCode != status {
		t.Fatalf("ws: err %v resp %v, want %d", err, wsResp, status)
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		global, perIP int
		status        int
		code          string
	}{
		{"per ip", 100, 2, http.StatusTooManyRequests, "too_many_connections"},
		{"per instance", 2, 100, http.StatusServiceUnavailable, "overloaded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestServer(t, Config{MaxConnections: tt.global, MaxConnectionsPerIP: tt.perIP})
			ts := httptest.NewServer(s.Handler())
			t.Cleanup(ts.Close) // after the streams' bodies are closed (cleanups run last-in first-out)
			sse := openSSE(t, ts)
			conn, _, err := websocket.DefaultDialer.Dial(wsURL(ts), nil)
			if err != nil {
				t.Fatal(err)
			}
			rejected(t, ts, tt.status, tt.code)
			// Slots are freed when a connection ends, whatever the transport.
			sse.Body.Close()
			eventually(t, "sse slot freed", func() bool { return s.Active() == 1 })
			openSSE(t, ts)
			rejected(t, ts, tt.status, tt.code)
			conn.Close()
			eventually(t, "ws slot freed", func() bool { return s.Active() == 1 })
		})
	}
}
