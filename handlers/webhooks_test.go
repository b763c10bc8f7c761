package handlers

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/webhooks"
)

// newWebhookServer returns a server with the webhook routes; allow lists loopback when set.
func newWebhookServer(t *testing.T, cfg Config, allow bool) *Server {
	t.Helper()
	log := store.NewMemory(1000)
	hub := streams.NewHub(log, streams.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	opts := webhooks.PolicyOptions{Resolver: noDNS{}}
	if allow {
		opts.AllowCIDRs, opts.AllowPorts = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, []uint16{}
	}
	svc := webhooks.NewService(store.NewMemoryWebhooks(), log, webhooks.NewPolicy(opts), nil)
	s, err := New(cfg, Deps{Hub: hub, Log: log, Receipts: store.NewMemoryReceipts(), Leases: store.NewMemoryLeases(),
		Jobs: store.NewMemoryJobs(time.Hour), Store: log, Webhooks: svc})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// noDNS resolves nothing: the tests use IP literals only, and no query leaves the process.
type noDNS struct{}

func (noDNS) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return nil, &netErr{}
}

type netErr struct{}

func (*netErr) Error() string { return "no DNS in tests" }

func TestWebhookRegistrationRefused(t *testing.T) {
	t.Parallel()
	s := newWebhookServer(t, Config{}, false)
	tests := []struct{ body, code, inMessage string }{
		{`{"url":"http://127.0.0.1:8080/"}`, "invalid_webhook_url", "127.0.0.1"},
		{`{"url":"http://127.1/"}`, "invalid_webhook_url", "127.0.0.1"},
		{`{"url":"http://2130706433/"}`, "invalid_webhook_url", "127.0.0.1"},
		{`{"url":"http://0x7f000001/"}`, "invalid_webhook_url", "127.0.0.1"},
		{`{"url":"http://[::ffff:127.0.0.1]/"}`, "invalid_webhook_url", "::ffff:127.0.0.1"},
		{`{"url":"http://[::1]/"}`, "invalid_webhook_url", "::1"},
		{`{"url":"http://0.0.0.0/"}`, "invalid_webhook_url", "0.0.0.0"},
		{`{"url":"http://169.254.169.254/latest"}`, "invalid_webhook_url", "169.254.169.254"},
		{`{"url":"http://localhost/"}`, "invalid_webhook_url", "127.0.0.1"},
		{`{"url":"file:///etc/passwd"}`, "invalid_webhook_url", "scheme"},
		{`{"url":"gopher://93.184.215.14/"}`, "invalid_webhook_url", "scheme"},
		{`{"url":"https://u:p@93.184.215.14/"}`, "invalid_webhook_url", "user name"},
		{`{"url":"https://93.184.215.14:6379/"}`, "invalid_webhook_url", "port 6379"},
		{`{"url":"https://93.184.215.14/","topics":["JOBS"]}`, "invalid_filter", "JOBS"},
		{`{"url":"https://93.184.215.14/","types":["job.exploded"]}`, "invalid_filter", "job.exploded"},
		{`{"url":"https://93.184.215.14/","description":"` + strings.Repeat("x", 501) + `"}`, "invalid_webhook", "description"},
		{`{"url":"https://93.184.215.14/","secret":"mine"}`, "bad_request", "secret"},
		{`{"url":`, "bad_request", ""},
		{`{}`, "invalid_webhook_url", "url"},
	}
	for _, tt := range tests {
		rec := do(s, "POST", "/api/v1/webhooks", tt.body, nil)
		code, msg := errorCode(t, rec)
		if rec.Code != http.StatusBadRequest || code != tt.code || !strings.Contains(msg, tt.inMessage) {
			t.Errorf("POST %.60s: %d %s %q; want 400 %s mentioning %q", tt.body, rec.Code, code, msg, tt.code, tt.inMessage)
		}
	}
	if rec := do(s, "GET", "/api/v1/webhooks", "", nil); !strings.Contains(rec.Body.String(), `"webhooks":[]`) {
		t.Fatalf("after refusals the list is %s, want empty", rec.Body.String())
	}
}

func TestWebhookLifecycle(t *testing.T) {
	t.Parallel()
	s := newWebhookServer(t, Config{}, true)
	rec := do(s, "POST", "/api/v1/webhooks", `{"url":"http://127.0.0.1:9/in","topics":["jobs/*"],"types":["job.progress"],"description":"ci"}`, nil)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body.String())
	}
	var created webhookJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &created); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(created.Secret, "whsec_") || created.ID == "" || !created.Enabled || created.URL != "http://127.0.0.1:9/in" ||
		rec.Header().Get("Location") != "/api/v1/webhooks/"+created.ID {
		t.Fatalf("created %+v (Location %q)", created, rec.Header().Get("Location"))
	}
	path := "/api/v1/webhooks/" + created.ID
	steps := []struct {
		method, target, body string
		status               int
		has                  []string
		hasNot               []string
	}{
		{"GET", "/api/v1/webhooks", "", 200, []string{created.ID, `"topics":["jobs/*"]`, `"types":["job.progress"]`, `"description":"ci"`}, []string{"whsec_", "secret"}},
		{"GET", path, "", 200, []string{`"enabled":true`}, []string{"whsec_"}},
		{"PATCH", path, `{"enabled":false}`, 200, []string{`"enabled":false`, `"disabled_reason":"disabled through the API"`}, nil},
		{"PATCH", path, `{}`, 400, []string{"bad_request", "enabled"}, nil},
		{"PATCH", path, `{"enabled":true,"url":"http://x/"}`, 400, []string{"bad_request"}, nil},
		{"PATCH", path, `{"enabled":true}`, 200, []string{`"enabled":true`}, []string{"disabled_reason"}},
		{"GET", path + "/deliveries", "", 200, []string{`"deliveries":[]`}, nil},
		{"DELETE", path, "", 204, nil, nil},
		{"GET", path, "", 404, []string{"not_found"}, nil},
		{"DELETE", path, "", 404, []string{"not_found"}, nil},
		{"GET", path + "/deliveries", "", 404, []string{"not_found"}, nil},
		{"PATCH", path, `{"enabled":true}`, 404, []string{"not_found"}, nil},
		{"GET", "/api/v1/webhooks/nope", "", 404, []string{"not_found"}, nil},
		{"GET", "/api/v1/webhooks/wh_{x}", "", 404, []string{"not_found"}, nil},
	}
	for _, st := range steps {
		rec := do(s, st.method, st.target, st.body, nil)
		body := rec.Body.String()
		if rec.Code != st.status {
			t.Fatalf("%s %s: %d %s, want %d", st.method, st.target, rec.Code, body, st.status)
		}
		for _, h := range st.has {
			if !strings.Contains(body, h) {
				t.Fatalf("%s %s: body %s lacks %s", st.method, st.target, body, h)
			}
		}
		for _, h := range st.hasNot {
			if strings.Contains(body, h) {
				t.Fatalf("%s %s: body %s contains %s", st.method, st.target, body, h)
			}
		}
	}
}

func TestWebhooksNeedAdmin(t *testing.T) {
	t.Parallel()
	secret := []byte(strings.Repeat("k", auth.MinSecretBytes))
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	s := newWebhookServer(t, Config{Auth: v}, true)
	token := func(scope string) http.Header {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "t", "scope": scope,
			"exp": time.Now().Add(time.Hour).Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return http.Header{"Authorization": {"Bearer " + tok}}
	}
	for _, tt := range []struct {
		header http.Header
		status int
	}{
		{nil, 401},
		{token("subscribe publish"), 403},
		{token("admin"), 200},
	} {
		if rec := do(s, "GET", "/api/v1/webhooks", "", tt.header); rec.Code != tt.status {
			t.Errorf("GET /api/v1/webhooks with %v: %d, want %d", tt.header, rec.Code, tt.status)
		}
	}
	if rec := do(s, "POST", "/api/v1/webhooks", `{"url":"http://127.0.0.1:9/"}`, token("publish")); rec.Code != 403 {
		t.Errorf("POST without admin: %d, want 403", rec.Code)
	}
}
