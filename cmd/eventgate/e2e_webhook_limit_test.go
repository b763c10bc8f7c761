package main

import (
	"net/http"
	"testing"
)

// TestE2EMaxWebhooksTwoInstances: EVENTGATE_MAX_WEBHOOKS is counted in Redis, so two instances
// together never hold more endpoints than the cap, whichever instance is asked.
func TestE2EMaxWebhooksTwoInstances(t *testing.T) {
	t.Parallel()
	_, _, env := redisSetup(t, hookEnv(map[string]string{"EVENTGATE_MAX_WEBHOOKS": "2"}))
	a, b := startServer(t, env), startServer(t, env)
	const body = `{"url":"http://127.0.0.1:9/hook"}`
	first := registerHook(t, a.URL(), body)
	registerHook(t, b.URL(), body)
	for _, s := range []*server{a, b} {
		status, _, raw := doRequest(t, http.MethodPost, s.URL()+"/api/v1/webhooks", body, nil)
		expectError(t, status, raw, http.StatusConflict, "too_many_webhooks")
	}
	if status, _, raw := doRequest(t, http.MethodDelete, b.URL()+"/api/v1/webhooks/"+first.ID, "", nil); status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", status, raw)
	}
	registerHook(t, a.URL(), body) // room again
}
