package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// newAuthServer is newTestServer with HS256 auth (testSecret) and optional limiters.
func newAuthServer(t *testing.T, cfg Config, connect, publish limits.RateLimiter) (*Server, *store.Memory) {
	t.Helper()
	if cfg.Auth == nil {
		cfg.Auth = mustVerifier(t, auth.Config{Secret: testSecret})
	}
	log := store.NewMemory(1000)
	hub := streams.NewHub(log, streams.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s, err := New(cfg, Deps{Hub: hub, Log: log, Receipts: store.NewMemoryReceipts(), Leases: store.NewMemoryLeases(), Store: log,
		ConnectLimiter: connect, PublishLimiter: publish, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s, log
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// TestAuthRoutes: every API route needs a valid token with its scope; the operational routes stay
// open; tokens come from the header, the query or (GET only) the cookie.
func TestAuthRoutes(t *testing.T) {
	t.Parallel()
	s, _ := newAuthServer(t, Config{}, nil, nil)
	s.engine.GET("/test/admin", s.requireScope(auth.ScopeAdmin), func(c *gin.Context) { c.String(200, "admin ok") })
	sub, pub, adm := hsToken(t, claimsFor("s", "subscribe")), hsToken(t, claimsFor("p", "publish")), hsToken(t, claimsFor("a", "admin"))
	event := `{"type":"queue.status","data":{"pending":1,"active":0}}`
	tests := []struct {
		name, method, target, body string
		header                     http.Header
		status                     int
		code                       string
	}{
		{"healthz open", "GET", "/healthz", "", nil, 200, ""},
		{"readyz open", "GET", "/readyz", "", nil, 200, ""},
		{"stream without token", "GET", "/api/v1/stream", "", nil, 401, "unauthorized"},
		{"ws without token", "GET", "/api/v1/ws", "", nil, 401, "unauthorized"},
		{"history without token", "GET", "/api/v1/events", "", nil, 401, "unauthorized"},
		{"publish without token", "POST", "/api/v1/events", event, nil, 401, "unauthorized"},
		{"admin without token", "GET", "/test/admin", "", nil, 401, "unauthorized"},
		{"basic auth", "GET", "/api/v1/events", "", http.Header{"Authorization": {"Basic YTpi"}}, 401, "unauthorized"},
		{"empty bearer", "GET", "/api/v1/events", "", http.Header{"Authorization": {"Bearer "}}, 401, "unauthorized"},
		{"garbage token", "GET", "/api/v1/events", "", bearer("x.y.z"), 401, "unauthorized"},
		{"none token", "GET", "/api/v1/events", "", bearer(noneToken(t)), 401, "unauthorized"},
		{"history with subscribe", "GET", "/api/v1/events", "", bearer(sub), 200, ""},
		{"history via query", "GET", "/api/v1/events?access_token=" + sub, "", nil, 200, ""},
		{"history via cookie", "GET", "/api/v1/events", "", http.Header{"Cookie": {"eventgate_token=" + sub}}, 200, ""},
		{"header wins over query", "GET", "/api/v1/events?access_token=" + sub, "", bearer("bad"), 401, "unauthorized"},
		{"publish with subscribe", "POST", "/api/v1/events", event, bearer(sub), 403, "forbidden"},
		{"history with publish", "GET", "/api/v1/events", "", bearer(pub), 403, "forbidden"},
		{"stream with publish", "GET", "/api/v1/stream", "", bearer(pub), 403, "forbidden"},
		{"ws with admin", "GET", "/api/v1/ws", "", bearer(adm), 403, "forbidden"},
		{"admin with subscribe", "GET", "/test/admin", "", bearer(sub), 403, "forbidden"},
		{"admin with admin", "GET", "/test/admin", "", bearer(adm), 200, ""},
		{"publish with publish", "POST", "/api/v1/events", event, bearer(pub), 201, ""},
		{"publish via query", "POST", "/api/v1/events?access_token=" + pub, event, nil, 201, ""},
		{"publish via cookie refused", "POST", "/api/v1/events", event, http.Header{"Cookie": {"eventgate_token=" + pub}}, 401, "unauthorized"},
		{"exp as a string", "GET", "/api/v1/events", "", bearer(hsToken(t, jwt.MapClaims{"sub": "s", "scope": "subscribe",
			"exp": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)})), 401, "unauthorized"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := do(s, tt.method, tt.target, tt.body, tt.header)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code == "" {
				return
			}
			if code, msg := errorCode(t, rec); code != tt.code || msg == "" {
				t.Fatalf("error %s %q, want %s", code, msg, tt.code)
			}
			if ch := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
				t.Fatalf("WWW-Authenticate %q, want a Bearer challenge", ch)
			}
		})
	}
}

// TestTopicGrants: a jobs/* grant may not ask for notes, and never sees a note on an unfiltered
// SSE stream, WebSocket or history page.
func TestTopicGrants(t *testing.T) {
	t.Parallel()
	ts, log := startAuthHTTP(t)
	grant := jwt.MapClaims{"sub": "g", "scope": "subscribe", "exp": time.Now().Add(time.Hour).Unix(), "topics": []string{"jobs/*"}}
	tok := hsToken(t, grant)
	for _, target := range []string{"/api/v1/stream?topic=notes/*", "/api/v1/stream?topic=*", "/api/v1/ws?topic=notes/*", "/api/v1/events?topic=notes/*", "/api/v1/events?topic=jobs/*&topic=queue"} {
		req, _ := http.NewRequest("GET", ts.URL+target, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403", target, resp.StatusCode)
		}
	}
	// Narrower than the grant is fine.
	if resp, err := http.Get(ts.URL + "/api/v1/events?topic=jobs/" + jobID + "&access_token=" + tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("narrower topic: %v %v", resp, err)
	}

	sse := openAuthSSE(t, ts.URL+"/api/v1/stream?access_token="+tok)
	ws := dialWS(t, ts, "?access_token="+tok, nil)
	publishN(t, log, 2, "note.created", noteData)
	jobs := publishN(t, log, 1, "job.progress", progressData)
	if id := nextSSEID(t, sse); id != jobs[0].String() {
		t.Fatalf("sse: first event %s, want the job %s (notes are not granted)", id, jobs[0])
	}
	if m := readJSON(t, ws); m["id"] != jobs[0].String() {
		t.Fatalf("ws: got %v, want the job %s", m, jobs[0])
	}
	// WebSocket actions are bounded too: an ungranted topic gets an error frame and the
	// connection stays; a subscribe without topics means "everything granted".
	for _, a := range []map[string]any{
		{"action": "subscribe", "topics": []string{"notes/*"}},
		{"action": "subscribe", "topics": []string{"*"}, "since": "0"},
	} {
		if err := ws.WriteJSON(a); err != nil {
			t.Fatal(err)
		}
		if m := readJSON(t, ws); m["type"] != "error" || m["code"] != "forbidden" {
			t.Fatalf("%v: got %v, want error forbidden", a, m)
		}
	}
	for _, a := range []map[string]any{
		{"action": "unsubscribe", "topics": []string{"jobs/*"}},
		{"action": "subscribe", "since": "0"},
	} {
		if err := ws.WriteJSON(a); err != nil {
			t.Fatal(err)
		}
		if m := readJSON(t, ws); m["type"] != "subscribed" {
			t.Fatalf("%v: got %v, want subscribed", a, m)
		}
	}
	// The re-subscribe replays history since 0 within the grant: not the notes, and not the job,
	// which this connection had already (at most once per connection). Then live.
	more := publishN(t, log, 1, "note.created", noteData)
	jobs2 := publishN(t, log, 1, "job.progress", progressData)
	if m := readJSON(t, ws); m["id"] != jobs2[0].String() {
		t.Fatalf("ws after resubscribe: got %v, want %s (not the note %s)", m, jobs2[0], more[0])
	}
	// History: unfiltered means granted topics only.
	resp, err := http.Get(ts.URL + "/api/v1/events?after=0&access_token=" + tok)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page historyPage
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 2 || !bytes.Contains(page.Events[0], []byte(jobs[0].String())) || !bytes.Contains(page.Events[1], []byte(jobs2[0].String())) {
		t.Fatalf("history %s, want exactly the two job events", page.Events)
	}
}

// startAuthHTTP serves newAuthServer over loopback.
func startAuthHTTP(t *testing.T) (*httptest.Server, *store.Memory) {
	t.Helper()
	s, log := newAuthServer(t, Config{}, nil, nil)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, log
}

// sseReader reads an open SSE response line by line.
type sseReader struct {
	lines chan string
}

// openAuthSSE opens a stream at url (which carries its token) and requires 200.
func openAuthSSE(t *testing.T, url string) *sseReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		cancel()
		resp.Body.Close()
		t.Fatalf("stream status %d", resp.StatusCode)
	}
	r := &sseReader{lines: make(chan string, 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(r.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	return r
}

// nextSSEID returns the id of the next event frame.
func nextSSEID(t *testing.T, r *sseReader) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	id := ""
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatal("stream ended")
			}
			if v, found := strings.CutPrefix(line, "id: "); found {
				id = v
			}
			if strings.HasPrefix(line, "event: ") { // an id-only block (the join position) is no event
				return id
			}
		case <-timeout:
			t.Fatal("no event within 10s")
		}
	}
}

// TestSSEAuthExpired runs a stream on a fake clock: events flow until exp, then auth_expired ends
// the stream.
func TestSSEAuthExpired(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, log := newAuthServer(t, Config{Heartbeat: time.Hour}, nil, nil)
		tok := hsToken(t, jwt.MapClaims{"sub": "e", "scope": "subscribe", "exp": time.Now().Add(30 * time.Second).Unix()})
		req := httptest.NewRequest("GET", "/api/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := &lockedRecorder{rec: httptest.NewRecorder()}
		done := make(chan struct{})
		go func() { defer close(done); s.Handler().ServeHTTP(rec, req) }()
		synctest.Wait()
		ids := publishN(t, log, 1, "job.progress", progressData)
		time.Sleep(29 * time.Second)
		synctest.Wait()
		if b := rec.body(); !strings.Contains(b, "id: "+ids[0].String()) || strings.Contains(b, "auth_expired") {
			t.Fatalf("before exp: body %q, want the event and no auth_expired", b)
		}
		time.Sleep(2 * time.Second)
		<-done
		if b := rec.body(); !strings.HasSuffix(b, "event: auth_expired\ndata: {\"type\":\"auth_expired\"}\n\n") {
			t.Fatalf("after exp: body %q, want it to end with the auth_expired event", b)
		}
	})
}

func TestRedactedURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"/api/v1/stream", "/api/v1/stream"},
		{"/api/v1/stream?topic=jobs/*", "/api/v1/stream?topic=jobs/*"},
		{"/api/v1/stream?access_token=abc.def.ghi&topic=x", "/api/v1/stream?access_token=REDACTED&topic=x"},
		{"/s?topic=x&access_token=a&access_token=b", "/s?topic=x&access_token=REDACTED&access_token=REDACTED"},
		{"/s?x=1;access_token=secret", "/s?x=1;access_token=REDACTED"},
		{"/s?access%5Ftoken=secret", "/s?access%5Ftoken=REDACTED"},
		{"/s?id_token=secret&%zz=1", "/s?id_token=REDACTED&%zz=1"},
		{"/s?access_token", "/s?access_token"},
	}
	for _, tt := range tests {
		u, err := url.ParseRequestURI(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := redactedURL(u); got != tt.want {
			t.Errorf("redactedURL(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestTokensNeverLogged: at debug level, rejected and accepted requests carrying a token in the
// query never write the token to the log.
func TestTokensNeverLogged(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := store.NewMemory(100)
	hub := streams.NewHub(log, streams.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() { defer close(hubDone); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-hubDone })
	s, err := New(Config{Auth: mustVerifier(t, auth.Config{Secret: testSecret})},
		Deps{Hub: hub, Log: log, Receipts: store.NewMemoryReceipts(), Leases: store.NewMemoryLeases(), Store: log, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	good := hsToken(t, claimsFor("logged-subject", "subscribe"))
	expired := hsToken(t, jwt.MapClaims{"sub": "x", "exp": time.Now().Add(-time.Hour).Unix()})
	wrongScope := hsToken(t, claimsFor("y", "publish"))
	for _, tok := range []string{"not-a-token-SECRET", expired, wrongScope, good} {
		resp, err := http.Get(ts.URL + "/api/v1/events?access_token=" + url.QueryEscape(tok))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	sse := openAuthSSE(t, ts.URL+"/api/v1/stream?topic=queue&access_token="+good)
	_ = sse
	eventually(t, "connection log line", func() bool { return strings.Contains(buf.String(), "connection opened") })
	out := buf.String()
	if !strings.Contains(out, "request unauthorized") || !strings.Contains(out, "REDACTED") {
		t.Fatalf("log %s: want the debug lines with a redacted url", out)
	}
	for _, tok := range []string{"SECRET", expired, wrongScope, good, strings.Split(good, ".")[2]} {
		if strings.Contains(out, tok) {
			t.Fatalf("the log contains a token (%.16s…):\n%s", tok, out)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestIdempotencyPerSubject: the same Idempotency-Key of two subjects are two keys.
func TestIdempotencyPerSubject(t *testing.T) {
	t.Parallel()
	s, _ := newAuthServer(t, Config{}, nil, nil)
	body := `{"type":"queue.status","data":{"pending":1,"active":0}}`
	post := func(sub string) string {
		h := bearer(hsToken(t, claimsFor(sub, "publish")))
		h.Set("Idempotency-Key", "same-key")
		rec := do(s, "POST", "/api/v1/events", body, h)
		if rec.Code != 201 {
			t.Fatalf("%s: %d %s", sub, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	a1, a2, b := post("alice"), post("alice"), post("bob")
	if a1 != a2 || a1 == b {
		t.Fatalf("alice %s then %s, bob %s: want alice's repeat replayed and bob's key separate", a1, a2, b)
	}
}
