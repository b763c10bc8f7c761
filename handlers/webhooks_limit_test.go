package handlers

import (
	"net/http"
	"strings"
	"testing"
)

// TestWebhookLimit: registrations beyond the cap (EVENTGATE_MAX_WEBHOOKS, default 100) get
// 409 too_many_webhooks and store nothing; deleting one makes room again.
func TestWebhookLimit(t *testing.T) {
	t.Parallel()
	s := newWebhookServer(t, Config{}, true)
	const body = `{"url":"http://127.0.0.1:9/in"}`
	var first string
	for i := range 100 {
		id := mustCreateHook(t, s, nil)
		if i == 0 {
			first = id
		}
	}
	rec := do(s, "POST", "/api/v1/webhooks", body, nil)
	if code, msg := errorCode(t, rec); rec.Code != http.StatusConflict || code != "too_many_webhooks" || !strings.Contains(msg, "100") {
		t.Fatalf("101st registration: %d %s %q, want 409 too_many_webhooks naming the cap", rec.Code, code, msg)
	}
	if n := len(listHookIDs(t, s, nil)); n != 100 {
		t.Fatalf("%d hooks listed after the refusal, want 100", n)
	}
	if rec := do(s, "DELETE", "/api/v1/webhooks/"+first, "", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	mustCreateHook(t, s, nil)
}
