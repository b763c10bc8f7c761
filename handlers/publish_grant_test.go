package handlers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestPublishGrant: a publish token with a topics claim publishes only inside it; a batch with one
// event outside is refused whole (403 naming that event's index) and appends nothing.
func TestPublishGrant(t *testing.T) {
	t.Parallel()
	const otherJob = "0b1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"
	job := `{"type":"job.progress","data":{"job_id":"` + jobID + `","percent":1}}`
	other := `{"type":"job.progress","data":{"job_id":"` + otherJob + `","percent":1}}`
	note := `{"type":"note.created","data":{"note_id":"` + jobID + `","title":"t"}}`
	queue := `{"type":"queue.status","data":{"pending":1,"active":0}}`
	token := func(topics any) string {
		claims := jwt.MapClaims{"sub": "p", "scope": "publish", "exp": time.Now().Add(time.Hour).Unix()}
		if topics != nil {
			claims["topics"] = topics
		}
		return hsToken(t, claims)
	}
	tests := []struct {
		name   string
		topics any // nil: no topics claim
		body   string
		status int
		inMsg  string
	}{
		{"exact grant, own job", []string{"jobs/" + jobID}, job, 201, ""},
		{"exact grant, other job", []string{"jobs/" + jobID}, other, 403, "event[0]"},
		{"wildcard grant, any job", []string{"jobs/*"}, "[" + job + "," + other + "]", 201, ""},
		{"wildcard grant, a note in the batch", []string{"jobs/*"}, "[" + job + "," + job + "," + note + "," + queue + "]", 403, "event[2]"},
		{"wildcard grant, queue", []string{"jobs/*"}, queue, 403, `"queue"`},
		{"two grants", []string{"jobs/*", "queue"}, "[" + queue + "," + job + "]", 201, ""},
		{"star grant", []string{"*"}, "[" + note + "," + queue + "]", 201, ""},
		{"no topics claim", nil, "[" + note + "," + queue + "," + other + "]", 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, log := newAuthServer(t, Config{}, nil, nil)
			// An Idempotency-Key must not be spent by a refused batch.
			h := bearer(token(tt.topics))
			h.Set("Idempotency-Key", "k-"+strings.ReplaceAll(tt.name, " ", "_"))
			rec := do(s, "POST", "/api/v1/events", tt.body, h)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 201 {
				return
			}
			if code, msg := errorCode(t, rec); code != "forbidden" || !strings.Contains(msg, tt.inMsg) {
				t.Fatalf("error %s %q, want forbidden naming %s", code, msg, tt.inMsg)
			}
			if b, _ := log.Bounds(context.Background()); !b.Last.IsZero() {
				t.Fatalf("the log holds events up to %v after a refused batch", b.Last)
			}
			// The same key with a token that may publish there is not blocked by the refusal.
			h = bearer(token(nil))
			h.Set("Idempotency-Key", "k-"+strings.ReplaceAll(tt.name, " ", "_"))
			if rec := do(s, "POST", "/api/v1/events", tt.body, h); rec.Code != 201 || rec.Header().Get("Idempotent-Replayed") != "" {
				t.Fatalf("after the refusal, the same key: %d %s (replayed %q)", rec.Code, rec.Body, rec.Header().Get("Idempotent-Replayed"))
			}
		})
	}
}
