package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
	"github.com/eventgate/eventgate/telemetry/telemetrytest"
)

// metricValue returns the value of the series name{labels} of m (telemetrytest.Value).
func metricValue(t *testing.T, m *telemetry.Metrics, name string, labels ...string) float64 {
	t.Helper()
	return telemetrytest.Value(t, m.Registry(), name, labels...)
}

// syncBuffer is a log sink read by the test while handlers write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// newMetricsServer is newTestServer with the metric set wired into the hub, and a JSON log.
func newMetricsServer(t *testing.T, cfg Config) (*httptest.Server, *Server, *telemetry.Metrics, *store.Memory, *syncBuffer) {
	t.Helper()
	m := telemetry.NewMetrics()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	log := store.NewMemory(1000)
	hub := streams.NewHub(log, streams.HubOptions{Observer: m, Logger: logger})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s, err := New(cfg, Deps{Hub: hub, Log: log, Receipts: store.NewMemoryReceipts(), Leases: store.NewMemoryLeases(),
		Store: log, Logger: logger, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, s, m, log, logs
}

func TestConnInfoDelivered(t *testing.T) {
	t.Parallel()
	m := telemetry.NewMetrics()
	s := &Server{metrics: m, log: slog.New(slog.DiscardHandler)}
	now := time.Now()
	old := event.NewEvent(event.ID{MS: uint64(now.Add(-time.Hour).UnixMilli())}, event.Draft{Type: "queue.status", Topic: "queue", Data: []byte(`{}`)})
	fresh := event.NewEvent(event.ID{MS: uint64(now.UnixMilli())}, event.Draft{Type: "queue.status", Topic: "queue", Data: []byte(`{}`)})
	resync := streams.NewResync(streams.ReasonTruncated, event.ID{MS: 1}, event.ID{MS: 2}, event.ID{MS: 2}, nil)

	info := &connInfo{s: s, transport: telemetry.SSE, tm: m.Connections(telemetry.SSE), opened: now,
		openedMS: uint64(now.UnixMilli()), resumePending: true}
	info.delivered(nil, errors.New("store down")) // a failed catch-up: no outcome yet
	info.delivered([]*event.Event{resync, old, fresh}, nil)
	info.delivered([]*event.Event{fresh}, context.Canceled) // the request ended: not a store error
	info.close("something new")

	for _, c := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"eventgate_store_errors_total", []string{"source", "catchup"}, 1},
		{"eventgate_resumes_total", []string{"transport", "sse", "outcome", "resync"}, 1},
		{"eventgate_resumes_total", []string{"transport", "sse", "outcome", "resumed"}, 0},
		{"eventgate_events_delivered_total", []string{"transport", "sse"}, 3},   // the control event is not an event
		{"eventgate_delivery_latency_seconds", []string{"transport", "sse"}, 2}, // the hour-old replay is not latency
		{"eventgate_connections_closed_total", []string{"transport", "sse", "reason", "other"}, 1},
		{"eventgate_connections_active", []string{"transport", "sse"}, -1}, // closed, never opened
	} {
		if got := metricValue(t, m, c.metric, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
	if info.sent != 4 {
		t.Errorf("events_sent %d, want 4 (every frame)", info.sent)
	}
}

// TestMetricsEndToEnd drives both transports and the API through a real HTTP server and checks
// the series move, that streaming routes are observed once when they end, and that the
// connection log lines carry their fields but never the query string.
func TestMetricsEndToEnd(t *testing.T) {
	t.Parallel()
	ts, s, m, _, logs := newMetricsServer(t, Config{MaxConnectionsPerIP: 2})
	const secret = "sEcReT-t0ken-value"

	resp, err := http.Get(ts.URL + "/api/v1/stream?access_token=" + secret)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("stream: %v %v", err, resp)
	}
	t.Cleanup(func() { resp.Body.Close() })
	lines := bufio.NewReader(resp.Body)
	conn := dialWS(t, ts, "?since=0&access_token="+secret, nil)
	// A third connection from this IP is over the cap.
	if r, err := http.Get(ts.URL + "/api/v1/stream"); err != nil || r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: %v %v, want 429", err, r)
	} else {
		r.Body.Close()
	}

	body := `[{"type":"queue.status","data":{"pending":1,"active":0}},{"type":"job.progress","data":{"job_id":"` + jobID + `","percent":5}}]`
	if rec := do(s, "POST", "/api/v1/events", body, nil); rec.Code != 201 {
		t.Fatalf("publish %d %s", rec.Code, rec.Body)
	}
	for got := 0; got < 2; {
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading stream: %v", err)
		}
		if strings.HasPrefix(line, "data: ") {
			got++
		}
	}
	for range 2 {
		readJSON(t, conn)
	}
	if metricValue(t, m, "eventgate_http_request_duration_seconds", "method", "GET", "route", "/api/v1/stream", "code", "200") != -1 ||
		metricValue(t, m, "eventgate_http_request_duration_seconds", "method", "GET", "route", "/api/v1/ws", "code", "101") != -1 {
		t.Fatal("a streaming route was observed before it ended")
	}
	resp.Body.Close()
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	conn.Close()
	eventually(t, "both connections closed", func() bool { return s.Active() == 0 })
	do(s, "GET", "/nope?access_token="+secret, "", nil)

	for _, c := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"eventgate_events_published_total", []string{"type", "queue.status"}, 1},
		{"eventgate_events_published_total", []string{"type", "job.progress"}, 1},
		{"eventgate_events_dispatched_total", nil, 2},
		{"eventgate_events_delivered_total", []string{"transport", "sse"}, 2},
		{"eventgate_events_delivered_total", []string{"transport", "websocket"}, 2},
		{"eventgate_delivery_latency_seconds", []string{"transport", "sse"}, 2},
		{"eventgate_connections_opened_total", []string{"transport", "sse"}, 1},
		{"eventgate_connections_opened_total", []string{"transport", "websocket"}, 1},
		{"eventgate_connections_active", []string{"transport", "sse"}, 0},
		{"eventgate_connections_closed_total", []string{"transport", "sse", "reason", "client_closed"}, 1},
		{"eventgate_connections_closed_total", []string{"transport", "websocket", "reason", "client_closed"}, 1},
		{"eventgate_resumes_total", []string{"transport", "sse", "outcome", "live"}, 1},
		{"eventgate_resumes_total", []string{"transport", "websocket", "outcome", "resumed"}, 1},
		{"eventgate_rejections_total", []string{"route", "/api/v1/stream", "reason", "max_connections_per_ip"}, 1},
		{"eventgate_http_request_duration_seconds", []string{"method", "POST", "route", "/api/v1/events", "code", "201"}, 1},
		{"eventgate_http_request_duration_seconds", []string{"method", "GET", "route", "/api/v1/stream", "code", "200"}, 1},
		{"eventgate_http_request_duration_seconds", []string{"method", "GET", "route", "/api/v1/stream", "code", "429"}, 1},
		{"eventgate_http_request_duration_seconds", []string{"method", "GET", "route", "/api/v1/ws", "code", "101"}, 1},
		{"eventgate_http_request_duration_seconds", []string{"method", "GET", "route", "unmatched", "code", "404"}, 1},
	} {
		if got := metricValue(t, m, c.metric, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}

	// The scrape: text format, every eventgate series prefixed, no request data in any label.
	rec := do(s, "GET", "/metrics", "", nil)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "eventgate_connections_opened_total{transport=\"sse\"} 1") {
		t.Fatalf("/metrics %d:\n%s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), secret) || regexp.MustCompile(`"(192\.0\.2\.1|127\.0\.0\.1|/nope)"`).MatchString(rec.Body.String()) {
		t.Fatal("request data in a metric label")
	}

	// Logs: one open and one close line per connection with every field; never the token.
	out := logs.String()
	if strings.Contains(out, secret) {
		t.Fatalf("the token appears in the log:\n%s", out)
	}
	var opens, closes int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		var want []string
		switch rec["msg"] {
		case "connection opened":
			opens++
			want = []string{"conn", "transport", "client_ip", "subject"}
		case "connection closed":
			closes++
			want = []string{"conn", "transport", "client_ip", "subject", "duration", "events_sent", "reason"}
		}
		for _, k := range want {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line %s lacks %q", line, k)
			}
		}
	}
	if opens != 2 || closes != 2 {
		t.Fatalf("%d open and %d close lines, want 2 each:\n%s", opens, closes, out)
	}
}

func TestMetricsExternal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		external bool
		status   int
	}{
		{"on the main handler", false, http.StatusOK},
		{"on a listener of its own", true, http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestServer(t, Config{ExternalMetrics: tt.external})
			if rec := do(s, "GET", "/metrics", "", nil); rec.Code != tt.status {
				t.Fatalf("GET /metrics: %d, want %d", rec.Code, tt.status)
			}
			rec := httptest.NewRecorder()
			s.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), "# TYPE eventgate_http_request_duration_seconds histogram") {
				t.Fatalf("metrics handler: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestMetricsDrainRejections(t *testing.T) {
	t.Parallel()
	ts, s, m, _, _ := newMetricsServer(t, Config{})
	s.Drain()
	do(s, "GET", "/api/v1/stream", "", nil)
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL(ts), nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("ws during drain: %v %v, want 503", err, resp)
	}
	for _, route := range []string{"/api/v1/stream", "/api/v1/ws"} {
		if got := metricValue(t, m, "eventgate_rejections_total", "route", route, "reason", "draining"); got != 1 {
			t.Errorf("rejections on %s while draining: %v, want 1", route, got)
		}
	}
}

// BenchmarkDelivered is the per-connection metrics cost of delivering one live event: the
// delivered counter and one latency observation, on series resolved at open.
func BenchmarkDelivered(b *testing.B) {
	m := telemetry.NewMetrics()
	now := time.Now()
	info := &connInfo{s: &Server{metrics: m}, tm: m.Connections(telemetry.SSE), openedMS: uint64(now.UnixMilli())}
	evs := []*event.Event{event.NewEvent(event.ID{MS: uint64(now.UnixMilli())}, event.Draft{Type: "queue.status", Topic: "queue", Data: []byte(`{}`)})}
	b.ReportAllocs()
	for b.Loop() {
		info.delivered(evs, nil)
	}
}
