package main

// End-to-end tests of the real binary on Redis Cluster (EVENTGATE_REDIS_CLUSTER=true, the shared
// test cluster of .ci/redis-cluster.sh): two instances share one log, its receipts, webhooks,
// rate limits and job state, with each test on a stream key of its own. The failover test runs on
// a private cluster (e2e_failover_test.go).

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
)

// clusterSetup returns the test cluster's client, the key layout of the test's stream key, and
// the environment that points eventgate at it; extra is added to the environment.
func clusterSetup(t *testing.T, extra map[string]string) (*redis.ClusterClient, store.RedisKeys, map[string]string) {
	t.Helper()
	client, url, prefix := redistest.ClusterClient(t)
	env := map[string]string{"EVENTGATE_REDIS_URL": url, "EVENTGATE_REDIS_CLUSTER": "true", "EVENTGATE_STREAM_KEY": prefix + "events"}
	maps.Copy(env, extra)
	return client, store.NewRedisKeys(prefix+"events", true), env
}

// TestE2EClusterTwoInstances: publish on either instance, SSE and WebSocket on the other, resume
// with Last-Event-ID, an Idempotency-Key replayed across instances, job state folded by both, and
// the log in its tagged key on the cluster.
func TestE2EClusterTwoInstances(t *testing.T) {
	t.Parallel()
	client, keys, env := clusterSetup(t, nil)
	a, b := startServer(t, env), startServer(t, env)
	for _, s := range []*server{a, b} {
		if status, _, raw := doRequest(t, http.MethodGet, s.URL()+"/readyz", "", nil); status != http.StatusOK {
			t.Fatalf("%s /readyz: %d %s", s.name, status, raw)
		}
	}
	sse := openStream(t, b.URL()+"/api/v1/stream", nil)
	ws := dialWS(t, a, "")
	job := newUUID()
	ids := mustPublish(t, a.URL(), batch(jobQueued(job), jobProgress(job, 10)), 2)
	ids = append(ids, mustPublish(t, b.URL(), jobProgress(job, 70), 1)...)
	requireIncreasing(t, ids)
	requireIDs(t, "SSE on B", frameIDs(sse.events(t, 3, frameTimeout)), ids)
	for i, want := range ids {
		if m := readFrame(t, ws); m["id"] != want {
			t.Fatalf("WebSocket on A, frame %d: %v, want id %s", i, m, want)
		}
	}

	// Resume on the other instance from the first id: the rest, then live.
	resumed := openStream(t, a.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": ids[0]})
	requireIDs(t, "resumed on A", frameIDs(resumed.events(t, 2, frameTimeout)), ids[1:])

	// One Idempotency-Key, once per instance: one append, the same answer.
	key := map[string]string{"Idempotency-Key": "cluster-" + newUUID()}
	status, first, raw := publish(t, a.URL(), queueStatus(3, 1), key)
	if status != http.StatusCreated || len(first) != 1 {
		t.Fatalf("keyed publish on A: %d %s", status, raw)
	}
	status, again, raw := publish(t, b.URL(), queueStatus(3, 1), key)
	if status != http.StatusCreated || len(again) != 1 || again[0] != first[0] {
		t.Fatalf("the same key on B: %d %s, want 201 replaying %v", status, raw, first)
	}
	if got := frameIDs(resumed.events(t, 1, frameTimeout)); got[0] != first[0] {
		t.Fatalf("after the keyed publish: %v, want %v once", got, first)
	}

	for _, s := range []*server{a, b} {
		waitJob(t, s.URL(), job, func(st map[string]any) bool { return st["percent"] == 70.0 && st["last_event_id"] == ids[2] })
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := client.XLen(ctx, keys.Log).Result(); err != nil || n != 4 {
		t.Fatalf("XLEN %s = %d, %v; want 4 (the log under its hash tag)", keys.Log, n, err)
	}
}

// TestE2EClusterRateLimits: the connect budget per client IP is one budget across two instances
// (ulule/limiter on the cluster client).
func TestE2EClusterRateLimits(t *testing.T) {
	t.Parallel()
	_, _, env := clusterSetup(t, map[string]string{"EVENTGATE_CONNECT_RATE": "4-M"})
	a, b := startServer(t, env), startServer(t, env)
	for i, s := range []*server{a, b, a, b} {
		status, h, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/ws", "", nil) // 400: not an upgrade, but counted
		if status == http.StatusTooManyRequests || h.Get("X-RateLimit-Remaining") != strconv.Itoa(3-i) {
			t.Fatalf("request %d to %s: %d %s (remaining %q), want admitted with %d left", i+1, s.name, status, raw, h.Get("X-RateLimit-Remaining"), 3-i)
		}
	}
	for _, s := range []*server{a, b} {
		status, h, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/stream", "", nil)
		expectRateLimited(t, status, h, raw, 4)
	}
}

// TestE2EClusterWebhooks: endpoints registered on either instance; every event is delivered once
// per endpoint by one of the two instances; a deleted endpoint is gone from both.
func TestE2EClusterWebhooks(t *testing.T) {
	t.Parallel()
	_, _, env := clusterSetup(t, hookEnv(map[string]string{"EVENTGATE_WEBHOOK_LEASE_TTL": "3s"}))
	a, b := startServer(t, env), startServer(t, env)
	r1, r2 := newHookReceiver(t, nil), newHookReceiver(t, nil)
	h1 := registerHook(t, a.URL(), `{"url":"`+r1.URL()+`"}`)
	h2 := registerHook(t, b.URL(), `{"url":"`+r2.URL()+`"}`)
	r1.setSecret(h1.Secret)
	r2.setSecret(h2.Secret)
	ids := publishAlternately(t, a.URL(), b.URL(), 6, 3)
	waitDeliveredOnce(t, ids, r1, r2)
	if status, _, raw := doRequest(t, http.MethodDelete, b.URL()+"/api/v1/webhooks/"+h1.ID, "", nil); status != http.StatusNoContent {
		t.Fatalf("DELETE on B: %d %s", status, raw)
	}
	status, _, raw := doRequest(t, http.MethodGet, a.URL()+"/api/v1/webhooks/"+h1.ID, "", nil)
	expectError(t, status, raw, http.StatusNotFound, "not_found")
}
