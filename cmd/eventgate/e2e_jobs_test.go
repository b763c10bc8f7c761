package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/store/redistest"
)

// jobState polls GET /api/v1/jobs/{id} until cond holds.
func waitJob(t *testing.T, base, id string, cond func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _, raw := doRequest(t, http.MethodGet, base+"/api/v1/jobs/"+id, "", nil)
		var st map[string]any
		if status == http.StatusOK && json.Unmarshal(raw, &st) == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: last answer %d %s", id, status, raw)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// TestE2EJobState folds published and directly XADDed events into job state, which outlives the
// ring and a restart.
func TestE2EJobState(t *testing.T) {
	t.Parallel()
	client, url, prefix := redistest.Client(t)
	key := prefix + "events"
	env := map[string]string{"EVENTGATE_REDIS_URL": url, "EVENTGATE_STREAM_KEY": key, "EVENTGATE_RETENTION": "10"}
	srv := startServer(t, env)
	job := newUUID()

	status, _, raw := doRequest(t, http.MethodGet, srv.URL()+"/api/v1/jobs/"+job, "", nil)
	expectError(t, status, raw, http.StatusNotFound, "not_found")

	mustPublish(t, srv.URL(), batch(jobQueued(job), jobProgress(job, 40)), 2)
	waitJob(t, srv.URL(), job, func(st map[string]any) bool { return st["status"] == "running" && st["percent"] == 40.0 })

	// A producer's direct XADD counts too.
	direct := `{"type":"job.completed","data":{"job_id":"` + job + `","job_type":"resize"}}`
	id, err := client.XAdd(context.Background(), &redis.XAddArgs{Stream: key, Values: []any{"event", direct}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	st := waitJob(t, srv.URL(), job, func(st map[string]any) bool { return st["status"] == "completed" })
	if st["percent"] != 100.0 || st["job_type"] != "resize" || st["last_event_id"] != id {
		t.Fatalf("state %v, want completed at 100%% with last_event_id %s", st, id)
	}

	// Trim the job's events out of the ring, restart: the state is still there, unchanged.
	mustPublish(t, srv.URL(), progressBatch(newUUID(), 100), 100)
	mustPublish(t, srv.URL(), queueStatus(7, 2), 1)
	srv.Stop()
	srv = startServer(t, env)
	if again := waitJob(t, srv.URL(), job, func(map[string]any) bool { return true }); again["last_event_id"] != id {
		t.Fatalf("after trimming and restart: %v", again)
	}
	// The queue status may have been folded before the stop or by the new process: poll.
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, _, raw = doRequest(t, http.MethodGet, srv.URL()+"/api/v1/queue", "", nil)
		var q map[string]any
		if status == http.StatusOK && json.Unmarshal(raw, &q) == nil && q["pending"] == 7.0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue: %d %s", status, raw)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
