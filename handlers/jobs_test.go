package handlers

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/eventgate/eventgate/jobs"
)

func TestJobRoutes(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	ctx := context.Background()
	st := jobs.State{JobID: jobID, JobType: "resize", Status: jobs.Running, Percent: 40, LastEventID: "5-0"}
	if ok, err := s.jobs.SwapJob(ctx, "", st); !ok || err != nil {
		t.Fatal(ok, err)
	}
	tests := []struct {
		target string
		status int
		code   string
	}{
		{"/api/v1/jobs/" + jobID, 200, ""},
		{"/api/v1/jobs/6F1C2A9E-1D4B-4C59-9D1E-6A2B3C4D5E6F", 200, ""},
		{"/api/v1/jobs/00000000-0000-0000-0000-000000000000", 404, "not_found"},
		{"/api/v1/jobs/nope", 400, "bad_request"},
		{"/api/v1/queue", 404, "not_found"},
	}
	for _, tt := range tests {
		rec := do(s, "GET", tt.target, "", nil)
		if rec.Code != tt.status {
			t.Fatalf("%s: %d %s", tt.target, rec.Code, rec.Body)
		}
		if tt.code != "" {
			if code, _ := errorCode(t, rec); code != tt.code {
				t.Fatalf("%s: code %s", tt.target, code)
			}
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"job_id", "job_type", "status", "percent", "message", "error", "updated_at", "last_event_id"} {
			if _, ok := got[k]; !ok {
				t.Fatalf("%s: no %q in %s", tt.target, k, rec.Body)
			}
		}
	}
	if ok, _ := s.jobs.SwapQueue(ctx, "", jobs.QueueState{Pending: 2, LastEventID: "6-0"}); !ok {
		t.Fatal("queue swap")
	}
	if rec := do(s, "GET", "/api/v1/queue", "", nil); rec.Code != 200 {
		t.Fatalf("queue: %d %s", rec.Code, rec.Body)
	}
}
