package handlers

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/eventgate/eventgate/auth"
)

// adminToken is an admin token with the given topics claim (nil: none, every topic).
func adminToken(t *testing.T, topics ...string) http.Header {
	claims := jwt.MapClaims{"sub": "adm", "scope": "admin", "exp": time.Now().Add(time.Hour).Unix()}
	if topics != nil {
		claims["topics"] = topics
	}
	return bearer(hsToken(t, claims))
}

// mustCreateHook registers a loopback hook with topics as header and returns its id.
func mustCreateHook(t *testing.T, s *Server, h http.Header, topics ...string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"url": "http://127.0.0.1:9/in", "topics": topics})
	rec := do(s, "POST", "/api/v1/webhooks", string(body), h)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create %q: %d %s", topics, rec.Code, rec.Body)
	}
	var w webhookJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &w); err != nil {
		t.Fatal(err)
	}
	return w.ID
}

func listHookIDs(t *testing.T, s *Server, h http.Header) []string {
	t.Helper()
	rec := do(s, "GET", "/api/v1/webhooks", "", h)
	var out struct{ Webhooks []webhookJSON }
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	ids := make([]string, len(out.Webhooks))
	for i, w := range out.Webhooks {
		ids[i] = w.ID
	}
	return ids
}

// TestWebhookGrantRegister: an admin token with a topics claim registers only hooks whose every
// topic pattern its grant covers; a hook without topics means "*". Bad patterns stay 400.
func TestWebhookGrantRegister(t *testing.T) {
	t.Parallel()
	s := newWebhookServer(t, Config{Auth: mustVerifier(t, auth.Config{Secret: testSecret})}, true)
	job := "jobs/" + jobID
	tests := []struct {
		grant  []string
		topics []string
		status int
		code   string
	}{
		{[]string{job}, nil, 403, "forbidden"},
		{[]string{job}, []string{"*"}, 403, "forbidden"},
		{[]string{job}, []string{"jobs/*"}, 403, "forbidden"},
		{[]string{job}, []string{job, "notes/*"}, 403, "forbidden"},
		{[]string{job}, []string{"JOBS"}, 400, "invalid_filter"},
		{[]string{job}, []string{job}, 201, ""},
		{[]string{"jobs/*"}, []string{"jobs/*"}, 201, ""},
		{[]string{"jobs/*"}, []string{job, "jobs/*"}, 201, ""},
		{[]string{"jobs/*"}, []string{"queue"}, 403, "forbidden"},
		{[]string{"jobs/*", "queue"}, []string{"queue", job}, 201, ""},
		{[]string{"*"}, nil, 201, ""},
		{nil, nil, 201, ""},
	}
	for _, tt := range tests {
		body, _ := json.Marshal(map[string]any{"url": "http://127.0.0.1:9/in", "topics": tt.topics})
		rec := do(s, "POST", "/api/v1/webhooks", string(body), adminToken(t, tt.grant...))
		if rec.Code != tt.status {
			t.Errorf("grant %q registers %q: %d %s, want %d", tt.grant, tt.topics, rec.Code, rec.Body, tt.status)
			continue
		}
		if tt.code != "" {
			if code, _ := errorCode(t, rec); code != tt.code {
				t.Errorf("grant %q registers %q: code %s, want %s", tt.grant, tt.topics, code, tt.code)
			}
		}
	}
}

// TestWebhookGrantManage: a restricted admin token lists only the hooks inside its grant, and a
// hook outside it is 404 for get, deliveries, patch and delete, exactly as an absent one, and is
// left untouched.
func TestWebhookGrantManage(t *testing.T) {
	t.Parallel()
	s := newWebhookServer(t, Config{Auth: mustVerifier(t, auth.Config{Secret: testSecret})}, true)
	job := "jobs/" + jobID
	root, jobsAdm, oneJob := adminToken(t), adminToken(t, "jobs/*"), adminToken(t, job)
	all := mustCreateHook(t, s, root)
	notes := mustCreateHook(t, s, root, "notes/*")
	jobs := mustCreateHook(t, s, root, "jobs/*")
	mixed := mustCreateHook(t, s, root, job, "queue")
	mine := mustCreateHook(t, s, oneJob, job)
	viaJobs := mustCreateHook(t, s, jobsAdm, "jobs/*", job)

	for _, tt := range []struct {
		name string
		h    http.Header
		want []string
	}{
		{"root", root, []string{all, notes, jobs, mixed, mine, viaJobs}},
		{"jobs/*", jobsAdm, []string{jobs, mine, viaJobs}},
		{"one job", oneJob, []string{mine}},
	} {
		if got := listHookIDs(t, s, tt.h); !slices.Equal(got, tt.want) {
			t.Errorf("%s lists %q, want %q", tt.name, got, tt.want)
		}
	}

	for _, id := range []string{all, notes, jobs, mixed, viaJobs} {
		for _, r := range []struct{ method, target, body string }{
			{"GET", "/api/v1/webhooks/" + id, ""},
			{"GET", "/api/v1/webhooks/" + id + "/deliveries", ""},
			{"PATCH", "/api/v1/webhooks/" + id, `{"enabled":false}`},
			{"DELETE", "/api/v1/webhooks/" + id, ""},
		} {
			rec := do(s, r.method, r.target, r.body, oneJob)
			if code, msg := errorCode(t, rec); rec.Code != 404 || code != "not_found" || !strings.Contains(msg, id) {
				t.Errorf("one-job admin %s %s: %d %s %q, want 404 not_found", r.method, r.target, rec.Code, code, msg)
			}
		}
		// Untouched: still there and enabled for the unrestricted admin.
		if rec := do(s, "GET", "/api/v1/webhooks/"+id, "", root); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"enabled":true`) {
			t.Errorf("after the refused calls %s is %d %s, want 200 enabled", id, rec.Code, rec.Body)
		}
	}
	// Inside the grant everything works.
	for _, r := range []struct {
		method, target, body string
		status               int
	}{
		{"GET", "/api/v1/webhooks/" + mine, "", 200},
		{"GET", "/api/v1/webhooks/" + mine + "/deliveries", "", 200},
		{"PATCH", "/api/v1/webhooks/" + mine, `{"enabled":false}`, 200},
		{"DELETE", "/api/v1/webhooks/" + mine, "", 204},
		{"GET", "/api/v1/webhooks/" + jobs, "", 200}, // jobs/* is inside the jobs/* grant
	} {
		h := oneJob
		if r.target == "/api/v1/webhooks/"+jobs {
			h = jobsAdm
		}
		if rec := do(s, r.method, r.target, r.body, h); rec.Code != r.status {
			t.Errorf("%s %s: %d %s, want %d", r.method, r.target, rec.Code, rec.Body, r.status)
		}
	}
}
