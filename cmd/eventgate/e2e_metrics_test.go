package main

// End-to-end tests of telemetry: /metrics on its own listener, present and moving after real
// traffic (SSE and WebSocket delivery, a resume that needs a resync, a rejected connection, a
// producer's invalid XADD), and connection log lines that carry their fields but never a token.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// scrape GETs a Prometheus text exposition and returns its samples keyed by
// name{label="value",...} with the labels sorted by name.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape %s: status %d, content type %q", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("scrape: bad sample line %q", line)
		}
		name, labels, _ := strings.Cut(line[:i], "{")
		pairs := strings.Split(strings.TrimSuffix(labels, "}"), ",")
		if labels == "" {
			pairs = nil
		}
		out[seriesKey(name, pairs...)] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return out
}

// seriesKey builds a scrape key from a name and `label="value"` pairs in any order.
func seriesKey(name string, pairs ...string) string {
	pairs = slices.Clone(pairs)
	slices.Sort(pairs)
	if len(pairs) == 0 {
		return name
	}
	return name + "{" + strings.Join(pairs, ",") + "}"
}

// hs256Token signs a JWT for subject with secret (HS256), valid for an hour.
func hs256Token(secret, subject string) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"sub": subject, "exp": time.Now().Add(time.Hour).Unix(), "scope": "subscribe publish"})
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

func dialE2EWS(t *testing.T, base, query string, header http.Header) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/v1/ws" + query
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: nil}
	conn, resp, err := d.Dial(u, header)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", u, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestE2EMetrics(t *testing.T) {
	t.Parallel()
	metricsAddr := freeAddr(t)
	client, key, env := redisSetup(t, map[string]string{"EVENTGATE_METRICS_ADDR": metricsAddr, "EVENTGATE_MAX_CONNECTIONS_PER_IP": "3"})
	s := startServer(t, env)
	metricsURL := "http://" + metricsAddr + "/metrics"
	before := scrape(t, metricsURL)
	if status, _, _ := doRequest(t, http.MethodGet, s.URL()+"/metrics", "", nil); status != http.StatusNotFound {
		t.Fatalf("/metrics on the main listener: %d, want 404 with EVENTGATE_METRICS_ADDR set", status)
	}
	for _, name := range []string{
		`eventgate_connections_active{transport="sse"}`, `eventgate_events_dispatched_total`,
		`eventgate_events_published_total{type="job.progress"}`, `eventgate_invalid_entries_total`,
		`eventgate_store_errors_total{source="reader"}`, `eventgate_catchups_total`,
		`eventgate_resyncs_total{reason="position_unknown"}`, `go_goroutines`, `process_resident_memory_bytes`,
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("series %s missing before any traffic", name)
		}
	}

	live := openStream(t, s.URL()+"/api/v1/stream", nil)
	ahead := openStream(t, s.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": "99999999999999-0"})
	if f := ahead.nextEvent(t, frameTimeout); f.Event != "resync" {
		t.Fatalf("resume ahead of the log: first event %+v, want resync", f)
	}
	ws := dialE2EWS(t, s.URL(), "", nil)
	if status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/stream", "", nil); status != http.StatusTooManyRequests {
		t.Fatalf("fourth connection: %d %s, want 429", status, raw)
	}
	ids := mustPublish(t, s.URL(), batch(jobProgress(jobA, 1), queueStatus(1, 0)), 2)
	requireIDs(t, "sse", frameIDs(live.events(t, 2, frameTimeout)), ids)
	for range 2 {
		_ = ws.SetReadDeadline(time.Now().Add(frameTimeout))
		if _, _, err := ws.ReadMessage(); err != nil {
			t.Fatalf("ws read: %v", err)
		}
	}
	xadd(t, client, key, "event", `{"type":"job.exploded","data":{}}`)
	live.Close()

	// Counters move asynchronously (the reader, the close): poll the scrape until they have.
	want := []struct {
		key   string
		delta float64
	}{
		{seriesKey("eventgate_events_published_total", `type="job.progress"`), 1},
		{seriesKey("eventgate_events_published_total", `type="queue.status"`), 1},
		{seriesKey("eventgate_events_dispatched_total"), 2},
		{seriesKey("eventgate_events_delivered_total", `transport="sse"`), 4}, // live and ahead
		{seriesKey("eventgate_events_delivered_total", `transport="websocket"`), 2},
		{seriesKey("eventgate_delivery_latency_seconds_count", `transport="sse"`), 4},
		{seriesKey("eventgate_delivery_latency_seconds_count", `transport="websocket"`), 2},
		{seriesKey("eventgate_connections_opened_total", `transport="sse"`), 2},
		{seriesKey("eventgate_connections_opened_total", `transport="websocket"`), 1},
		{seriesKey("eventgate_connections_active", `transport="sse"`), 1},
		{seriesKey("eventgate_connections_active", `transport="websocket"`), 1},
		{seriesKey("eventgate_connections_closed_total", `transport="sse"`, `reason="client_closed"`), 1},
		{seriesKey("eventgate_resumes_total", `transport="sse"`, `outcome="live"`), 1},
		{seriesKey("eventgate_resumes_total", `transport="sse"`, `outcome="resync"`), 1},
		{seriesKey("eventgate_resumes_total", `transport="websocket"`, `outcome="live"`), 1},
		{seriesKey("eventgate_resyncs_total", `reason="position_unknown"`), 1},
		{seriesKey("eventgate_rejections_total", `route="/api/v1/stream"`, `reason="max_connections_per_ip"`), 1},
		{seriesKey("eventgate_invalid_entries_total"), 1},
		{seriesKey("eventgate_http_request_duration_seconds_count", `method="POST"`, `route="/api/v1/events"`, `code="201"`), 1},
		{seriesKey("eventgate_http_request_duration_seconds_count", `method="GET"`, `route="/api/v1/stream"`, `code="429"`), 1},
		{seriesKey("eventgate_http_request_duration_seconds_count", `method="GET"`, `route="/api/v1/stream"`, `code="200"`), 1}, // live, at its end
		{seriesKey("eventgate_http_request_duration_seconds_count", `method="GET"`, `route="unmatched"`, `code="404"`), 1},
	}
	var after map[string]float64
	var missing []string
	for deadline := time.Now().Add(frameTimeout); ; {
		after, missing = scrape(t, metricsURL), nil
		for _, w := range want {
			if got := after[w.key] - before[w.key]; got != w.delta {
				missing = append(missing, fmt.Sprintf("%s moved by %v, want %v", w.key, got, w.delta))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	if len(missing) > 0 {
		t.Fatalf("after traffic:\n%s", strings.Join(missing, "\n"))
	}
	for k := range after {
		if strings.Contains(k, "127.0.0.1") || strings.Contains(k, jobA) || strings.Contains(k, ids[0]) {
			t.Fatalf("series %s carries request data in a label", k)
		}
	}
}

// TestE2ELogsNoTokens sends tokens by query, header and cookie on every kind of request, then
// checks the connection log lines (open and close, with every field) and that no token appears
// anywhere in the log. It holds with auth off and with auth on: the token is valid for the secret.
func TestE2ELogsNoTokens(t *testing.T) {
	t.Parallel()
	const secret = "e2e-logs-secret-0123456789abcdef0123456789"
	token := hs256Token(secret, "log-test-subject")
	const bogus = "bogus-token-7c1e9a"
	// Debug level: auth logs refused requests (with their URL redacted) there.
	s := startServer(t, map[string]string{"EVENTGATE_JWT_SECRET": secret, "EVENTGATE_SHUTDOWN_GRACE": "2s", "EVENTGATE_LOG_LEVEL": "debug"})
	q := "access_token=" + token
	st := openStream(t, s.URL()+"/api/v1/stream?topic=jobs/*&"+q, nil)
	ws := dialE2EWS(t, s.URL(), "?"+q, nil)
	ctx, cancel := context.WithTimeout(context.Background(), frameTimeout)
	defer cancel()
	for _, r := range []struct {
		method, path string
		headers      bool // the valid token also in the Authorization header and the cookie
	}{
		{http.MethodGet, "/api/v1/stream?since=bad&" + q, true},                                 // 400
		{http.MethodGet, "/nope?" + q, true},                                                    // 404
		{http.MethodPost, "/api/v1/events?" + q, true},                                          // 415
		{http.MethodGet, "/api/v1/events?after=x&" + q, true},                                   // 400
		{http.MethodGet, "/api/v1/events?access_token=" + bogus, false},                         // 401 with auth
		{http.MethodGet, "/api/v1/jobs/" + jobA + "?x=1&access_token=" + bogus + "&y=2", false}, // 401 with auth
	} {
		req, _ := http.NewRequestWithContext(ctx, r.method, s.URL()+r.path, strings.NewReader("{"))
		if r.headers {
			req.Header.Set("Authorization", "Bearer "+token)
			req.AddCookie(&http.Cookie{Name: "eventgate_token", Value: token})
		}
		resp, err := httpClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		resp.Body.Close()
	}
	mustPublishAuth(t, s.URL(), jobProgress(jobA, 3), token)
	st.nextEvent(t, frameTimeout)
	_ = ws.SetReadDeadline(time.Now().Add(frameTimeout))
	if _, _, err := ws.ReadMessage(); err != nil {
		t.Fatalf("ws read: %v", err)
	}
	s.Stop() // the drain closes both connections: their close lines are written

	out := s.stderr.String()
	for _, part := range append([]string{token, bogus}, strings.Split(token, ".")[1:]...) {
		if strings.Contains(out, part) {
			t.Fatalf("the token (or its claims or signature) appears in the log:\n%s", out)
		}
	}
	if !strings.Contains(out, "access_token=") {
		t.Fatalf("no refused request's URL logged at debug level: the redaction was not exercised:\n%s", out)
	}
	lines := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		msg, _ := rec["msg"].(string)
		var fields []string
		switch msg {
		case "connection opened":
			fields = []string{"conn", "transport", "client_ip", "subject"}
		case "connection closed":
			fields = []string{"conn", "transport", "client_ip", "subject", "duration", "events_sent", "reason"}
			if rec["reason"] != "shutdown" || rec["events_sent"] != 1.0 {
				t.Errorf("close line %s: want reason shutdown and events_sent 1", line)
			}
		default:
			continue
		}
		lines[msg+" "+fmt.Sprint(rec["transport"])]++
		for _, f := range fields {
			if _, ok := rec[f]; !ok {
				t.Errorf("log line %s lacks %q", line, f)
			}
		}
		if rec["client_ip"] != "127.0.0.1" || rec["subject"] != "log-test-subject" {
			t.Errorf("log line %s: want client_ip 127.0.0.1 and the token's subject", line)
		}
	}
	for _, k := range []string{"connection opened sse", "connection closed sse", "connection opened websocket", "connection closed websocket"} {
		if lines[k] != 1 {
			t.Errorf("%d %q lines, want 1 (all: %v)", lines[k], k, lines)
		}
	}
}

// mustPublishAuth publishes one event with a bearer token and requires 201.
func mustPublishAuth(t *testing.T, baseURL, body, token string) {
	t.Helper()
	if status, _, raw := publish(t, baseURL, body, map[string]string{"Authorization": "Bearer " + token}); status != http.StatusCreated {
		t.Fatalf("publish: %d %s", status, raw)
	}
}

// TestE2EDebugProfiles: EVENTGATE_DEBUG_ADDR serves Go's profiles on a listener of its own, and
// the public address never does.
func TestE2EDebugProfiles(t *testing.T) {
	t.Parallel()
	debugAddr := freeAddr(t)
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_DEBUG_ADDR": debugAddr})
	for _, tc := range []struct {
		url  string
		want int
	}{
		{"http://" + debugAddr + "/debug/pprof/heap?gc=1", http.StatusOK},
		{"http://" + debugAddr + "/debug/pprof/goroutine?debug=1", http.StatusOK},
		{s.URL() + "/debug/pprof/heap", http.StatusNotFound},
	} {
		if status, _, raw := doRequest(t, http.MethodGet, tc.url, "", nil); status != tc.want {
			t.Errorf("GET %s: %d, want %d (%.200s)", tc.url, status, tc.want, raw)
		}
	}
}

// TestE2EGCPercent: unless the environment sets GOGC, the binary sets its own target (gcPercent:
// 50 for a large heap, more for the small heap of a fresh process); GOGC, when set, wins.
func TestE2EGCPercent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env      map[string]string
		min, max float64
	}{
		{map[string]string{}, defaultGCPercent, maxGCPercent},
		{map[string]string{"GOGC": "100"}, 100, 100},
		{map[string]string{"GOGC": "200"}, 200, 200},
	} {
		env := map[string]string{"EVENTGATE_AUTH": "none"}
		maps.Copy(env, tc.env)
		s := startServer(t, env)
		if got := scrape(t, s.URL()+"/metrics")["go_gc_gogc_percent"]; got < tc.min || got > tc.max || len(tc.env) == 0 && got == 100 {
			t.Errorf("with %v: go_gc_gogc_percent %v, want %v..%v (not Go's 100)", tc.env, got, tc.min, tc.max)
		}
	}
}
