package store_test

// The store contract suites on Redis Cluster (.ci/redis-cluster.sh: 3 masters + 3 replicas), with
// the cluster key layout (store.RedisKeys): every MULTI and script must stay in one slot, or the
// cluster refuses it with CROSSSLOT.

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
	"github.com/eventgate/eventgate/limits"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/webhooks"
)

// newClusterLog returns a log with the cluster layout on a fresh stream key, with a tail client of
// its own, its receipts, the keys and the main client.
func newClusterLog(t *testing.T, retention int, opts store.RedisOptions) (*store.Redis, *store.RedisReceipts, store.RedisKeys, *redis.ClusterClient) {
	t.Helper()
	client, url, prefix := redistest.ClusterClient(t)
	o, err := redis.ParseClusterURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tail := redis.NewClusterClient(o)
	t.Cleanup(func() { _ = tail.Close() })
	if opts.Block == 0 {
		opts.Block = testBlock
	}
	keys := store.NewRedisKeys(prefix+"events", true)
	return store.NewRedis(client, tail, keys.Log, int64(retention), opts), store.NewRedisReceipts(client, keys.LogPrefix), keys, client
}

func TestClusterLog(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, retention int) streams.Log {
		l, _, _, _ := newClusterLog(t, retention, store.RedisOptions{})
		return l
	})
}

func TestClusterReceipts(t *testing.T) {
	t.Parallel()
	storetest.RunReceipts(t, func(t *testing.T) streams.Receipts {
		_, r, _, _ := newClusterLog(t, 100, store.RedisOptions{})
		return r
	})
}

func TestClusterJobs(t *testing.T) {
	t.Parallel()
	storetest.RunJobs(t, func(t *testing.T, ttl time.Duration) jobs.Store {
		client, _, prefix := redistest.ClusterClient(t)
		return store.NewRedisJobs(client, store.NewRedisKeys(prefix+"events", true).Prefix, ttl)
	})
}

func TestClusterWebhooks(t *testing.T) {
	t.Parallel()
	storetest.RunWebhooks(t, func(t *testing.T) webhooks.Store {
		client, _, prefix := redistest.ClusterClient(t)
		return store.NewRedisWebhooks(client, store.NewRedisKeys(prefix+"events", true).Prefix)
	})
}

// TestClusterRateLimiter: ulule/limiter's Redis store runs on a ClusterClient (its scripts are
// loaded on every master; each hit is one single-key script).
func TestClusterRateLimiter(t *testing.T) {
	t.Parallel()
	storetest.RunRateLimiter(t, true, func(t *testing.T, shared string, rate limits.Rate) limits.RateLimiter {
		client, _, prefix := redistest.ClusterClient(t)
		return store.NewRedisRateLimiter(client, prefixFor(t, store.NewRedisKeys(prefix+"events", true).Prefix, shared), rate)
	})
}

// TestClusterLeases: two instances' leases on one key share its budget.
func TestClusterLeases(t *testing.T) {
	t.Parallel()
	client, _, prefix := redistest.ClusterClient(t)
	p := store.NewRedisKeys(prefix+"events", true).Prefix
	a, b := store.NewRedisLeases(client, p, time.Minute, nil), store.NewRedisLeases(client, p, time.Minute, nil)
	ctx := t.Context()
	for i, l := range []*store.RedisLeases{a, b, a} {
		ok, err := l.Acquire(ctx, "192.0.2.1", string(rune('a'+i)), 2)
		if err != nil || ok != (i < 2) {
			t.Fatalf("Acquire #%d = %v, %v; want %v", i+1, ok, err, i < 2)
		}
	}
}

// TestClusterAppendOnce: the keyed append (one script over the stream and the receipt) runs on the
// cluster, because the receipt shares the stream's hash tag; a repeat replays the receipt.
func TestClusterAppendOnce(t *testing.T) {
	t.Parallel()
	log, r, keys, client := newClusterLog(t, 100, store.RedisOptions{})
	ctx := t.Context()
	slots := make([]int64, 2)
	for i, k := range []string{keys.Log, keys.LogPrefix + "idem:k"} {
		slots[i] = client.ClusterKeySlot(ctx, k).Val()
	}
	if slots[0] != slots[1] {
		t.Fatalf("stream %q in slot %d, receipt in slot %d: want one slot", keys.Log, slots[0], slots[1])
	}
	ids, prior, ok, err := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 3), time.Hour)
	if !ok || err != nil || len(ids) != 3 || prior != nil {
		t.Fatalf("AppendOnce: %v %q %v %v", ids, prior, ok, err)
	}
	again, prior, _, err := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 3), time.Hour)
	if err != nil || again != nil || string(prior) != string(streams.ReceiptBody(ids)) {
		t.Fatalf("repeat: %v %q %v; want the receipt", again, prior, err)
	}
	if n := client.XLen(ctx, keys.Log).Val(); n != 3 {
		t.Fatalf("stream holds %d entries, want 3", n)
	}
}

// TestClusterWaitReplicas: every master has one replica, so waiting for one succeeds and waiting
// for two answers ErrNotReplicated (wrapped with ErrUnavailable), with the events on the master.
func TestClusterWaitReplicas(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		replicas int
		ok       bool
	}{{1, true}, {2, false}} {
		log, r, keys, client := newClusterLog(t, 100, store.RedisOptions{WaitReplicas: tc.replicas, WaitTimeout: 100 * time.Millisecond})
		ctx := t.Context()
		_, err := log.Append(ctx, storetest.Drafts(t, 2))
		_, _, _, kerr := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 1), time.Hour)
		for _, err := range []error{err, kerr} {
			if tc.ok && err != nil {
				t.Fatalf("WaitReplicas %d: %v", tc.replicas, err)
			}
			if !tc.ok && (!errors.Is(err, store.ErrNotReplicated) || !errors.Is(err, streams.ErrUnavailable)) {
				t.Fatalf("WaitReplicas %d: err %v, want ErrNotReplicated and ErrUnavailable", tc.replicas, err)
			}
		}
		if n := client.XLen(ctx, keys.Log).Val(); n != 3 {
			t.Fatalf("WaitReplicas %d: stream holds %d entries, want 3 (on the master either way)", tc.replicas, n)
		}
	}
}

// TestClusterReplayReplicates: a replayed receipt is a write on the primary (the receipt rewritten
// unchanged, TTL kept), so the WAIT after it covers the first request's append, which another
// connection wrote. Without it WAIT would count replicas for nothing and vouch for a receipt that a
// failover could still lose.
func TestClusterReplayReplicates(t *testing.T) {
	t.Parallel()
	log, r, keys, client := newClusterLog(t, 100, store.RedisOptions{})
	ctx := t.Context()
	if _, _, _, err := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 1), time.Hour); err != nil {
		t.Fatal(err)
	}
	master, err := client.MasterForKey(ctx, keys.Log)
	if err != nil {
		t.Fatal(err)
	}
	offset := func() int64 {
		info, err := master.Info(ctx, "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		return parseInfoInt(t, info, "master_repl_offset")
	}
	before := offset()
	if _, prior, _, err := r.AppendOnce(ctx, log, "k", storetest.Drafts(t, 1), time.Hour); err != nil || prior == nil {
		t.Fatalf("replay: %q %v", prior, err)
	}
	if after := offset(); after <= before {
		t.Fatalf("master_repl_offset %d → %d: the replay propagated nothing", before, after)
	}
	if ttl := client.PTTL(ctx, keys.LogPrefix+"idem:k").Val(); ttl <= 59*time.Minute {
		t.Fatalf("receipt TTL %s after the replay, want the hour kept", ttl)
	}
}

// TestRedisWaitReplicasNone: the single test Redis has no replica: waiting for one fails as not
// replicated once WaitTimeout passes, and the append stays on the primary.
func TestRedisWaitReplicasNone(t *testing.T) {
	t.Parallel()
	log, client := newRedisLog(t, 100, store.RedisOptions{WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond})
	ctx := t.Context()
	if _, err := log.Append(ctx, storetest.Drafts(t, 1)); !errors.Is(err, store.ErrNotReplicated) || !errors.Is(err, streams.ErrUnavailable) {
		t.Fatalf("Append: %v, want ErrNotReplicated and ErrUnavailable", err)
	}
	if n := client.XLen(ctx, log.Key()).Val(); n != 1 {
		t.Fatalf("stream holds %d entries, want 1", n)
	}
	p, err := log.Read(context.Background(), event.ID{}, 10)
	if err != nil || len(p.Events) != 1 {
		t.Fatalf("Read: %d events, %v", len(p.Events), err)
	}
}

// parseInfoInt returns the integer field name of an INFO reply.
func parseInfoInt(t *testing.T, info, name string) int64 {
	t.Helper()
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("INFO %s: %q: %v", name, v, err)
			}
			return n
		}
	}
	t.Fatalf("INFO has no %s", name)
	return 0
}
