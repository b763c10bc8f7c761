package main

// End-to-end tests of the process's life: graceful shutdown and start-up configuration (§7).

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestE2EShutdownEndsStreams(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_SHUTDOWN_GRACE": "5s"})
	streams := []*sseStream{
		openStream(t, s.URL()+"/api/v1/stream", nil),
		openStream(t, s.URL()+"/api/v1/stream?topic=notes/*", nil),
	}
	ids := mustPublish(t, s.URL(), jobProgress(jobA, 1), 1)
	if f := streams[0].nextEvent(t, frameTimeout); f.ID != ids[0] {
		t.Fatalf("got %v, want %s", f, ids[0])
	}
	s.Signal()
	for i, st := range streams {
		frames := st.expectEnd(t, stopTimeout)
		var tail []frame // frames from the shutdown event on
		for j, f := range frames {
			if f.Event == "shutdown" {
				tail = frames[j:]
				break
			}
			if f.isEvent() {
				t.Fatalf("stream %d: unexpected %v before shutdown", i, f)
			}
		}
		if len(tail) < 2 {
			t.Fatalf("stream %d: frames %v, want event: shutdown then retry:", i, frames)
		}
		var d struct{ Type string }
		if json.Unmarshal([]byte(tail[0].Data), &d) != nil || d.Type != "shutdown" {
			t.Fatalf("stream %d: shutdown data %q, want {\"type\":\"shutdown\"}", i, tail[0].Data)
		}
		retry := tail[0].Retry
		if retry == "" {
			retry = tail[1].Retry
		}
		if ms, err := strconv.Atoi(retry); err != nil || ms <= 0 {
			t.Fatalf("stream %d: frames after shutdown %v, want a positive retry:", i, tail)
		}
		if st.err != nil {
			t.Fatalf("stream %d ended with %v, want a clean end", i, st.err)
		}
	}
	code, ok := s.Wait(stopTimeout)
	if !ok || code != 0 {
		t.Fatalf("exit code %d (exited: %v), want 0", code, ok)
	}
}

func TestE2EInvalidConfiguration(t *testing.T) {
	t.Parallel()
	cases := []struct{ env, value string }{
		{"EVENTGATE_RETENTION", "abc"},
		{"EVENTGATE_RETENTION", "0"},
		{"EVENTGATE_HEARTBEAT", "10ms"},
		{"EVENTGATE_REDIS_URL", "http://127.0.0.1:6379"},
		{"EVENTGATE_MAX_EVENT_BYTES", "1"},
		{"EVENTGATE_LOG_FORMAT", "xml"},
		{"EVENTGATE_TRUSTED_PROXIES", "not-a-cidr"},
		{"EVENTGATE_CATCHUP_WINDOW", "-1"},
		{"EVENTGATE_DISPATCH_INTERVAL", "1h"}, // would hold every fan-out back for an hour
		{"EVENTGATE_DISPATCH_INTERVAL", "-5ms"},
	}
	for _, tc := range cases {
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, binPath)
			cmd.Env = processEnv(map[string]string{"EVENTGATE_ADDR": "127.0.0.1:0", tc.env: tc.value})
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after 10s; stderr:\n%s", stderr.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != 2 {
				t.Fatalf("exit code %d (%v), want 2; stderr:\n%s", code, err, stderr.String())
			}
			out := strings.TrimRight(stderr.String(), "\n")
			if strings.Count(out, "\n") != 0 || !strings.Contains(out, tc.env) {
				t.Fatalf("stderr %q: want one line naming %s", out, tc.env)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %s to reject the configuration", d)
			}
		})
	}
}
