package handlers

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const queueEvent = `{"type":"queue.status","data":{"pending":1,"active":0}}`

// rawRequest is a hand-written HTTP/1.1 request on its own loopback connection, for bodies that
// arrive slowly or not at all (net/http's client always sends a body whole).
type rawRequest struct {
	conn net.Conn
	br   *bufio.Reader
}

// startRaw sends the request line, header (lines ending in \r\n, Host and Content-Length
// added) and the first part of a body of declared length n. With trickle set, one more byte of
// the body follows every 20 ms until the test ends or the server closes the connection.
func startRaw(t *testing.T, ts *httptest.Server, target, header string, n int, first string, trickle bool) *rawRequest {
	t.Helper()
	conn, err := net.Dial("tcp", ts.Listener.Addr().String()) // loopback: httptest listens on 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); conn.Close() })
	head := target + " HTTP/1.1\r\nHost: " + ts.Listener.Addr().String() + "\r\n" + header +
		"Content-Length: " + strconv.Itoa(n) + "\r\n\r\n" + first
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if trickle {
		go func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := conn.Write([]byte("x")); err != nil {
						return
					}
				}
			}
		}()
	}
	return &rawRequest{conn: conn, br: bufio.NewReader(conn)}
}

// recordResponse reads resp's body into a recorder, with its status, and closes the body.
func recordResponse(resp *http.Response) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	rec.Code = resp.StatusCode
	_, _ = rec.Body.ReadFrom(resp.Body)
	resp.Body.Close()
	return rec
}

// response reads the answer, failing the test if none comes within wait.
func (r *rawRequest) response(t *testing.T, wait time.Duration) (*http.Response, *httptest.ResponseRecorder) {
	t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		t.Fatalf("no answer within %s: %v", wait, err)
	}
	return resp, recordResponse(resp)
}

// closed checks the server closes the connection after its answer (within wait).
func (r *rawRequest) closed(t *testing.T, wait time.Duration) {
	t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(wait))
	_, err := r.br.ReadByte()
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection stayed open after the answer: %v", err)
	}
}

// TestSlowBodyCut: a body that trickles in is cut at EVENTGATE_BODY_TIMEOUT with 408, and an answer
// given before the body was read (401, 404) comes at once and closes the connection, instead of
// net/http reading the rest first at the client's pace.
func TestSlowBodyCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		auth        bool
		bodyTimeout time.Duration
		target      string
		header      string
		status      int
		code        string
	}{
		{"publish, auth off", false, 300 * time.Millisecond, "POST /api/v1/events", "Content-Type: application/json\r\n", 408, "request_timeout"},
		{"publish, no token", true, time.Minute, "POST /api/v1/events", "Content-Type: application/json\r\n", 401, "unauthorized"},
		{"no route", false, time.Minute, "POST /nope", "Content-Type: application/json\r\n", 404, "not_found"},
		{"trailing slash", false, time.Minute, "POST /api/v1/events/", "Content-Type: application/json\r\n", 404, "not_found"},
		{"wrong media type", false, time.Minute, "POST /api/v1/events", "Content-Type: text/plain\r\n", 415, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{BodyTimeout: tt.bodyTimeout}
			var s *Server
			if tt.auth {
				s, _ = newAuthServer(t, cfg, nil, nil)
			} else {
				s, _ = newTestServer(t, cfg)
			}
			ts := httptest.NewServer(s.Handler())
			t.Cleanup(ts.Close)
			r := startRaw(t, ts, tt.target, tt.header, 100000, "{", true)
			resp, rec := r.response(t, 10*time.Second)
			if code, _ := errorCode(t, rec); resp.StatusCode != tt.status || code != tt.code {
				t.Fatalf("status %d code %s, want %d %s", resp.StatusCode, code, tt.status, tt.code)
			}
			if !resp.Close {
				t.Fatalf("answer without Connection: close: %v", resp.Header)
			}
			r.closed(t, 10*time.Second)
		})
	}
}

// TestBodyInTimeKeepsConnection: a body sent whole within the deadline is served, and the
// connection stays usable for the next request.
func TestBodyInTimeKeepsConnection(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{BodyTimeout: 5 * time.Second})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	r := startRaw(t, ts, "POST /api/v1/events", "Content-Type: application/json\r\n", len(queueEvent), queueEvent, false)
	for i := range 2 {
		resp, rec := r.response(t, 10*time.Second)
		if resp.StatusCode != http.StatusCreated || resp.Close {
			t.Fatalf("request %d: status %d close %v body %s, want 201 keep-alive", i, resp.StatusCode, resp.Close, rec.Body)
		}
		head := "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(queueEvent)) + "\r\n\r\n" + queueEvent
		if _, err := io.WriteString(r.conn, head); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRequestsPerIPCap: a client IP with EVENTGATE_MAX_REQUESTS_PER_IP requests held (bodies that
// do not arrive) gets 429 + Retry-After for the next; /healthz, other IPs, and the same IP once a
// held request ends are served. The IP is the one the connection caps use (trusted proxies).
func TestRequestsPerIPCap(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{MaxRequestsPerIP: 2, BodyTimeout: time.Minute, TrustedProxies: []string{"127.0.0.0/8"}})
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	const ip = "198.51.100.7" // a forwarded address: only a header, nothing is sent there
	fwd := "X-Forwarded-For: " + ip + "\r\nContent-Type: application/json\r\n"
	held := []*rawRequest{
		startRaw(t, ts, "POST /api/v1/events", fwd, len(queueEvent), "{", false),
		startRaw(t, ts, "POST /api/v1/events", fwd, len(queueEvent), "{", false),
	}
	eventually(t, "two requests in flight", func() bool { return s.requests.inFlight(ip) == 2 })

	send := func(method, path, from string) (*http.Response, *httptest.ResponseRecorder) {
		t.Helper()
		var body io.Reader
		if method == http.MethodPost {
			body = strings.NewReader(queueEvent)
		}
		req, _ := http.NewRequest(method, ts.URL+path, body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", from)
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp, recordResponse(resp)
	}
	resp, rec := send(http.MethodPost, "/api/v1/events", ip)
	if code, _ := errorCode(t, rec); resp.StatusCode != http.StatusTooManyRequests || code != "too_many_requests" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the cap: status %d code %s Retry-After %q, want 429 too_many_requests with Retry-After", resp.StatusCode, code, resp.Header.Get("Retry-After"))
	}
	if resp, _ := send(http.MethodGet, "/healthz", ip); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz while capped: %d", resp.StatusCode)
	}
	if resp, rec := send(http.MethodPost, "/api/v1/events", "198.51.100.8"); resp.StatusCode != http.StatusCreated {
		t.Fatalf("another IP: %d %s", resp.StatusCode, rec.Body)
	}
	// The held requests are still served when their bodies come.
	if _, err := io.WriteString(held[0].conn, queueEvent[1:]); err != nil {
		t.Fatal(err)
	}
	if resp, rec := held[0].response(t, 10*time.Second); resp.StatusCode != http.StatusCreated {
		t.Fatalf("held request: %d %s", resp.StatusCode, rec.Body)
	}
	eventually(t, "a place freed", func() bool { return s.requests.inFlight(ip) == 1 })
	if resp, rec := send(http.MethodPost, "/api/v1/events", ip); resp.StatusCode != http.StatusCreated {
		t.Fatalf("after a place freed: %d %s", resp.StatusCode, rec.Body)
	}
	held[1].conn.Close()
	eventually(t, "every place freed", func() bool { return s.requests.inFlight(ip) == 0 })
}

// TestStateChangingRequests: bodies must be application/json (415) and a browser Origin other than
// the server's own or an allowed one may not publish or change webhooks (403), with auth off.
// Requests without Origin (curl, SDKs) and reads from any Origin pass.
func TestStateChangingRequests(t *testing.T) {
	t.Parallel()
	s := newWebhookServer(t, Config{AllowedOrigins: []string{"https://console.example.org"}}, false)
	const json = "application/json"
	hook := `{"url":"https://hooks.example.org/x"}`
	tests := []struct {
		name, method, target, body, contentType, origin string
		status                                          int
		code                                            string
	}{
		{"text/plain publish", "POST", "/api/v1/events", queueEvent, "text/plain", "", 415, "unsupported_media_type"},
		{"form publish", "POST", "/api/v1/events", queueEvent, "application/x-www-form-urlencoded", "", 415, "unsupported_media_type"},
		{"no content type", "POST", "/api/v1/events", queueEvent, "", "", 415, "unsupported_media_type"},
		{"bad content type", "POST", "/api/v1/events", queueEvent, "application/json; x", "", 415, "unsupported_media_type"},
		{"json with charset", "POST", "/api/v1/events", queueEvent, "Application/JSON; charset=utf-8", "", 201, ""},
		{"foreign origin publish", "POST", "/api/v1/events", queueEvent, json, "https://evil.example.net", 403, "forbidden"},
		{"foreign origin text/plain", "POST", "/api/v1/events", queueEvent, "text/plain", "https://evil.example.net", 403, "forbidden"},
		{"null origin", "POST", "/api/v1/events", queueEvent, json, "null", 403, "forbidden"},
		{"same host origin", "POST", "/api/v1/events", queueEvent, json, "http://example.com", 201, ""},
		{"allowed origin", "POST", "/api/v1/events", queueEvent, json, "https://console.example.org", 201, ""},
		{"foreign origin webhook", "POST", "/api/v1/webhooks", hook, json, "https://evil.example.net", 403, "forbidden"},
		{"text/plain webhook", "POST", "/api/v1/webhooks", hook, "text/plain", "", 415, "unsupported_media_type"},
		{"foreign origin delete", "DELETE", "/api/v1/webhooks/wh_x", "", "", "https://evil.example.net", 403, "forbidden"},
		{"foreign origin read", "GET", "/api/v1/events", "", "", "https://evil.example.net", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{"Content-Type": nil}
			if tt.contentType != "" {
				h.Set("Content-Type", tt.contentType)
			}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			rec := do(s, tt.method, tt.target, tt.body, h)
			if rec.Code != tt.status {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.status)
			}
			if tt.code != "" {
				if code, _ := errorCode(t, rec); code != tt.code {
					t.Fatalf("code %s, want %s", code, tt.code)
				}
			}
		})
	}
}

// TestQueryUnreadable: a query Go cannot read whole (over 10,000 parameters, which makes it drop
// every one, a bad escape, a ';') is 400 on every route, never a request served without its
// filters and position.
func TestQueryUnreadable(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	many := "since=0&topic=jobs/*&" + strings.Repeat("x=1&", 10000)
	for _, q := range []string{many, "since=%zz", "topic=jobs/*;since=0"} {
		for _, r := range []struct{ method, path, body string }{
			{"GET", "/api/v1/stream", ""},
			{"GET", "/api/v1/ws", ""},
			{"GET", "/api/v1/events", ""},
			{"POST", "/api/v1/events", queueEvent},
			{"GET", "/api/v1/jobs/" + jobID, ""},
			{"GET", "/api/v1/queue", ""},
			{"GET", "/healthz", ""},
			{"GET", "/nope", ""},
		} {
			t.Run(r.method+" "+r.path+" "+q[:min(len(q), 20)], func(t *testing.T) {
				t.Parallel()
				// A stream served in spite of the query would run until the context ends.
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				req := httptest.NewRequestWithContext(ctx, r.method, r.path+"?"+q, strings.NewReader(r.body))
				if r.body != "" {
					req.Header.Set("Content-Type", "application/json")
				}
				rec := httptest.NewRecorder()
				s.Handler().ServeHTTP(rec, req)
				if code, _ := errorCode(t, rec); rec.Code != http.StatusBadRequest || code != "bad_request" {
					t.Fatalf("status %d code %s, want 400 bad_request", rec.Code, code)
				}
			})
		}
	}
}

// TestErrorsCutEchoes: a huge value in a header, query parameter or path comes back cut in the
// error message (the explanation after it kept), never whole.
func TestErrorsCutEchoes(t *testing.T) {
	t.Parallel()
	s := newWebhookServer(t, Config{}, false)
	huge := strings.Repeat("9", 500<<10) + "x"
	tests := []struct {
		name, method, target string
		header               http.Header
		status               int
		inMessage            string
	}{
		{"Last-Event-ID", "GET", "/api/v1/stream", http.Header{"Last-Event-Id": {huge}}, 400, "is not a log id"},
		{"ws Last-Event-ID", "GET", "/api/v1/ws", http.Header{"Last-Event-Id": {huge}}, 400, "is not a log id"},
		{"since", "GET", "/api/v1/stream?since=" + huge, nil, 400, "is not a log id"},
		{"after", "GET", "/api/v1/events?after=" + huge, nil, 400, "is not a log id"},
		{"topic", "GET", "/api/v1/stream?topic=" + huge, nil, 400, "must be 1 to"},
		{"type", "GET", "/api/v1/events?type=" + huge, nil, 400, ""},
		{"job id", "GET", "/api/v1/jobs/" + huge, nil, 400, "is not a UUID"},
		{"webhook id", "GET", "/api/v1/webhooks/" + huge, nil, 404, ""},
		{"ws origin", "GET", "/api/v1/ws", http.Header{"Origin": {"http://" + huge}}, 403, "is not allowed"},
		{"publish origin", "POST", "/api/v1/events", http.Header{"Origin": {"http://" + huge}}, 403, "may not change state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := do(s, tt.method, tt.target, "", tt.header)
			if rec.Code != tt.status || rec.Body.Len() > 2048 {
				t.Fatalf("status %d, %d bytes: want %d and at most 2 KiB", rec.Code, rec.Body.Len(), tt.status)
			}
			if _, msg := errorCode(t, rec); !strings.Contains(msg, `999"...`) || !strings.Contains(msg, tt.inMessage) {
				t.Fatalf("message %q: want the value cut (999\"...) and %q", msg, tt.inMessage)
			}
		})
	}
}

// TestUnreadResponseFreesItsPlace: a client that asks for a large history page and never reads
// the answer does not hold the handler, or its place under EVENTGATE_MAX_REQUESTS_PER_IP, for
// longer than the response's write deadline.
func TestUnreadResponseFreesItsPlace(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{MaxRequestsPerIP: 1, BodyTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.Listener = smallSendBuffers{ts.Listener}
	ts.Start()
	t.Cleanup(ts.Close)
	bigNotes(t, log, 40, 100<<10) // a 4 MB page: more than the kernel's buffers hold
	conn, err := smallWindow.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /api/v1/events?after=0&limit=1000 HTTP/1.1\r\nHost: eventgate\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the request holds its place", func() bool { return s.requests.inFlight("127.0.0.1") == 1 })
	eventually(t, "the unread response gives its place up", func() bool { return s.requests.inFlight("127.0.0.1") == 0 })
	resp, err := ts.Client().Get(ts.URL + "/api/v1/events?limit=1")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the next request from the same address: %v %v", resp, err)
	}
	resp.Body.Close()
}
