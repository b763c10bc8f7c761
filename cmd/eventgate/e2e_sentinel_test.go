package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestE2ESentinel runs eventgate on a Redis found through Sentinel (EVENTGATE_REDIS_URL with
// master_name): a real master and a real sentinel, both private to the test, on loopback.
func TestE2ESentinel(t *testing.T) {
	t.Parallel()
	master := startPrivateRedis(t)
	_, port, _ := net.SplitHostPort(freeAddr(t))
	dir := t.TempDir()
	conf := filepath.Join(dir, "sentinel.conf") // Sentinel rewrites its config: a file of its own
	err := os.WriteFile(conf, []byte(fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor egmaster 127.0.0.1 %s 1\n",
		port, dir, master.port)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sentinel := exec.Command(master.bin, conf, "--sentinel")
	if err := sentinel.Start(); err != nil {
		t.Fatalf("starting sentinel: %v", err)
	}
	t.Cleanup(func() { _ = sentinel.Process.Kill(); _ = sentinel.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sentinel did not start")
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}

	srv := startServer(t, map[string]string{
		"EVENTGATE_REDIS_URL":  "redis://127.0.0.1:" + port + "/0?master_name=egmaster",
		"EVENTGATE_STREAM_KEY": "sentinel:events",
	})
	st := openStream(t, srv.URL()+"/api/v1/stream", nil)
	defer st.Close()
	ids := mustPublish(t, srv.URL(), progressBatch(newUUID(), 3), 3)
	requireIDs(t, "through sentinel", frameIDs(st.events(t, 3, 10*time.Second)), ids)
	if page := history(t, srv.URL(), "after=0"); len(page.Events) != 3 {
		t.Fatalf("history through sentinel: %d events", len(page.Events))
	}
}
