package nginx_test

// Behaviour of the rendered configuration under a real nginx, against stand-in upstreams
// (httptest servers on loopback): unbuffered SSE even without X-Accel-Buffering, the headers
// eventgate relies on, WebSocket upgrade, the 200 + retry: answer when no instance answers,
// limits, the hidden /metrics and the redacted access log. The real binary behind nginx is
// tested in cmd/eventgate (e2e_nginx_test.go).

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/nginx"
	"github.com/eventgate/eventgate/nginx/nginxtest"
)

const waitTimeout = 10 * time.Second

// clientFrom is an HTTP client whose connections come from the loopback address ip, so that
// nginx sees distinct client addresses.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// upstream is a stand-in for eventgate that records what reaches it.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []*http.Request
}

func newUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.seen = append(u.seen, r.Clone(context.Background()))
		u.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.seen...)
}

func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

// proxyTo starts nginx in front of the given upstream addresses.
func proxyTo(t *testing.T, edit func(*nginx.Params), upstreams ...string) *nginxtest.Proxy {
	t.Helper()
	p := nginx.DefaultParams()
	p.Upstreams = upstreams
	if edit != nil {
		edit(&p)
	}
	return nginxtest.Start(t, p)
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func get(t *testing.T, c *http.Client, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", url, err)
	}
	return resp, string(body)
}

func TestProxySSEUnbufferedWithClientAddress(t *testing.T) {
	t.Parallel()
	acks := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		// Deliberately without X-Accel-Buffering: the location itself must not buffer.
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		for _, id := range []string{"1-0", "2-0", "3-0"} {
			_, _ = io.WriteString(w, "id: "+id+"\nevent: job.progress\ndata: {}\n\n")
			_ = rc.Flush()
			// The next frame is written only once the client has this one: a buffering proxy
			// would hold the small frame back and the client would never see it.
			select {
			case <-acks:
			case <-r.Context().Done():
				return
			}
		}
	})
	px := proxyTo(t, nil, up.addr())

	req, _ := http.NewRequest(http.MethodGet, px.URL()+"/api/v1/stream?topic=jobs/*", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("X-Forwarded-For", "203.0.113.9") // forged: nginx is the edge
	req.Header.Set("X-Real-IP", "203.0.113.9")
	resp, err := clientFrom("127.0.0.2").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Content-Encoding") != "" {
		t.Fatalf("status %d, headers %v: want 200 text/event-stream, not compressed", resp.StatusCode, resp.Header)
	}
	lines := bufio.NewScanner(resp.Body)
	for i, want := range []string{"1-0", "2-0", "3-0"} {
		got := make(chan string, 1)
		go func() {
			for lines.Scan() {
				if id, ok := strings.CutPrefix(lines.Text(), "id: "); ok {
					got <- id
					return
				}
			}
			close(got)
		}()
		select {
		case id := <-got:
			if id != want {
				t.Fatalf("frame %d: id %q, want %q", i, id, want)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("frame %d (%s) did not come through nginx: is the stream buffered?", i, want)
		}
		if i < 2 {
			acks <- struct{}{}
		}
	}

	seen := up.requests()
	if len(seen) != 1 {
		t.Fatalf("upstream saw %d requests, want 1", len(seen))
	}
	r := seen[0]
	for h, want := range map[string]string{
		"X-Real-Ip": "127.0.0.2", "X-Forwarded-For": "127.0.0.2", "X-Forwarded-Proto": "http", "Accept": "text/event-stream",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("upstream got %s: %q, want %q", h, got, want)
		}
	}
	if r.Host != px.Addr || r.ProtoMinor != 1 || r.Header.Get("X-Request-Id") == "" || r.URL.RawQuery != "topic=jobs/*" {
		t.Errorf("upstream got Host %q, HTTP/1.%d, X-Request-ID %q, query %q; want Host %s over HTTP/1.1 with a request id and the query",
			r.Host, r.ProtoMinor, r.Header.Get("X-Request-Id"), r.URL.RawQuery, px.Addr)
	}
}

func TestProxyWebSocket(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			kind, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if conn.WriteMessage(kind, append([]byte("echo "), msg...)) != nil {
				return
			}
		}
	})
	px := proxyTo(t, nil, up.addr())
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+px.Addr+"/api/v1/ws", nil)
	if err != nil {
		t.Fatalf("dial through nginx: %v (response %v)", err, resp)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
	for _, msg := range []string{`{"action":"ping"}`, "second"} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, got, err := conn.ReadMessage(); err != nil || string(got) != "echo "+msg {
			t.Fatalf("read %q, %v; want %q", got, err, "echo "+msg)
		}
	}
	if r := up.requests()[0]; !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || r.Header.Get("X-Real-Ip") != "127.0.0.1" {
		t.Fatalf("upstream got Upgrade %q, X-Real-IP %q", r.Header.Get("Upgrade"), r.Header.Get("X-Real-Ip"))
	}
}

var retryLine = regexp.MustCompile(`(?m)^retry: ([2-5]000)$`)

// expectSSERetry requires nginx's own 200 + retry: answer for an SSE request.
func expectSSERetry(t *testing.T, resp *http.Response, body string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || !retryLine.MatchString(body) {
		t.Fatalf("status %d, Content-Type %q, body %q: want 200 text/event-stream with retry: 2000..5000",
			resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}

// expectJSONError requires status and an eventgate-shaped error body with code.
func expectJSONError(t *testing.T, resp *http.Response, body string, status int, code string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if resp.StatusCode != status || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("status %d, body %q: want %d with error code %q", resp.StatusCode, body, status, code)
	}
}

func TestProxyNoUpstreamAnswers(t *testing.T) {
	t.Parallel()
	px := proxyTo(t, nil, closedAddr(t), closedAddr(t))
	c := clientFrom("127.0.0.1")
	// Twice: first both instances refuse, then both are marked down ("no live upstreams").
	for range 2 {
		resp, body := get(t, c, px.URL()+"/api/v1/stream", http.Header{"Last-Event-ID": {"1-0"}})
		expectSSERetry(t, resp, body)
	}
	resp, err := c.Post(px.URL()+"/api/v1/events", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expectJSONError(t, resp, string(body), http.StatusServiceUnavailable, "upstream_unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestProxyLimits(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			w.WriteHeader(http.StatusOK)
			_ = http.NewResponseController(w).Flush()
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	defer close(release)
	px := proxyTo(t, func(p *nginx.Params) {
		p.ConnectRate, p.ConnectBurst, p.ConnsPerIP, p.APIRate, p.APIBurst = "1r/m", 5, 1, "1r/m", 0
	}, up.addr())

	// One open stream per address: the second from the same address gets nginx's 200 + retry:.
	a := clientFrom("127.0.0.2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, px.URL()+"/api/v1/stream", nil)
	open, err := a.Do(req)
	if err != nil || open.StatusCode != http.StatusOK {
		t.Fatalf("first stream: %v %v", open, err)
	}
	defer open.Body.Close()
	resp, body := get(t, a, px.URL()+"/api/v1/stream", nil)
	expectSSERetry(t, resp, body)
	// Another address is not affected.
	b := clientFrom("127.0.0.3")
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, px.URL()+"/api/v1/stream", nil)
	other, err := b.Do(req)
	if err != nil || other.StatusCode != http.StatusOK || other.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream from another address: %v %v", other, err)
	}
	defer other.Body.Close()

	// API requests: 1 per minute, no burst: the second is nginx's JSON 429.
	for i, want := range []int{http.StatusCreated, http.StatusTooManyRequests} {
		resp, err := a.Post(px.URL()+"/api/v1/events", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if i == 0 && resp.StatusCode != want {
			t.Fatalf("first publish: status %d, want %d", resp.StatusCode, want)
		}
		if i == 1 {
			expectJSONError(t, resp, string(body), want, "rate_limited")
		}
	}
	if n := len(up.requests()); n != 3 {
		t.Fatalf("upstream saw %d requests, want 3 (two streams, one publish)", n)
	}
}

func TestProxyMetricsHiddenAndTokensRedacted(t *testing.T) {
	t.Parallel()
	up := newUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	px := proxyTo(t, nil, up.addr())
	c := clientFrom("127.0.0.1")

	resp, body := get(t, c, px.URL()+"/metrics", nil)
	expectJSONError(t, resp, body, http.StatusNotFound, "not_found")
	for _, path := range []string{"//metrics", "/./metrics", "/%6Detrics", "/metrics?x=1"} {
		if resp, _ := get(t, c, px.URL()+path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
	}
	for _, r := range up.requests() {
		t.Errorf("upstream saw %s", r.URL)
	}

	queries := []string{
		"access_token=sekrit-1",
		"topic=jobs/*&access_token=sekrit-2&type=job.progress",
		"ACCESS_TOKEN=sekrit-3",
		"access%5Ftoken=sekrit-4&x=1",
		"access_token=sekrit-5&access_token=sekrit-6",
		"access_token=sekrit-7&access_token=sekrit-8&access_token=sekrit-9",
	}
	for _, q := range queries {
		if resp, _ := get(t, c, px.URL()+"/api/v1/events?"+q, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET ?%s: status %d", q, resp.StatusCode)
		}
	}
	// The access log is written when each request ends; all have ended, but poll briefly for
	// the write to land.
	var log string
	for deadline := time.Now().Add(waitTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) { // poll interval
		if log = px.AccessLog(); strings.Count(log, "/api/v1/events") == len(queries) {
			break
		}
	}
	if strings.Count(log, "/api/v1/events") != len(queries) {
		t.Fatalf("access log has not every request:\n%s", log)
	}
	if strings.Contains(log+px.ErrorLog(), "sekrit") {
		t.Fatalf("a token reached nginx's logs:\n%s", log)
	}
	for _, want := range []string{`"uri":"/api/v1/events?access_token=REDACTED"`, `topic=jobs/*&access_token=REDACTED&type=job.progress`,
		`access%5Ftoken=REDACTED&x=1`, `access_token=REDACTED&access_token=REDACTED"`, `"uri":"/api/v1/events?REDACTED"`, `"client":"127.0.0.1"`} {
		if !strings.Contains(log, want) {
			t.Errorf("access log lacks %s:\n%s", want, log)
		}
	}
	// Each line is one JSON object.
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Errorf("access log line is not JSON: %s", line)
		}
	}
}
