package main

// TestE2EClusterFailover: two instances on a private Redis Cluster with
// EVENTGATE_REDIS_WAIT_REPLICAS=1, a publisher retrying with Idempotency-Key, SSE and WebSocket
// subscribers resuming with their last id; the master holding the log's slot is SIGKILLed while
// they run, its replica is promoted, and the killed node comes back as the new master's replica.
// At the end every subscriber has every acknowledged event once and in order (checkFaultRun), and
// every acknowledged event is still in the log: with WAIT 1 a failover loses nothing acknowledged.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
)

const (
	failoverSubs        = 6                // SSE subscribers, and as many WebSocket ones
	failoverNodeTimeout = "500"            // ms: cluster-node-timeout of the private cluster
	failoverPromotion   = 20 * time.Second // from the kill until a replica serves the slot
)

// privateCluster is a Redis Cluster of this test's own, started with .ci/redis-cluster.sh.
type privateCluster struct {
	t        *testing.T
	url, dir string
}

// startPrivateCluster starts a fresh cluster (3 masters + 3 replicas) and stops it at cleanup. It
// fails, or skips unless EVENTGATE_TEST_REQUIRE_REDIS=1, when the script cannot start one.
func startPrivateCluster(t *testing.T) *privateCluster {
	t.Helper()
	script := filepath.Join("..", "..", ".ci", "redis-cluster.sh")
	cmd := exec.Command("bash", script, "start")
	cmd.Env = append(os.Environ(), "EVENTGATE_TEST_REDIS_CLUSTER_FRESH=1", "EVENTGATE_TEST_REDIS_CLUSTER_NODE_TIMEOUT="+failoverNodeTimeout)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	c := &privateCluster{t: t}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(line, "=")
		v = strings.Trim(v, "'")
		switch k {
		case redistest.EnvClusterURL:
			c.url = v
		case "EVENTGATE_TEST_REDIS_CLUSTER_DIR":
			c.dir = v
		}
	}
	if c.dir != "" {
		t.Cleanup(func() { _ = exec.Command("bash", script, "stop", c.dir).Run() })
	}
	if err != nil || c.url == "" || c.dir == "" {
		msg := fmt.Sprintf("starting a private Redis Cluster: %v\n%s", err, stderr.String())
		if os.Getenv(redistest.EnvRequire) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return c
}

// client returns a cluster client for the test's own checks.
func (c *privateCluster) client() *redis.ClusterClient {
	c.t.Helper()
	opts, err := redis.ParseClusterURL(c.url)
	if err != nil {
		c.t.Fatal(err)
	}
	cl := redis.NewClusterClient(opts)
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// nodesOf returns the addresses of the master that serves slot and of its replicas, as node says
// (not a client's cached slot map).
func nodesOf(ctx context.Context, node *redis.Client, slot int64) (master string, replicas []string, err error) {
	slots, err := node.ClusterSlots(ctx).Result()
	if err != nil {
		return "", nil, err
	}
	for _, s := range slots {
		if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
			for _, n := range s.Nodes[1:] {
				replicas = append(replicas, n.Addr)
			}
			return s.Nodes[0].Addr, replicas, nil
		}
	}
	return "", nil, fmt.Errorf("no node serves slot %d", slot)
}

// signal sends sig to the node at addr (127.0.0.1:<port>), a node of this cluster, and returns
// its port.
func (c *privateCluster) signal(addr string, sig syscall.Signal) (port string) {
	c.t.Helper()
	_, port, _ = strings.Cut(addr, ":")
	raw, err := os.ReadFile(filepath.Join(c.dir, port, "redis.pid"))
	if err != nil {
		c.t.Fatalf("the pid of %s: %v", addr, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("%s %s (pid %d): %v", sig, addr, pid, err)
	}
	return port
}

// restart starts the killed node of port again; it rejoins as a replica.
func (c *privateCluster) restart(port string) {
	c.t.Helper()
	out, err := exec.Command("bash", filepath.Join("..", "..", ".ci", "redis-cluster.sh"), "restart", c.dir, port).CombinedOutput()
	if err != nil {
		c.t.Fatalf("restarting the node on %s: %v\n%s", port, err, out)
	}
}

func TestE2EClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("the failover test takes about 20 s; skipped with -short")
	}
	// Not parallel: it runs while the parallel e2e tests wait, so its timing is its own.
	pc := startPrivateCluster(t)
	cc := pc.client()
	keys := store.NewRedisKeys("failover:events", true)
	env := map[string]string{"EVENTGATE_REDIS_URL": pc.url, "EVENTGATE_REDIS_CLUSTER": "true", "EVENTGATE_STREAM_KEY": "failover:events",
		"EVENTGATE_REDIS_WAIT_REPLICAS": "1", "EVENTGATE_MAX_CONNECTIONS_PER_IP": "1000"}
	c := &faultCluster{t: t, env: env}
	for i := range c.addrs {
		c.addrs[i] = freeAddr(t)
		c.start(i)
	}
	urls := c.urls()
	tl := &faultTimeline{t0: time.Now()}

	var subs []*faultSub
	for i := range 2 * failoverSubs {
		kind := map[bool]string{false: "sse", true: "ws"}[i%2 == 1]
		subs = append(subs, newFaultSub(fmt.Sprintf("%s-%02d", kind, i/2), i%2 == 1, urls, newFaultGate(), faultIdle))
	}
	load := startFaultLoad(t, urls, subs, "before the failover")
	ctx, pub := load.ctx, load.pub

	// Stop the replica of the log's master and cut it off, so that what the master appends now
	// is not replicated; then kill the master and let the replica wake up and take over. Without WAIT
	// the events appended meanwhile were acknowledged and are lost with the master; with WAIT 1
	// they are answered 503 and retried (with their Idempotency-Key) on the new master.
	slot := cc.ClusterKeySlot(ctx, keys.Log).Val()
	owner, err := cc.MasterForKey(ctx, keys.Log)
	if err != nil {
		t.Fatal(err)
	}
	witness := witnessOf(t, ctx, cc, owner.Options().Addr)
	old, replicas, err := nodesOf(ctx, witness, slot)
	if err != nil || len(replicas) != 1 {
		t.Fatalf("slot %d: master %s replicas %v (%v), want one replica", slot, old, replicas, err)
	}
	tl.begin(t, "SIGSTOP the replica "+replicas[0]+" of the log's master "+old, pub.ackedCount())
	pc.signal(replicas[0], syscall.SIGSTOP)
	// And cut its link: what the master sent before sits in the stopped replica's socket and would
	// still reach it; what the master appends from now on does not.
	if err := owner.Do(ctx, "client", "kill", "type", "replica").Err(); err != nil {
		t.Fatalf("CLIENT KILL TYPE replica: %v", err)
	}
	before := owner.XLen(ctx, keys.Log).Val()
	unreplicated := time.After(300 * time.Millisecond) // the length of the fault, not synchronisation
	for deadline := time.Now().Add(faultWait); owner.XLen(ctx, keys.Log).Val() <= before; {
		if time.Now().After(deadline) {
			t.Fatalf("nothing was appended to the log's master within %s of stopping its replica", faultWait)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	<-unreplicated
	unacked := owner.XLen(ctx, keys.Log).Val() - before
	tl.begin(t, "SIGKILL the master "+old+", SIGCONT its replica", pub.ackedCount())
	killed := time.Now()
	port := pc.signal(old, syscall.SIGKILL)
	pc.signal(replicas[0], syscall.SIGCONT)
	var promoted string
	for deadline := time.Now().Add(failoverPromotion); ; {
		info, _ := witness.ClusterInfo(ctx).Result()
		if m, _, err := nodesOf(ctx, witness, slot); err == nil && m != old && strings.Contains(info, "cluster_state:ok") {
			promoted = m
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no replica took over slot %d within %s", slot, failoverPromotion)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	promotion := time.Since(killed)
	t.Logf("slot %d: %s promoted %s after the kill", slot, promoted, promotion.Round(10*time.Millisecond))
	t.Cleanup(func() { pc.signal(replicas[0], syscall.SIGCONT) })
	tl.begin(t, "restart the killed node: it rejoins as the new master's replica", pub.ackedCount())
	pc.restart(port)
	waitProgress(t, pub, pub.ackedCount(), faultStepProgress, "after the failover")

	f := load.finish(t, tl)
	// WAIT 1: nothing acknowledged was lost with the old master.
	// The rejoining node may flip the cluster to CLUSTERDOWN for a moment: read once it is up.
	var held []redis.XMessage
	for deadline := time.Now().Add(failoverPromotion); ; time.Sleep(50 * time.Millisecond) { // poll interval
		var err error
		if held, err = cc.XRange(context.Background(), keys.Log, "-", "+").Result(); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
	inLog := make(map[string]bool, len(held))
	for _, m := range held {
		inLog[m.ID] = true
	}
	var missing []string
	for _, a := range pub.acked {
		if !inLog[a.id.String()] {
			missing = append(missing, fmt.Sprintf("%s (event %d)", a.id, a.seq))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d acknowledged events are not in the log after the failover: %s", len(missing), strings.Join(missing[:min(10, len(missing))], ", "))
	}
	t.Logf("figures: %d events appended to the master while its replica was stopped; promotion %s after SIGKILL; %d events acknowledged (%d publish attempts, %d events retried, %d abandoned); "+
		"%d subscribers, %d reconnects, %d resyncs, lost %d, duplicated %d; %d acknowledged events missing from the log; in %s",
		unacked, promotion.Round(10*time.Millisecond), len(pub.acked), pub.attempts, pub.retried, len(pub.abandoned), len(subs),
		f.reconnects, f.resyncs, f.lost, f.duplicated, len(missing), time.Since(tl.t0).Round(100*time.Millisecond))
}

// witnessOf returns a client of a master other than addr: it survives addr's death and tells who
// serves which slot.
func witnessOf(t *testing.T, ctx context.Context, cc *redis.ClusterClient, addr string) *redis.Client {
	t.Helper()
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range slots {
		if len(s.Nodes) > 0 && s.Nodes[0].Addr != addr {
			c := redis.NewClient(&redis.Options{Addr: s.Nodes[0].Addr})
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
	}
	t.Fatalf("no master besides %s", addr)
	return nil
}
