package main

import (
	"testing"
	"time"
)

// TestRedisClientsTimeouts: both clients honour context deadlines on the socket (without that a
// frozen Redis held every request for go-redis's whole read timeout), have finite dial, read and
// write timeouts, never retry (a retried script could append twice), and keep what the URL sets.
// The clients are built, never used: nothing is dialled.
func TestRedisClientsTimeouts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, url                   string
		dial, read, write, tailRead time.Duration
	}{
		{"defaults", "redis://127.0.0.1:1/0", redisDialTimeout, redisIOTimeout, redisIOTimeout, tailReadTimeout},
		{"url timeouts", "redis://127.0.0.1:1/0?dial_timeout=1s&read_timeout=4s", time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second},
		{"sentinel", "redis://127.0.0.1:1/0?master_name=m&addr=127.0.0.1:2", redisDialTimeout, redisIOTimeout, redisIOTimeout, tailReadTimeout},
		{"sentinel url timeouts", "redis://127.0.0.1:1/0?master_name=m&write_timeout=5s", redisDialTimeout, redisIOTimeout, 5 * time.Second, tailReadTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, tail, err := redisClients(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = client.Close(); _ = tail.Close() })
			o, to := client.Options(), tail.Options()
			if !o.ContextTimeoutEnabled || !to.ContextTimeoutEnabled {
				t.Errorf("ContextTimeoutEnabled: client %v, tail %v; want both", o.ContextTimeoutEnabled, to.ContextTimeoutEnabled)
			}
			if o.DialTimeout != tc.dial || o.ReadTimeout != tc.read || o.WriteTimeout != tc.write {
				t.Errorf("client dial/read/write %s/%s/%s, want %s/%s/%s", o.DialTimeout, o.ReadTimeout, o.WriteTimeout, tc.dial, tc.read, tc.write)
			}
			if to.DialTimeout != tc.dial || to.ReadTimeout != tc.tailRead || to.WriteTimeout != tc.write || to.PoolSize != tailPoolSize {
				t.Errorf("tail dial/read/write %s/%s/%s pool %d, want %s/%s/%s pool %d", to.DialTimeout, to.ReadTimeout, to.WriteTimeout, to.PoolSize,
					tc.dial, tc.tailRead, tc.write, tailPoolSize)
			}
			if o.MaxRetries != -1 && o.MaxRetries != 0 || to.MaxRetries != -1 && to.MaxRetries != 0 {
				t.Errorf("MaxRetries client %d tail %d, want none", o.MaxRetries, to.MaxRetries)
			}
		})
	}
}
