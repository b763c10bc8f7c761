package main

// End-to-end tests of the real binary behind the nginx configuration of nginx/ (rendered by the
// same code as `go tool task nginx:render`, run unprivileged with Debian's nginx; see
// nginx/nginxtest): SSE and WebSocket through nginx, the client address eventgate sees, the
// hidden /metrics, redacted logs, nginx's 200 + retry: when no instance answers, and two
// instances on one Redis where one is stopped (SIGTERM, SIGKILL) and its clients resume through
// nginx on the other with every event exactly once.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/nginx"
	"github.com/eventgate/eventgate/nginx/nginxtest"
)

// nginxEnv is the eventgate environment behind nginx: nginx (on 127.0.0.1) is the trusted proxy;
// short retry and grace keep failover quick; the connect rate is nginx's business here.
func nginxEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"EVENTGATE_AUTH": "none", "EVENTGATE_TRUSTED_PROXIES": "127.0.0.1/32", "EVENTGATE_CONNECT_RATE": "10000-S",
		"EVENTGATE_RETRY": "200ms", "EVENTGATE_SHUTDOWN_GRACE": "2s",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// startNginx starts nginx in front of the servers, with limits loose enough for reconnect loops.
func startNginx(t *testing.T, servers ...*server) *nginxtest.Proxy {
	t.Helper()
	p := nginx.DefaultParams()
	for _, s := range servers {
		p.Upstreams = append(p.Upstreams, s.addr)
	}
	p.ConnectRate, p.ConnectBurst, p.ConnsPerIP = "1000r/s", 1000, 1000
	return nginxtest.Start(t, p)
}

// dialerFrom dials from the loopback address ip, so that nginx sees distinct clients.
func dialerFrom(ip string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
}

func clientFrom(ip string) *http.Client {
	return &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: dialerFrom(ip).DialContext, DisableCompression: true}}
}

// dialStream opens an SSE stream like openStream, but returns an error instead of failing the
// test (for use off the test goroutine); a non-200 or non-SSE answer is an error.
func dialStream(ctx context.Context, c *http.Client, url string, headers map[string]string) (*sseStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: status %d (%s), body %s", url, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	s := &sseStream{Resp: resp, frames: make(chan frame, 4096), done: make(chan struct{}), cancel: cancel}
	go s.read(ctx)
	return s, nil
}

// openStreamFrom is openStream from the loopback address ip.
func openStreamFrom(t *testing.T, ip, url string, headers map[string]string) *sseStream {
	t.Helper()
	s, err := dialStream(context.Background(), clientFrom(ip), url, headers)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// countLines counts the JSON log lines of s with msg and every attr (key → JSON value text).
func countLines(s *server, msg string, attrs map[string]string) int {
	n := 0
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		match := true
		for k, v := range attrs {
			match = match && fmt.Sprint(rec[k]) == v
		}
		if match {
			n++
		}
	}
	return n
}

// countResumesFrom counts the streams s opened resuming from position from or later.
func countResumesFrom(t *testing.T, s *server, from string) int {
	n := 0
	for _, line := range strings.Split(s.stderr.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "connection opened" {
			continue
		}
		if pos, _ := rec["resume"].(string); pos != "now" && pos != "" && !idLess(t, pos, from) {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func TestE2ENginxSingleInstance(t *testing.T) {
	t.Parallel()
	s := startServer(t, nginxEnv(map[string]string{"EVENTGATE_MAX_CONNECTIONS_PER_IP": "1"}))
	px := startNginx(t, s)

	// SSE through nginx: events published after the stream opened arrive, in order.
	st := openStreamFrom(t, "127.0.0.2", px.URL()+"/api/v1/stream?topic=*", nil)
	if h := st.Resp.Header; h.Get("Cache-Control") != "no-cache" || h.Get("Content-Encoding") != "" {
		t.Fatalf("stream headers through nginx: %v", h)
	}
	for _, n := range []int{2, 1} {
		ids := mustPublish(t, px.URL(), progressBatch(jobA, n), n)
		requireIDs(t, "through nginx", frameIDs(st.events(t, n, frameTimeout)), ids)
	}

	// The client address eventgate sees is nginx's peer, never what the client claims: with one
	// connection per address, a second stream from 127.0.0.2 is refused whatever its
	// X-Forwarded-For says, and one from 127.0.0.3 is let in.
	req, _ := http.NewRequest(http.MethodGet, px.URL()+"/api/v1/stream", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.7")
	resp, err := clientFrom("127.0.0.2").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	expectError(t, resp.StatusCode, raw, http.StatusTooManyRequests, "too_many_connections")
	other := openStreamFrom(t, "127.0.0.3", px.URL()+"/api/v1/stream?access_token=e2e-secret-token", nil)
	waitFor(t, "connection log lines with the client addresses", frameTimeout, func() bool {
		return countLines(s, "connection opened", map[string]string{"client_ip": "127.0.0.2"}) == 1 &&
			countLines(s, "connection opened", map[string]string{"client_ip": "127.0.0.3"}) == 1
	})
	if strings.Contains(s.stderr.String(), "198.51.100.7") {
		t.Fatal("eventgate believed a client's forged X-Forwarded-For")
	}
	other.Close()

	// WebSocket through nginx.
	d := websocket.Dialer{NetDialContext: dialerFrom("127.0.0.4").DialContext, HandshakeTimeout: 5 * time.Second}
	ws, wsResp, err := d.Dial("ws://"+px.Addr+"/api/v1/ws?topic=*", nil)
	if err != nil {
		t.Fatalf("WebSocket through nginx: %v (%v)", err, wsResp)
	}
	defer ws.Close()
	ids := mustPublish(t, px.URL(), jobProgress(jobA, 7), 1)
	_ = ws.SetReadDeadline(time.Now().Add(frameTimeout))
	for {
		_, msg, err := ws.ReadMessage()
		if err != nil {
			t.Fatalf("reading the WebSocket: %v", err)
		}
		var e struct{ ID, Type string }
		if json.Unmarshal(msg, &e) == nil && e.ID != "" {
			if e.ID != ids[0] || e.Type != "job.progress" {
				t.Fatalf("WebSocket frame %s, want event %s", msg, ids[0])
			}
			break
		}
	}
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"action":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"pong"`) {
		t.Fatalf("after ping: %s, %v; want a pong", msg, err)
	}

	// /metrics is nginx's 404; the request never reaches eventgate.
	status, _, raw := doRequest(t, http.MethodGet, px.URL()+"/metrics", "", nil)
	expectError(t, status, raw, http.StatusNotFound, "not_found")

	// Stop the only instance: the open stream ends with shutdown; then nginx answers SSE
	// requests itself with 200 + retry: and publishing with a JSON 503.
	s.Stop()
	var shutdown bool
	for _, f := range st.expectEnd(t, stopTimeout) {
		shutdown = shutdown || f.Event == "shutdown"
	}
	if !shutdown {
		t.Fatal("the stream through nginx ended without event: shutdown")
	}
	down := openStreamFrom(t, "127.0.0.2", px.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": ids[0]})
	frames := down.expectEnd(t, frameTimeout)
	if len(frames) == 0 || frames[len(frames)-1].Retry == "" {
		t.Fatalf("no instance up: frames %+v, want a retry: hint", frames)
	}
	status, hdr, raw := doRequest(t, http.MethodPost, px.URL()+"/api/v1/events", queueStatus(1, 1), nil)
	expectError(t, status, raw, http.StatusServiceUnavailable, "upstream_unavailable")
	if hdr.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}

	// Logs: the query token is redacted in nginx's access log and in no log at all.
	var access string
	waitFor(t, "the access log line of the token request", frameTimeout, func() bool {
		access = px.AccessLog()
		return strings.Contains(access, `/api/v1/stream?access_token=REDACTED"`)
	})
	for name, text := range map[string]string{"nginx access log": access, "nginx error log": px.ErrorLog(), "eventgate log": s.stderr.String()} {
		if strings.Contains(text, "e2e-secret-token") {
			t.Fatalf("the query token reached the %s", name)
		}
	}
	if !regexp.MustCompile(`"uri":"/metrics","status":404,[^\n]*"upstream":""`).MatchString(access) {
		t.Fatalf("/metrics went to an upstream:\n%s", access)
	}
}

// resumingClient is an SSE client that behaves like a browser's EventSource: when its stream
// ends it waits the retry: hint and reconnects (through nginx) with Last-Event-ID. It records
// every event id it receives, so a test can check for loss and duplicates.
type resumingClient struct {
	url    string
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	ids      []string
	connects int
	problems []string // unexpected frames or answers
}

// newResumingClient opens the first stream (live) before returning, so that events published
// afterwards are the client's to receive.
func newResumingClient(t *testing.T, url string) *resumingClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	first, err := dialStream(ctx, streamClient, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &resumingClient{url: url, cancel: cancel, done: make(chan struct{}), connects: 1}
	go c.run(ctx, first)
	t.Cleanup(c.stop)
	return c
}

func (c *resumingClient) run(ctx context.Context, st *sseStream) {
	defer close(c.done)
	for {
		retry := 200 * time.Millisecond
		for f := range st.frames {
			if ms, err := strconv.Atoi(f.Retry); err == nil {
				retry = min(max(time.Duration(ms)*time.Millisecond, 50*time.Millisecond), 2*time.Second)
			}
			switch {
			case f.Event == "shutdown" || !f.isEvent():
			case f.Event == "resync" || !f.HasID:
				c.problem(fmt.Sprintf("unexpected frame %+v", f))
			default:
				c.mu.Lock()
				c.ids = append(c.ids, f.ID)
				c.mu.Unlock()
			}
		}
		st.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(retry): // the client's reconnect delay, as EventSource does
			}
			var headers map[string]string
			if last := c.last(); last != "" {
				headers = map[string]string{"Last-Event-ID": last}
			}
			var err error
			if st, err = dialStream(ctx, streamClient, c.url, headers); err == nil {
				c.mu.Lock()
				c.connects++
				c.mu.Unlock()
				break
			}
			if ctx.Err() == nil {
				c.problem(err.Error()) // through nginx, a stream request always gets 200
			}
		}
	}
}

func (c *resumingClient) problem(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, p)
}

func (c *resumingClient) last() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.ids) == 0 {
		return ""
	}
	return c.ids[len(c.ids)-1]
}

func (c *resumingClient) snapshot() (ids []string, connects int, problems []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.ids...), c.connects, append([]string(nil), c.problems...)
}

func (c *resumingClient) stop() { c.cancel(); <-c.done }

// expect waits until the client holds as many ids as want, then requires exactly want: nothing
// lost, nothing repeated, in order.
func (c *resumingClient) expect(t *testing.T, name string, want []string) {
	t.Helper()
	waitFor(t, name+" receiving every event", 2*stopTimeout, func() bool {
		ids, _, _ := c.snapshot()
		return len(ids) >= len(want)
	})
	ids, connects, problems := c.snapshot()
	if len(problems) > 0 {
		t.Fatalf("%s: %v", name, problems)
	}
	requireIDs(t, fmt.Sprintf("%s (%d connections)", name, connects), ids, want)
}

// publishRetrying publishes through nginx as a careful producer does: with an Idempotency-Key,
// retrying 503s (no instance answered, or one was draining), so a retry never appends twice.
func publishRetrying(t *testing.T, baseURL, body string, n int) []string {
	t.Helper()
	key := "nginx-failover-" + newUUID()
	for attempt := 1; ; attempt++ {
		status, ids, raw := publish(t, baseURL, body, map[string]string{"Idempotency-Key": key})
		if status == http.StatusCreated && len(ids) == n {
			return ids
		}
		if status != http.StatusServiceUnavailable || attempt == 20 {
			t.Fatalf("publish through nginx: status %d body %s (attempt %d)", status, raw, attempt)
		}
		time.Sleep(100 * time.Millisecond) // the producer's back-off before retrying
	}
}

func TestE2ENginxFailover(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sigterm", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			_, _, env := redisSetup(t, nginxEnv(map[string]string{"EVENTGATE_MAX_CONNECTIONS_PER_IP": "1000"}))
			a, b := startServer(t, env), startServer(t, env)
			px := startNginx(t, a, b)

			// Four clients through nginx; least_conn spreads them over both instances.
			clients := make([]*resumingClient, 4)
			for i := range clients {
				clients[i] = newResumingClient(t, px.URL()+"/api/v1/stream?topic=*")
			}
			waitFor(t, "both instances serving clients", frameTimeout, func() bool {
				return countLines(a, "connection opened", nil)+countLines(b, "connection opened", nil) == len(clients)
			})
			onA := countLines(a, "connection opened", nil)
			if onA == 0 || onA == len(clients) {
				t.Fatalf("nginx put %d of %d clients on the first instance, want a spread", onA, len(clients))
			}

			// A publish to either instance reaches the subscribers of both.
			want := mustPublish(t, a.URL(), progressBatch(jobA, 3), 3)
			want = append(want, mustPublish(t, b.URL(), progressBatch(jobA, 3), 3)...)
			for i, c := range clients {
				c.expect(t, fmt.Sprintf("client %d before the stop", i), want)
			}
			lastBefore := want[len(want)-1]

			switch mode {
			case "sigterm":
				a.Signal()
			case "sigkill":
				a.Kill()
			}
			// Published through nginx while the first instance is going or gone.
			want = append(want, publishRetrying(t, px.URL(), progressBatch(jobA, 3), 3)...)
			if code, ok := a.Wait(stopTimeout); !ok || (mode == "sigterm" && code != 0) {
				t.Fatalf("first instance after %s: exited %v, code %d", mode, ok, code)
			}
			want = append(want, publishRetrying(t, px.URL(), progressBatch(jobA, 2), 2)...)

			reconnects := 0
			for i, c := range clients {
				c.expect(t, fmt.Sprintf("client %d after the stop", i), want)
				_, connects, _ := c.snapshot()
				reconnects += connects - 1
			}
			if reconnects < onA {
				t.Fatalf("%d reconnects, want at least %d (the first instance's clients)", reconnects, onA)
			}
			// They resumed on the second instance from their position: the last event each saw,
			// which is lastBefore or, if it was delivered more before its stream was drained, later.
			if n := countResumesFrom(t, b, lastBefore); n < onA {
				t.Fatalf("%d resumes from %s or later on the second instance, want at least %d", n, lastBefore, onA)
			}
		})
	}
}
