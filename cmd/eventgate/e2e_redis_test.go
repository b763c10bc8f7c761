package main

// End-to-end tests of the real binary on the Redis store: delivery, producers' direct XADD,
// resume across a restart (SIGTERM and SIGKILL), durable history and resync after trimming.
// Each test has a stream key of its own (store/redistest), so they run in parallel.

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/store/redistest"
)

// redisSetup returns the test's Redis client, its stream key, and the environment that points
// eventgate at that key; extra is added to the environment.
func redisSetup(t *testing.T, extra map[string]string) (*redis.Client, string, map[string]string) {
	t.Helper()
	client, u, prefix := redistest.Client(t)
	key := prefix + "events"
	env := map[string]string{"EVENTGATE_REDIS_URL": u, "EVENTGATE_STREAM_KEY": key}
	for k, v := range extra {
		env[k] = v
	}
	return client, key, env
}

// xadd appends an entry the way a producer would (XADD key * field value ...).
func xadd(t *testing.T, client *redis.Client, key string, values ...any) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := client.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: "*", Values: values}).Result()
	if err != nil {
		t.Fatalf("XADD: %v", err)
	}
	return id
}

func TestE2ERedisPublishDelivered(t *testing.T) {
	t.Parallel()
	client, key, env := redisSetup(t, nil)
	s := startServer(t, env)
	if status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/readyz", "", nil); status != http.StatusOK {
		t.Fatalf("/readyz: %d %s", status, raw)
	}
	st := openStream(t, s.URL()+"/api/v1/stream", nil)
	note := newUUID()
	ids := mustPublish(t, s.URL(), batch(noteCreated(note, "x"), jobProgress(jobA, 40)), 2)
	requireIncreasing(t, ids)

	got := st.events(t, 2, frameTimeout)
	requireIDs(t, "delivered", frameIDs(got), ids)
	for i, want := range []struct{ typ, topic, data string }{
		{"note.created", "notes/" + note, `{"note_id":"` + note + `","title":"x"}`},
		{"job.progress", "jobs/" + jobA, `{"job_id":"` + jobA + `","percent":40}`},
	} {
		e := decodeEnvelope(t, got[i].Data)
		if got[i].Event != want.typ || e.Type != want.typ || e.Topic != want.topic || e.ID != ids[i] || !jsonEqual(t, string(e.Data), want.data) {
			t.Fatalf("frame %v: want %s on %s with data %s", got[i], want.typ, want.topic, want.data)
		}
	}
	// The ids are the Redis Stream entry ids.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	msgs, err := client.XRange(ctx, key, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].ID != ids[0] || msgs[1].ID != ids[1] {
		t.Fatalf("stream %s holds %v, want entries %v", key, msgs, ids)
	}
}

func TestE2ERedisDirectXAdd(t *testing.T) {
	t.Parallel()
	client, key, env := redisSetup(t, nil)
	s := startServer(t, env)
	st := openStream(t, s.URL()+"/api/v1/stream", nil)

	first := xadd(t, client, key, "event", `{"type":"queue.status","data":{"pending":3,"active":1}}`)
	f := st.nextEvent(t, frameTimeout)
	e := decodeEnvelope(t, f.Data)
	if f.ID != first || f.Event != "queue.status" || e.ID != first || e.Type != "queue.status" || e.Topic != "queue" ||
		!jsonEqual(t, string(e.Data), `{"pending":3,"active":1}`) {
		t.Fatalf("frame %v, want queue.status %s on topic queue", f, first)
	}

	// Invalid entries are skipped; the stream goes on with the next valid one.
	for _, v := range [][]any{
		{"event", `{not json`},
		{"event", `{"type":"job.exploded","data":{}}`},
		{"event", `{"type":"queue.status","data":{"pending":1,"active":0,"extra":1}}`},
		{"event", `{"type":"job.progress","data":{"job_id":"not-a-uuid","percent":1}}`},
		{"event", `{"type":"queue.status","data":{"pending":-1,"active":0}}`},
		{"payload", queueStatus(1, 1)},
	} {
		xadd(t, client, key, v...)
	}
	good := xadd(t, client, key, "event", jobProgress(jobA, 7))
	if f := st.nextEvent(t, frameTimeout); f.ID != good || f.Event != "job.progress" {
		t.Fatalf("after invalid entries got %v, want %s", f, good)
	}
	published := mustPublish(t, s.URL(), queueStatus(0, 0), 1)
	if f := st.nextEvent(t, frameTimeout); f.ID != published[0] {
		t.Fatalf("got %v, want %s", f, published[0])
	}
	want := []string{first, good, published[0]}
	// Replay and history skip them too.
	again := openStream(t, s.URL()+"/api/v1/stream?since=0", nil)
	requireIDs(t, "replay", frameIDs(again.events(t, 3, frameTimeout)), want)
	requireIDs(t, "history", historyIDs(t, history(t, s.URL(), "after=0")), want)
}

func TestE2ERedisRestartResume(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sigterm", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			client, key, env := redisSetup(t, map[string]string{"EVENTGATE_SHUTDOWN_GRACE": "5s"})
			a := startServer(t, env)
			st := openStream(t, a.URL()+"/api/v1/stream?topic=*", nil)
			seen := mustPublish(t, a.URL(), progressBatch(jobA, 3), 3)
			requireIDs(t, "before restart", frameIDs(st.events(t, 3, frameTimeout)), seen)
			last := seen[len(seen)-1]

			switch mode {
			case "sigterm":
				a.Signal()
				var shutdown bool
				for _, f := range st.expectEnd(t, stopTimeout) {
					if f.Event == "shutdown" {
						shutdown = true
					} else if f.isEvent() {
						t.Fatalf("unexpected %v while shutting down", f)
					}
				}
				if !shutdown {
					t.Fatal("stream ended without event: shutdown")
				}
				if code, ok := a.Wait(stopTimeout); !ok || code != 0 {
					t.Fatalf("exit code %d (exited: %v), want 0", code, ok)
				}
			case "sigkill":
				a.Kill()
				for _, f := range st.expectEnd(t, frameTimeout) {
					if f.isEvent() {
						t.Fatalf("unexpected %v after SIGKILL", f)
					}
				}
			}

			// While the client is away: another instance publishes and a producer XADDs.
			b := startServer(t, env)
			missed := mustPublish(t, b.URL(), batch(noteCreated(newUUID(), "during"), jobProgress(jobA, 50)), 2)
			missed = append(missed, xadd(t, client, key, "event", queueStatus(4, 2)))
			xadd(t, client, key, "event", `{"type":"nope","data":{}}`) // skipped
			missed = append(missed, xadd(t, client, key, "event", jobProgress(jobA, 60)))
			missed = append(missed, mustPublish(t, b.URL(), jobProgress(jobA, 70), 1)...)
			b.Stop()

			// eventgate is back (new process, new port): the client resumes where it was.
			c := startServer(t, env)
			again := openStream(t, c.URL()+"/api/v1/stream?topic=*", map[string]string{"Last-Event-ID": last})
			requireIDs(t, "after restart", frameIDs(again.events(t, len(missed), frameTimeout)), missed)
			live := mustPublish(t, c.URL(), jobProgress(jobA, 80), 1)
			if f := again.nextEvent(t, frameTimeout); f.ID != live[0] {
				t.Fatalf("after the replay got %v, want live %s", f, live[0])
			}
		})
	}
}

func TestE2ERedisHistoryDurable(t *testing.T) {
	t.Parallel()
	client, key, env := redisSetup(t, nil)
	a := startServer(t, env)
	ids := mustPublish(t, a.URL(), batch(jobQueued(jobA), jobProgress(jobA, 10), noteCreated(newUUID(), "y"), queueStatus(1, 1), jobProgress(jobA, 20)), 5)
	ids = append(ids, xadd(t, client, key, "event", queueStatus(0, 1)))
	idem := map[string]string{"Idempotency-Key": "restart-" + newUUID()}
	status, idemIDs, raw := publish(t, a.URL(), queueStatus(9, 9), idem)
	if status != http.StatusCreated || len(idemIDs) != 1 {
		t.Fatalf("publish with Idempotency-Key: %d %s", status, raw)
	}
	ids = append(ids, idemIDs...)
	before := history(t, a.URL(), "after=0")
	requireIDs(t, "before", historyIDs(t, before), ids)
	a.Kill() // SIGKILL: nothing is flushed on the way out

	b := startServer(t, env)
	// The Idempotency-Key survives the restart (receipts live in Redis): same ids, nothing appended.
	status, again, raw := publish(t, b.URL(), queueStatus(9, 9), idem)
	if status != http.StatusCreated {
		t.Fatalf("repeated Idempotency-Key after restart: %d %s", status, raw)
	}
	requireIDs(t, "repeated Idempotency-Key after restart", again, idemIDs)
	after := history(t, b.URL(), "after=0")
	requireIDs(t, "after restart", historyIDs(t, after), ids)
	for i := range ids {
		if !bytes.Equal(before.Events[i], after.Events[i]) {
			t.Fatalf("event %d changed across the restart:\n%s\n%s", i, before.Events[i], after.Events[i])
		}
	}
	if after.Oldest != ids[0] {
		t.Fatalf("oldest %s, want %s", after.Oldest, ids[0])
	}
	st := openStream(t, b.URL()+"/api/v1/stream?since=0", nil)
	got := st.events(t, len(ids), frameTimeout)
	requireIDs(t, "replay after restart", frameIDs(got), ids)
	for i, f := range got {
		if f.Data != string(after.Events[i]) {
			t.Fatalf("SSE data %s differs from history %s", f.Data, after.Events[i])
		}
	}
}

func TestE2ERedisResync(t *testing.T) {
	t.Parallel()
	client, key, env := redisSetup(t, map[string]string{"EVENTGATE_RETENTION": "10"})
	s := startServer(t, env)
	var ids []string
	for range 7 {
		ids = append(ids, mustPublish(t, s.URL(), progressBatch(jobA, 50), 50)...)
	}
	requireIncreasing(t, ids)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := client.XInfoStream(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	k := -1
	for i, id := range ids {
		if id == info.FirstEntry.ID {
			k = i
		}
	}
	if k <= 0 || info.Length < 10 || int(info.Length) != len(ids)-k {
		t.Fatalf("XINFO first %s length %d: want a trimmed stream of at least 10 ending with our ids", info.FirstEntry.ID, info.Length)
	}
	t.Logf("retention 10: Redis kept %d of %d entries", info.Length, len(ids))

	t.Run("history_truncated", func(t *testing.T) {
		st := openStream(t, s.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": ids[0]})
		f := st.nextEvent(t, frameTimeout)
		r := expectResync(t, f, "history_truncated", ids[0])
		if r.Oldest != ids[k] {
			t.Fatalf("resync oldest %s, want %s", r.Oldest, ids[k])
		}
		if idLess(t, f.ID, ids[0]) || !idLess(t, f.ID, r.Oldest) {
			t.Fatalf("resync id %s, want in [%s, %s)", f.ID, ids[0], r.Oldest)
		}
		requireIDs(t, "retained", frameIDs(st.events(t, len(ids)-k, 2*frameTimeout)), ids[k:])
		live := mustPublish(t, s.URL(), jobProgress(jobA, 1), 1)
		if g := st.nextEvent(t, frameTimeout); g.ID != live[0] {
			t.Fatalf("got %v, want live %s", g, live[0])
		}
	})
	t.Run("from oldest needs no resync", func(t *testing.T) {
		st := openStream(t, s.URL()+"/api/v1/stream?since=0", nil)
		if f := st.nextEvent(t, frameTimeout); f.Event == "resync" || f.ID != ids[k] {
			t.Fatalf("since=0: first %v, want %s", f, ids[k])
		}
	})
	t.Run("position_unknown", func(t *testing.T) {
		const future = "99999999999999-0"
		st := openStream(t, s.URL()+"/api/v1/stream?last_event_id="+url.QueryEscape(future), nil)
		expectResync(t, st.nextEvent(t, frameTimeout), "position_unknown", future)
		live := mustPublish(t, s.URL(), jobProgress(jobA, 2), 1)
		if g := st.nextEvent(t, frameTimeout); g.ID != live[0] {
			t.Fatalf("got %v, want live %s", g, live[0])
		}
	})
}

func TestE2ERedisLogLost(t *testing.T) {
	t.Parallel()
	client, key, env := redisSetup(t, nil)
	a := startServer(t, env)
	st := openStream(t, a.URL()+"/api/v1/stream", nil)
	seen := mustPublish(t, a.URL(), progressBatch(jobA, 3), 3)
	requireIDs(t, "before", frameIDs(st.events(t, 3, frameTimeout)), seen)
	a.Kill()
	st.expectEnd(t, frameTimeout)

	// The log is lost (Redis without persistence restarted, or the key deleted).
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := client.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	b := startServer(t, env)
	last := seen[len(seen)-1]
	again := openStream(t, b.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": last})
	expectResync(t, again.nextEvent(t, frameTimeout), "position_unknown", last)
	live := mustPublish(t, b.URL(), jobProgress(jobA, 5), 1)
	if f := again.nextEvent(t, frameTimeout); f.ID != live[0] {
		t.Fatalf("after resync got %v, want live %s", f, live[0])
	}
}

func TestE2ERedisUnavailable(t *testing.T) {
	t.Parallel()
	// Nothing listens on this loopback port: Redis is down at start-up, which is not fatal.
	s := startServer(t, map[string]string{
		"EVENTGATE_REDIS_URL":  "redis://" + freeAddr(t) + "/0",
		"EVENTGATE_STREAM_KEY": "egtest:unavailable:events",
	})
	for _, r := range []struct{ method, path, body string }{
		{http.MethodGet, "/readyz", ""},
		{http.MethodPost, "/api/v1/events", queueStatus(1, 1)},
		{http.MethodGet, "/api/v1/events?after=0", ""},
	} {
		status, h, raw := doRequest(t, r.method, s.URL()+r.path, r.body, nil)
		expectError(t, status, raw, http.StatusServiceUnavailable, "")
		if h.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", r.method, r.path)
		}
	}
	if status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/healthz", "", nil); status != http.StatusOK {
		t.Fatalf("/healthz %d %s, want 200 while Redis is down", status, raw)
	}
	s.Stop()
}
