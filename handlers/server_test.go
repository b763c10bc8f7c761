package handlers

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

const jobID = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"

// newTestServer returns a server on an in-process ring whose hub runs until the test ends.
func newTestServer(t *testing.T, cfg Config) (*Server, *store.Memory) {
	t.Helper()
	return newLoggedServer(t, cfg, nil)
}

// newLoggedServer is newTestServer logging to logger (nil: slog's default).
func newLoggedServer(t *testing.T, cfg Config, logger *slog.Logger) (*Server, *store.Memory) {
	t.Helper()
	log := store.NewMemory(1000)
	hub := streams.NewHub(log, streams.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s, err := New(cfg, Deps{Hub: hub, Log: log, Receipts: store.NewMemoryReceipts(), Leases: store.NewMemoryLeases(),
		Jobs: store.NewMemoryJobs(time.Hour), Store: log, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return s, log
}

func do(s *Server, method, target, body string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json") // a header below may replace it
	}
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) (string, string) {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q is not the error shape: %v", rec.Body.String(), err)
	}
	return body.Error.Code, body.Error.Message
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{MaxEventBytes: 300})
	long := strings.Repeat("x", 400)
	tests := []struct {
		name, method, target, body string
		header                     http.Header
		status                     int
		code, inMessage            string
	}{
		{"bad last-event-id", "GET", "/api/v1/stream", "", http.Header{"Last-Event-Id": {"abc"}}, 400, "invalid_position", "abc"},
		{"bad since", "GET", "/api/v1/stream?since=1-2-3", "", nil, 400, "invalid_position", "1-2-3"},
		{"bad topic", "GET", "/api/v1/stream?topic=JOBS", "", nil, 400, "invalid_filter", "JOBS"},
		{"bad type", "GET", "/api/v1/stream?type=job.exploded", "", nil, 400, "invalid_filter", "job.exploded"},
		{"bad history limit", "GET", "/api/v1/events?limit=1001", "", nil, 400, "bad_request", "limit"},
		{"bad history after", "GET", "/api/v1/events?after=x", "", nil, 400, "invalid_position", "x"},
		{"not json", "POST", "/api/v1/events", "{", nil, 400, "invalid_event", ""},
		{"batch names index", "POST", "/api/v1/events",
			`[{"type":"queue.status","data":{"pending":1,"active":0}},{"type":"queue.status","data":{"pending":1,"active":0,"x":1}}]`,
			nil, 400, "invalid_event", "[1]"},
		{"too large", "POST", "/api/v1/events", `{"type":"note.created","data":{"note_id":"` + jobID + `","title":"` + long + `"}}`, nil, 413, "payload_too_large", "event[0]"},
		{"bad idempotency key", "POST", "/api/v1/events", `{"type":"queue.status","data":{"pending":1,"active":0}}`, http.Header{"Idempotency-Key": {"a b"}}, 400, "bad_request", "Idempotency-Key"},
		{"no route", "GET", "/nope", "", nil, 404, "not_found", "/nope"},
		{"wrong method", "DELETE", "/api/v1/events", "", nil, 405, "method_not_allowed", "DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := do(s, tt.method, tt.target, tt.body, tt.header)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			code, msg := errorCode(t, rec)
			if code != tt.code || !strings.Contains(msg, tt.inMessage) {
				t.Fatalf("error %s %q, want %s containing %q", code, msg, tt.code, tt.inMessage)
			}
		})
	}
}

func TestRejectedBatchAppendsNothing(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{})
	rec := do(s, "POST", "/api/v1/events", `[{"type":"queue.status","data":{"pending":1,"active":0}},{"type":"nope","data":{}}]`, nil)
	if rec.Code != 400 {
		t.Fatalf("status %d", rec.Code)
	}
	if b, _ := log.Bounds(context.Background()); !b.Last.IsZero() {
		t.Fatalf("log holds events up to %v after a rejected batch", b.Last)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	body := `[{"type":"queue.status","data":{"pending":1,"active":0}},{"type":"queue.status","data":{"pending":2,"active":0}}]`
	h := http.Header{"Idempotency-Key": {"k-1"}}
	first := do(s, "POST", "/api/v1/events", body, h)
	second := do(s, "POST", "/api/v1/events", body, h)
	if first.Code != 201 || second.Code != 201 || first.Body.String() != second.Body.String() {
		t.Fatalf("first %d %s, second %d %s", first.Code, first.Body, second.Code, second.Body)
	}
	hist := do(s, "GET", "/api/v1/events", "", nil)
	var page historyPage
	if err := json.Unmarshal(hist.Body.Bytes(), &page); err != nil || len(page.Events) != 2 {
		t.Fatalf("history %s (%v): want exactly 2 events", hist.Body, err)
	}
}

func TestReadyzAndDrain(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{Retry: 500 * time.Millisecond})
	if rec := do(s, "GET", "/readyz", "", nil); rec.Code != 200 {
		t.Fatalf("readyz %d before drain", rec.Code)
	}
	s.Drain()
	if rec := do(s, "GET", "/readyz", "", nil); rec.Code != 503 {
		t.Fatalf("readyz %d while draining", rec.Code)
	}
	// A stream request during the drain: 200, retry and shutdown, so EventSource keeps trying.
	rec := do(s, "GET", "/api/v1/stream", "", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream during drain: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if b := rec.Body.String(); !strings.HasPrefix(b, "retry: 500\n\n") || !strings.Contains(b, "event: shutdown\n") {
		t.Fatalf("stream during drain body %q", b)
	}
}

// TestHeartbeat runs the stream on a fake clock: a ping arrives at the heartbeat interval, not before.
func TestHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := newTestServer(t, Config{Heartbeat: 15 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/stream", nil)
		rec := &lockedRecorder{rec: httptest.NewRecorder()}
		done := make(chan struct{})
		go func() { defer close(done); s.Handler().ServeHTTP(rec, req) }()
		time.Sleep(14 * time.Second)
		synctest.Wait()
		if strings.Contains(rec.body(), ": ping") {
			t.Fatalf("ping before the interval: %q", rec.body())
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := strings.Count(rec.body(), ": ping\n\n"); n != 1 {
			t.Fatalf("%d pings after 16s, want 1: %q", n, rec.body())
		}
		cancel()
		<-done
	})
}

// lockedRecorder lets the test read the body while the handler writes it.
type lockedRecorder struct {
	mu  sync.Mutex
	rec *httptest.ResponseRecorder
}

func (l *lockedRecorder) Header() http.Header { return l.rec.Header() }
func (l *lockedRecorder) WriteHeader(code int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rec.WriteHeader(code)
}
func (l *lockedRecorder) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Write(b)
}
func (l *lockedRecorder) Flush() {}
func (l *lockedRecorder) body() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec.Body.String()
}

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	ev := event.NewEvent(event.ID{MS: 1732650000000, Seq: 2}, event.Draft{
		Type: "queue.status", Topic: "queue", Data: []byte(`{"pending":1,"active":0}`),
	})
	got := string(appendFrame(nil, ev))
	want := "id: 1732650000000-2\nevent: queue.status\ndata: " +
		`{"id":"1732650000000-2","type":"queue.status","topic":"queue","time":"2024-11-26T19:40:00.000Z","data":{"pending":1,"active":0}}` + "\n\n"
	if got != want {
		t.Fatalf("frame\n%q\nwant\n%q", got, want)
	}
}
