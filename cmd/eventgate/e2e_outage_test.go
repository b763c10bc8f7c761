package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// privateRedis is a redis-server of the test's own, persisting to an AOF in dir, so it can be
// stopped and started again with its data: a real outage, not a mock.
type privateRedis struct {
	t    *testing.T
	bin  string
	dir  string
	port string
	cmd  *exec.Cmd
	done chan struct{}
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	bin := os.Getenv("EVENTGATE_TEST_REDIS_SERVER")
	if bin == "" {
		bin, _ = exec.LookPath("redis-server")
	}
	if bin == "" {
		if os.Getenv("EVENTGATE_TEST_REQUIRE_REDIS") == "1" {
			t.Fatal("EVENTGATE_TEST_REDIS_SERVER is not set (run the suite with `go tool task test`)")
		}
		t.Skip("EVENTGATE_TEST_REDIS_SERVER not set")
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	r := &privateRedis{t: t, bin: bin, dir: t.TempDir(), port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) url() string { return "redis://127.0.0.1:" + r.port + "/0" }

func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command(r.bin, "--port", r.port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "always", "--dir", r.dir,
		"--logfile", filepath.Join(r.dir, "redis.log"))
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("starting redis-server: %v", err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+r.port, time.Second); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			r.t.Fatalf("redis-server on %s did not start:\n%s", r.port, log)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// stop shuts the server down (SIGTERM: it flushes its AOF) and waits for it.
func (r *privateRedis) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

// eventuallyStatus polls url until it answers want.
func eventuallyStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := -1
		if resp, err := httpClient.Get(url); err == nil {
			got = resp.StatusCode
			resp.Body.Close()
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %d, want %d", url, got, want)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// TestE2ERedisOutage stops Redis under a live subscriber: publishing answers 503 in the error
// shape, the stream stays open with heartbeats, and when Redis returns the reader resumes from its
// last position: the subscriber gets every event once, in order.
func TestE2ERedisOutage(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t)
	srv := startServer(t, map[string]string{"EVENTGATE_REDIS_URL": r.url(), "EVENTGATE_STREAM_KEY": "outage:events"})
	st := openStream(t, srv.URL()+"/api/v1/stream", nil)
	defer st.Close()
	st.next(t, 10*time.Second) // retry: preamble: subscribed

	job := newUUID()
	before := mustPublish(t, srv.URL(), progressBatch(job, 3), 3)
	requireIDs(t, "before the outage", frameIDs(st.events(t, 3, 10*time.Second)), before)

	r.stop()
	status, _, raw := publish(t, srv.URL(), jobProgress(job, 50), nil)
	expectError(t, status, raw, http.StatusServiceUnavailable, "store_unavailable")
	eventuallyStatus(t, srv.URL()+"/readyz", http.StatusServiceUnavailable)
	// The stream stays open through the outage: heartbeats keep coming.
	for pings := 0; pings < 2; {
		if f := st.next(t, 10*time.Second); f.isEvent() {
			t.Fatalf("event %+v during the outage", f)
		} else if len(f.Comments) > 0 {
			pings++
		}
	}

	r.start()
	eventuallyStatus(t, srv.URL()+"/readyz", http.StatusOK)
	after := mustPublish(t, srv.URL(), progressBatch(job, 4), 4)
	requireIDs(t, "after the outage", frameIDs(st.events(t, 4, 20*time.Second)), after)

	// A client resuming from before the outage gets everything once, in order.
	again := openStream(t, srv.URL()+"/api/v1/stream?since="+before[0], nil)
	defer again.Close()
	want := append(append([]string{}, before[1:]...), after...)
	requireIDs(t, "resume across the outage (no resync)", frameIDs(again.events(t, len(want), 10*time.Second)), want)
}
