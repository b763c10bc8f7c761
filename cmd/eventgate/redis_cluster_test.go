package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestClusterClientsOptions: the cluster clients are built from every address of the URL, never
// retry on a node, honour context deadlines, reload the slot map every second (a dead master sends
// no MOVED), and the tail client has its own small pool. Nothing is dialled.
func TestClusterClientsOptions(t *testing.T) {
	t.Parallel()
	client, tail, err := clusterClients("redis://127.0.0.1:1?addr=127.0.0.1:2&addr=127.0.0.1:3&read_timeout=4s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close(); _ = tail.Close() })
	o, to := client.Options(), tail.Options()
	if len(o.Addrs) != 3 {
		t.Errorf("addrs %v, want the three of the URL", o.Addrs)
	}
	if !o.ContextTimeoutEnabled || o.MaxRetries != -1 || o.DialTimeout != redisDialTimeout || o.ReadTimeout != 4*time.Second {
		t.Errorf("client: context %v retries %d dial %s read %s", o.ContextTimeoutEnabled, o.MaxRetries, o.DialTimeout, o.ReadTimeout)
	}
	if o.ClusterStateReloadInterval != clusterStateReload || to.ClusterStateReloadInterval != clusterStateReload {
		t.Errorf("state reload %s / %s, want %s", o.ClusterStateReloadInterval, to.ClusterStateReloadInterval, clusterStateReload)
	}
	if to.PoolSize != tailPoolSize || to.ReadTimeout != 4*time.Second {
		t.Errorf("tail: pool %d read %s", to.PoolSize, to.ReadTimeout)
	}
	if _, _, err := clusterClients("redis://127.0.0.1:1?addr=x&bogus=1"); err == nil {
		t.Error("an unknown URL parameter was accepted")
	}
}

// TestClusterConfig: the settings parse, and Redis-only settings without EVENTGATE_REDIS_URL stop
// start-up with a line naming the variable.
func TestClusterConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env     map[string]string
		wantErr string // from loadConfig or redisOnlySettings; "" for none
	}{
		{map[string]string{"EVENTGATE_REDIS_URL": "redis://127.0.0.1:1", "EVENTGATE_REDIS_CLUSTER": "true", "EVENTGATE_REDIS_WAIT_REPLICAS": "1"}, ""},
		{map[string]string{"EVENTGATE_REDIS_CLUSTER": "yes"}, "EVENTGATE_REDIS_CLUSTER"},
		{map[string]string{"EVENTGATE_REDIS_WAIT_REPLICAS": "-1"}, "EVENTGATE_REDIS_WAIT_REPLICAS"},
		{map[string]string{"EVENTGATE_REDIS_WAIT_TIMEOUT": "0s"}, "EVENTGATE_REDIS_WAIT_TIMEOUT"},
		{map[string]string{"EVENTGATE_REDIS_CLUSTER": "true"}, "EVENTGATE_REDIS_CLUSTER=true needs EVENTGATE_REDIS_URL"},
		{map[string]string{"EVENTGATE_REDIS_WAIT_REPLICAS": "1"}, "EVENTGATE_REDIS_WAIT_REPLICAS needs EVENTGATE_REDIS_URL"},
	}
	for _, tc := range tests {
		cfg, err := loadConfig(nil, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil {
			err = redisOnlySettings(cfg)
		}
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%v: err %v, want one naming %s", tc.env, err, tc.wantErr)
		}
		if tc.wantErr == "" && (!cfg.RedisCluster || cfg.RedisWaitReplicas != 1 || cfg.RedisWaitTimeout != time.Second) {
			t.Errorf("%v: cfg cluster %v replicas %d timeout %s", tc.env, cfg.RedisCluster, cfg.RedisWaitReplicas, cfg.RedisWaitTimeout)
		}
	}
}
