package main

// End-to-end tests of authentication (docs/api.md#authentication): token sources, each kind of bad
// token, scopes, topic grants on SSE, WebSocket and history, and token expiry on live connections
// followed by a lossless resume with a fresh token.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

// e2eSecret is the HS256 secret of the auth tests' servers.
const e2eSecret = "e2e-secret-0123456789abcdef-0123456789"

// authEnv is the environment of a server that verifies HS256 tokens signed with e2eSecret.
func authEnv(extra map[string]string) map[string]string {
	env := map[string]string{"EVENTGATE_JWT_SECRET": e2eSecret}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// signed signs claims with e2eSecret (HS256).
func signed(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(e2eSecret))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenFor is a valid token for sub with scope, expiring after ttl.
func tokenFor(t *testing.T, sub, scope string, ttl time.Duration) string {
	return signed(t, jwt.MapClaims{"sub": sub, "scope": scope, "exp": time.Now().Add(ttl).Unix()})
}

func bearerHeader(tok string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + tok}
}

// probe sends a GET and returns status, headers and body; a 200 (a stream) is closed at once
// without reading its body.
func probe(t *testing.T, u string, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, resp.Header, nil
	}
	var body []byte
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		body = append(body, buf[:n]...)
		if err != nil {
			break
		}
	}
	return resp.StatusCode, resp.Header, body
}

// expectUnauthorized requires a 401 in the error shape with a Bearer challenge.
func expectUnauthorized(t *testing.T, status int, h http.Header, raw []byte) {
	t.Helper()
	expectError(t, status, raw, http.StatusUnauthorized, "unauthorized")
	if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 with WWW-Authenticate %q, want a Bearer challenge", h.Get("WWW-Authenticate"))
	}
}

// dialWS opens a WebSocket to the server's /api/v1/ws with query; closed at cleanup.
func dialWS(t *testing.T, s *server, query string) *websocket.Conn {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial("ws://"+s.addr+"/api/v1/ws"+query, nil)
	if err != nil {
		t.Fatalf("dial /api/v1/ws%s: %v (%v)", query, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	if m := readFrame(t, conn); m["type"] != "subscribed" { // the first frame: where delivery starts
		t.Fatalf("first frame %v, want subscribed", m)
	}
	return conn
}

// readFrame reads one JSON frame within frameTimeout.
func readFrame(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(frameTimeout))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("websocket read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("frame %q: %v", msg, err)
	}
	return m
}

func TestE2EAuthTokenSources(t *testing.T) {
	t.Parallel()
	s := startServer(t, authEnv(map[string]string{"EVENTGATE_LOG_LEVEL": "debug"}))
	sub := tokenFor(t, "reader", "subscribe", time.Hour)
	pub := tokenFor(t, "writer", "publish", time.Hour)
	streams := map[string]*sseStream{
		"header": openStream(t, s.URL()+"/api/v1/stream", bearerHeader(sub)),
		"query":  openStream(t, s.URL()+"/api/v1/stream?access_token="+url.QueryEscape(sub), nil),
		"cookie": openStream(t, s.URL()+"/api/v1/stream", map[string]string{"Cookie": "eventgate_token=" + sub}),
	}
	status, ids, raw := publish(t, s.URL(), jobProgress(jobA, 1), bearerHeader(pub))
	if status != http.StatusCreated {
		t.Fatalf("publish with a publish token: %d %s", status, raw)
	}
	for name, st := range streams {
		if f := st.nextEvent(t, frameTimeout); f.ID != ids[0] {
			t.Fatalf("%s: got %v, want %s", name, f, ids[0])
		}
	}
	// The query works for publishing; the cookie does not (CSRF), and history takes all three.
	if status, _, raw := doRequest(t, http.MethodPost, s.URL()+"/api/v1/events?access_token="+pub, queueStatus(1, 0), nil); status != http.StatusCreated {
		t.Fatalf("publish with ?access_token: %d %s", status, raw)
	}
	status, h, raw := doRequest(t, http.MethodPost, s.URL()+"/api/v1/events", queueStatus(1, 0), map[string]string{"Cookie": "eventgate_token=" + pub})
	expectUnauthorized(t, status, h, raw)
	if status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/events?after=0", "", map[string]string{"Cookie": "eventgate_token=" + sub}); status != http.StatusOK {
		t.Fatalf("history with the cookie: %d %s", status, raw)
	}

	// `eventgate token` signs with EVENTGATE_JWT_SECRET; the server accepts its token.
	cmd := exec.Command(binPath, "token", "--sub", "cli", "--scope", "subscribe publish", "--ttl", "10m")
	cmd.Env = processEnv(map[string]string{"EVENTGATE_JWT_SECRET": e2eSecret})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eventgate token: %v", err)
	}
	cliTok := strings.TrimSpace(string(out))
	if status, _, raw := publish(t, s.URL(), queueStatus(2, 0), bearerHeader(cliTok)); status != http.StatusCreated {
		t.Fatalf("publish with the token of `eventgate token`: %d %s", status, raw)
	}

	// Open routes need no token.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if status, _, raw := doRequest(t, http.MethodGet, s.URL()+path, "", nil); status != http.StatusOK {
			t.Fatalf("GET %s without a token: %d %s", path, status, raw)
		}
	}
	// No token ever reaches the log, though it ran at debug level with tokens in query strings.
	for _, st := range streams {
		st.Close()
	}
	probe(t, s.URL()+"/api/v1/stream?access_token=not-valid-SECRET-VALUE", nil)
	eventually(t, "the connection log lines", func() bool { return strings.Count(s.stderr.String(), `"msg":"connection closed"`) >= 3 })
	for _, secret := range []string{sub, pub, "SECRET-VALUE", strings.Split(sub, ".")[2]} {
		if strings.Contains(s.stderr.String(), secret) {
			t.Fatalf("the server log contains a token (%.12s…)", secret)
		}
	}
}

// eventually polls cond for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		<-time.After(20 * time.Millisecond) // poll interval
	}
}

func TestE2EAuthRejections(t *testing.T) {
	t.Parallel()
	s := startServer(t, authEnv(map[string]string{"EVENTGATE_JWT_AUDIENCE": "eventgate", "EVENTGATE_JWT_ISSUER": "https://id.test"}))
	now := time.Now()
	valid := jwt.MapClaims{"sub": "u", "scope": "subscribe publish", "exp": now.Add(time.Hour).Unix(), "aud": "eventgate", "iss": "https://id.test"}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range valid {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, valid).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs384, _ := jwt.NewWithClaims(jwt.SigningMethodHS384, valid).SignedString([]byte(e2eSecret))
	eddsa, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, valid).SignedString(edKey)
	otherKey, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, valid).SignedString([]byte("another-secret-0123456789abcdef-xyz"))
	tokens := map[string]string{
		"missing":        "",
		"garbage":        "not.a.token",
		"none":           none,
		"switched HS384": hs384,
		"switched EdDSA": eddsa,
		"bad signature":  otherKey,
		"missing exp":    signed(t, with("exp", nil)),
		"past exp":       signed(t, with("exp", now.Add(-time.Minute).Unix())),
		"future nbf":     signed(t, with("nbf", now.Add(time.Hour).Unix())),
		"wrong aud":      signed(t, with("aud", "someone-else")),
		"wrong iss":      signed(t, with("iss", "https://evil.test")),
		"missing sub":    signed(t, with("sub", nil)),
	}
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var h map[string]string
			if tok != "" {
				h = bearerHeader(tok)
			}
			for _, path := range []string{"/api/v1/stream", "/api/v1/ws", "/api/v1/events"} {
				status, hdr, raw := probe(t, s.URL()+path, h)
				expectUnauthorized(t, status, hdr, raw)
			}
			status, hdr, raw := doRequest(t, http.MethodPost, s.URL()+"/api/v1/events", queueStatus(1, 0), h)
			expectUnauthorized(t, status, hdr, raw)
		})
	}
	t.Run("scopes", func(t *testing.T) {
		t.Parallel()
		subOnly, pubOnly := signed(t, with("scope", "subscribe")), signed(t, with("scope", "publish"))
		status, _, raw := doRequest(t, http.MethodPost, s.URL()+"/api/v1/events", queueStatus(1, 0), bearerHeader(subOnly))
		expectError(t, status, raw, http.StatusForbidden, "forbidden")
		for _, path := range []string{"/api/v1/stream", "/api/v1/ws", "/api/v1/events"} {
			status, _, raw := probe(t, s.URL()+path, bearerHeader(pubOnly))
			expectError(t, status, raw, http.StatusForbidden, "forbidden")
		}
		if status, _, raw := probe(t, s.URL()+"/api/v1/stream", bearerHeader(signed(t, valid))); status != http.StatusOK {
			t.Fatalf("a valid token: %d %s", status, raw)
		}
	})
}

// TestE2EAuthPublicKey: EVENTGATE_JWT_PUBLIC_KEY_FILE pins the key's algorithm (Ed25519 → EdDSA);
// an HS256 token keyed with the public key's PEM (algorithm confusion) is refused.
func TestE2EAuthPublicKey(t *testing.T) {
	t.Parallel()
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keyFile := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(keyFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, map[string]string{"EVENTGATE_JWT_PUBLIC_KEY_FILE": keyFile})
	claims := jwt.MapClaims{"sub": "k", "scope": "subscribe", "exp": time.Now().Add(time.Hour).Unix()}
	good, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(priv)
	confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pemBytes)
	if status, _, raw := probe(t, s.URL()+"/api/v1/events", bearerHeader(good)); status != http.StatusOK {
		t.Fatalf("EdDSA token: %d %s", status, raw)
	}
	status, h, raw := probe(t, s.URL()+"/api/v1/events", bearerHeader(confused))
	expectUnauthorized(t, status, h, raw)
}

// TestE2EAuthStartup: without a key the server refuses to start with one line; with
// EVENTGATE_AUTH=none it starts and warns; a short secret is refused.
func TestE2EAuthStartup(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no key", nil, "EVENTGATE_AUTH=none"},
		{"short secret", map[string]string{"EVENTGATE_JWT_SECRET": "too-short"}, "EVENTGATE_JWT_SECRET"},
		{"missing key file", map[string]string{"EVENTGATE_JWT_PUBLIC_KEY_FILE": "/nonexistent/key.pem"}, "EVENTGATE_JWT_PUBLIC_KEY_FILE"},
		{"two keys", map[string]string{"EVENTGATE_JWT_SECRET": e2eSecret, "EVENTGATE_JWT_SECRET_FILE": "/x"}, "only one"},
		{"bad rate", map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_CONNECT_RATE": "10/s"}, "EVENTGATE_CONNECT_RATE"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			env := map[string]string{"EVENTGATE_ADDR": "127.0.0.1:0"}
			for k, v := range tc.env {
				env[k] = v
			}
			cmd := exec.CommandContext(ctx, binPath)
			cmd.Env = processEnv(env)
			out, _ := cmd.CombinedOutput()
			line := strings.TrimRight(string(out), "\n")
			if cmd.ProcessState.ExitCode() != 2 || strings.Contains(line, "\n") || !strings.Contains(line, tc.want) {
				t.Fatalf("exit %d, output %q: want exit 2 and one line mentioning %q", cmd.ProcessState.ExitCode(), line, tc.want)
			}
			if strings.Contains(line, "too-short") {
				t.Fatalf("the error line shows the secret: %q", line)
			}
		})
	}
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none"})
	if !strings.Contains(s.stderr.String(), "EVENTGATE_AUTH=none") || !strings.Contains(s.stderr.String(), `"level":"WARN"`) {
		t.Fatalf("no warning about EVENTGATE_AUTH=none in:\n%s", s.stderr.String())
	}
}

func TestE2EAuthTopicGrants(t *testing.T) {
	t.Parallel()
	s := startServer(t, authEnv(nil))
	jobs := signed(t, jwt.MapClaims{"sub": "jobs-only", "scope": "subscribe", "topics": []string{"jobs/*"}, "exp": time.Now().Add(time.Hour).Unix()})
	pub := tokenFor(t, "producer", "publish", time.Hour)
	q := "access_token=" + url.QueryEscape(jobs)
	for _, path := range []string{"/api/v1/stream?topic=notes/*&", "/api/v1/ws?topic=notes/*&", "/api/v1/events?topic=notes/*&", "/api/v1/stream?topic=*&"} {
		status, _, raw := probe(t, s.URL()+path+q, nil)
		expectError(t, status, raw, http.StatusForbidden, "forbidden")
	}
	st := openStream(t, s.URL()+"/api/v1/stream?"+q, nil)
	ws := dialWS(t, s, "?"+q)
	// A subscribe action outside the grant gets an error frame; the connection stays.
	if err := ws.WriteJSON(map[string]any{"action": "subscribe", "topics": []string{"notes/*"}}); err != nil {
		t.Fatal(err)
	}
	if m := readFrame(t, ws); m["type"] != "error" || m["code"] != "forbidden" {
		t.Fatalf("subscribe notes/*: got %v, want an error frame with code forbidden", m)
	}
	note := newUUID()
	mustPublishAs(t, s, pub, noteCreated(note, "secret note"), 1)
	ids := mustPublishAs(t, s, pub, batch(jobProgress(jobA, 5), noteCreated(note, "another"), jobProgress(jobA, 6)), 3)
	want := []string{ids[0], ids[2]}
	requireIDs(t, "sse", frameIDs(st.events(t, 2, frameTimeout)), want)
	for _, id := range want {
		if m := readFrame(t, ws); m["id"] != id {
			t.Fatalf("websocket got %v, want %s (notes are not granted)", m, id)
		}
	}
	status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/events?after=0&"+q, "", nil)
	var page historyPage
	if status != http.StatusOK || json.Unmarshal(raw, &page) != nil {
		t.Fatalf("history: %d %s", status, raw)
	}
	requireIDs(t, "history", historyIDs(t, page), want)
}

// mustPublishAs publishes with tok and requires 201 with n ids.
func mustPublishAs(t *testing.T, s *server, tok, body string, n int) []string {
	t.Helper()
	status, ids, raw := publish(t, s.URL(), body, bearerHeader(tok))
	if status != http.StatusCreated || len(ids) != n {
		t.Fatalf("publish: %d %s, want 201 with %d ids", status, raw, n)
	}
	return ids
}

// TestE2EAuthExpiry: a 2-second token ends a live SSE stream with auth_expired and a WebSocket
// with 1008 "token expired"; a reconnect with a fresh token and the last id loses nothing.
func TestE2EAuthExpiry(t *testing.T) {
	t.Parallel()
	s := startServer(t, authEnv(nil))
	pub := tokenFor(t, "producer", "publish", time.Hour)
	t.Run("sse", func(t *testing.T) {
		t.Parallel()
		st := openStream(t, s.URL()+"/api/v1/stream?topic=jobs/"+jobA, bearerHeader(tokenFor(t, "short", "subscribe", 3*time.Second)))
		seen := mustPublishAs(t, s, pub, jobProgress(jobA, 1), 1)
		if f := st.nextEvent(t, frameTimeout); f.ID != seen[0] {
			t.Fatalf("got %v, want %s", f, seen[0])
		}
		frames := st.expectEnd(t, 10*time.Second)
		if len(frames) == 0 || frames[len(frames)-1].Event != "auth_expired" || st.err != nil {
			t.Fatalf("frames before the end %v (err %v), want the last to be auth_expired", frames, st.err)
		}
		var d struct{ Type string }
		if json.Unmarshal([]byte(frames[len(frames)-1].Data), &d) != nil || d.Type != "auth_expired" {
			t.Fatalf("auth_expired data %q", frames[len(frames)-1].Data)
		}
		missed := mustPublishAs(t, s, pub, progressBatch(jobA, 3), 3)
		again := openStream(t, s.URL()+"/api/v1/stream?topic=jobs/"+jobA, map[string]string{
			"Authorization": "Bearer " + tokenFor(t, "short", "subscribe", time.Hour), "Last-Event-ID": seen[0]})
		requireIDs(t, "after the reconnect", frameIDs(again.events(t, 3, frameTimeout)), missed)
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		note := newUUID()
		topic := "notes/" + note
		ws := dialWS(t, s, "?topic="+topic+"&access_token="+tokenFor(t, "short", "subscribe", 3*time.Second))
		seen := mustPublishAs(t, s, pub, noteCreated(note, "a"), 1)
		if m := readFrame(t, ws); m["id"] != seen[0] {
			t.Fatalf("got %v, want %s", m, seen[0])
		}
		_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		if !asCloseError(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != "token expired" {
			t.Fatalf("after expiry: %v, want close 1008 \"token expired\"", err)
		}
		missed := mustPublishAs(t, s, pub, batch(noteCreated(note, "b"), noteCreated(note, "c")), 2)
		again := dialWS(t, s, "?topic="+topic+"&since="+seen[0]+"&access_token="+tokenFor(t, "short", "subscribe", time.Hour))
		for _, id := range missed {
			if m := readFrame(t, again); m["id"] != id {
				t.Fatalf("after the reconnect got %v, want %s", m, id)
			}
		}
	})
}

func asCloseError(err error, target **websocket.CloseError) bool {
	ce, ok := err.(*websocket.CloseError)
	if ok {
		*target = ce
	}
	return ok
}
