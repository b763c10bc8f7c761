package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// trickle opens a loopback connection and sends a publish's headers declaring a 100000-byte body
// with "Expect: 100-continue". It returns once the server asked for the body — its handler reads
// it, so the request holds its place under the per-IP cap — then sends one byte of the body every
// 50 ms until the server closes the connection or the test ends.
func trickle(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); conn.Close() })
	head := "POST /api/v1/events HTTP/1.1\r\nHost: " + addr + "\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	interim, err := textproto.NewReader(br).ReadLine()
	if err != nil || !strings.HasPrefix(interim, "HTTP/1.1 100 ") {
		t.Fatalf("publish with Expect: 100-continue: %q %v, want 100 Continue", interim, err)
	}
	for { // the interim response's header block, up to its blank line
		line, err := textproto.NewReader(br).ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if line == "" {
			break
		}
	}
	_ = conn.SetReadDeadline(time.Time{})
	if _, err := io.WriteString(conn, "{"); err != nil {
		t.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	return conn, br
}

// TestE2ESlowBodies: EVENTGATE_MAX_REQUESTS_PER_IP and EVENTGATE_BODY_TIMEOUT reach the server.
// Publishes whose bodies trickle in hold at most the per-IP cap of requests (the next gets 429
// while /healthz answers), and they are cut with 408 at the body timeout, closing the connection.
func TestE2ESlowBodies(t *testing.T) {
	t.Parallel()
	// Each slow publish holds its place before the next request is sent (trickle): a request
	// sent alongside could otherwise take the third place first, and the third publish get the
	// 429. A body timeout well past the poll below, for a loaded machine.
	s := startServer(t, map[string]string{"EVENTGATE_BODY_TIMEOUT": "15s", "EVENTGATE_MAX_REQUESTS_PER_IP": "3"})
	type held struct {
		conn net.Conn
		br   *bufio.Reader
	}
	var slow []held
	for range 3 {
		conn, br := trickle(t, s.addr)
		slow = append(slow, held{conn, br})
	}
	// The three hold every place: the next request is refused at once.
	status, hdr, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/queue", "", nil)
	expectError(t, status, raw, http.StatusTooManyRequests, "too_many_requests")
	if hdr.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	if status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/healthz", "", nil); status != http.StatusOK {
		t.Fatalf("/healthz while the cap is reached: %d %s", status, raw)
	}
	for i, h := range slow {
		_ = h.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		resp, err := http.ReadResponse(h.br, nil)
		if err != nil {
			t.Fatalf("slow publish %d: no answer: %v", i, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		expectError(t, resp.StatusCode, raw, http.StatusRequestTimeout, "request_timeout")
		if !resp.Close {
			t.Fatalf("slow publish %d: 408 without Connection: close", i)
		}
	}
	eventually(t, "the cap's places freed", func() bool {
		status, _, _ := doRequest(t, http.MethodGet, s.URL()+"/api/v1/queue", "", nil)
		return status != http.StatusTooManyRequests
	})
}

// TestE2EInputRefusals: with authentication off, a cross-site form or text/plain publish is
// refused, and a query Go cannot read whole is 400 rather than an unfiltered stream.
func TestE2EInputRefusals(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	for _, tt := range []struct {
		name, method, path string
		headers            map[string]string
		status             int
		code               string
	}{
		{"text/plain publish", http.MethodPost, "/api/v1/events", map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		{"foreign origin publish", http.MethodPost, "/api/v1/events", map[string]string{"Origin": "https://evil.example.net"}, 403, "forbidden"},
		{"foreign origin webhook", http.MethodPost, "/api/v1/webhooks", map[string]string{"Origin": "https://evil.example.net"}, 403, "forbidden"},
		{"over 10000 query parameters", http.MethodGet, "/api/v1/stream?since=0&" + strings.Repeat("x=1&", 10000), nil, 400, "bad_request"},
	} {
		body := ""
		if tt.method == http.MethodPost {
			body = queueStatus(1, 0)
		}
		status, _, raw := doRequest(t, tt.method, s.URL()+tt.path, body, tt.headers)
		if status != tt.status {
			t.Fatalf("%s: status %d %s, want %d", tt.name, status, raw, tt.status)
		}
		expectError(t, status, raw, tt.status, tt.code)
	}
	// Nothing was published by the refused requests.
	if p := history(t, s.URL(), "after=0"); len(p.Events) != 0 {
		t.Fatalf("refused publishes appended %d events", len(p.Events))
	}
}
