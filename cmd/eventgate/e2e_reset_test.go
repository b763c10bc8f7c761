package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// restartEmpty kills the server (SIGKILL) and starts it again without its files: a Redis without
// persistence that came back empty, on the same port.
func (r *privateRedis) restartEmpty() {
	r.t.Helper()
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "redis.log" {
			if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	r.start()
}

// TestE2ERedisRestartedEmpty: Redis (no persistence) restarts empty and a publish arrives at
// once, before eventgate could notice the empty log. A client resuming from before the loss must
// get a resync on every route — SSE, WebSocket and history — never the new event alone: the new
// ids are larger than the old ones, so they would otherwise look like a seamless continuation.
func TestE2ERedisRestartedEmpty(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t)
	srv := startServer(t, map[string]string{"EVENTGATE_REDIS_URL": r.url(), "EVENTGATE_STREAM_KEY": "reset:events"})
	job := newUUID()
	ab := mustPublish(t, srv.URL(), progressBatch(job, 2), 2) // A and B, both acknowledged
	a := ab[0]

	r.restartEmpty() // B is gone
	c := publishRetrying(t, srv.URL(), jobProgress(job, 77), 1)[0]
	if !idLess(t, ab[1], c) {
		t.Fatalf("the new log's id %s is not after the lost %s: the test does not test the rule", c, ab[1])
	}

	t.Run("sse", func(t *testing.T) {
		t.Parallel()
		st := openStream(t, srv.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": a})
		defer st.Close()
		expectResync(t, st.nextEvent(t, frameTimeout), "position_unknown", a)
		if f := st.nextEvent(t, frameTimeout); f.ID != c {
			t.Fatalf("after the resync got %v, want %s", f, c)
		}
	})
	t.Run("websocket", func(t *testing.T) {
		t.Parallel()
		ws := dialWS(t, srv, "?since="+a)
		m := readFrame(t, ws)
		if m["type"] != "resync" || m["reason"] != "position_unknown" || m["requested"] != a {
			t.Fatalf("first frame %v, want a position_unknown resync for %s", m, a)
		}
		if m := readFrame(t, ws); m["id"] != c {
			t.Fatalf("after the resync got %v, want %s", m, c)
		}
		// The resync frame says where delivery continues: resuming there loses nothing and
		// needs no second resync.
		pos, _ := m["position"].(string)
		again := dialWS(t, srv, "?since="+pos)
		if m := readFrame(t, again); m["id"] != c {
			t.Fatalf("resuming at the resync's position %q got %v, want %s", pos, m, c)
		}
	})
	t.Run("history", func(t *testing.T) {
		t.Parallel()
		status, _, raw := doRequest(t, http.MethodGet, srv.URL()+"/api/v1/events?after="+a, "", nil)
		var page struct {
			Events    []json.RawMessage
			Truncated bool
		}
		if status != http.StatusOK || json.Unmarshal(raw, &page) != nil || !page.Truncated || len(page.Events) != 1 {
			t.Fatalf("history after %s: %d %s, want 200 with truncated and the one new event", a, status, raw)
		}
	})
}
