package main

// End-to-end test of a Redis that stops answering without closing its connections (SIGSTOP: a
// stalled host, a long fork, a paused VM). Unlike a Redis that is down, every call then waits for
// its deadline: /readyz and publish must still answer in time, and a publish whose answer was a 503
// must be retried with its Idempotency-Key without appending twice.

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisFreeze stops the private redis-server's process (SIGSTOP) and returns the function that
// resumes it (SIGCONT); that function is idempotent and also runs at cleanup, before the server is
// shut down, so a failing test never leaves a stopped process behind.
func redisFreeze(t *testing.T, r *privateRedis) (thaw func()) {
	t.Helper()
	p := r.cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP redis-server: %v", err)
	}
	frozen := true
	thaw = func() {
		if frozen {
			frozen = false
			if err := p.Signal(syscall.SIGCONT); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("SIGCONT redis-server: %v", err)
			}
		}
	}
	t.Cleanup(thaw) // cleanups run last-in first-out: before startPrivateRedis's stop
	return thaw
}

// timedRequest sends one request with a client timeout and returns the answer and how long it
// took; a client timeout fails the test (the server must answer first).
func timedRequest(t *testing.T, timeout time.Duration, method, url, body string, headers map[string]string) (int, http.Header, []byte, time.Duration) {
	t.Helper()
	client := &http.Client{Transport: httpClient.Transport, Timeout: timeout}
	req := jsonRequest(t, method, url, body, headers)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: no answer within %s: %v", method, url, timeout, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	return resp.StatusCode, resp.Header, raw, time.Since(start)
}

// TestE2ERedisFrozen: while Redis is frozen, /readyz answers 503 within its 2 s budget and a
// publish answers 503 within a few seconds (generous client timeouts here, so a slow machine does
// not fail the test: what must not happen is waiting on the socket); once Redis resumes, the
// publish retried with the same Idempotency-Key yields the event exactly once in the log, and a
// further retry replays the same ids.
func TestE2ERedisFrozen(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t)
	srv := startServer(t, map[string]string{"EVENTGATE_REDIS_URL": r.url(), "EVENTGATE_STREAM_KEY": "frozen:events"})
	job := newUUID()
	before := mustPublish(t, srv.URL(), jobProgress(job, 1), 1)

	thaw := redisFreeze(t, r)
	status, _, raw, took := timedRequest(t, 4*time.Second, http.MethodGet, srv.URL()+"/readyz", "", nil)
	expectError(t, status, raw, http.StatusServiceUnavailable, "")
	t.Logf("/readyz answered %d in %s while Redis was frozen", status, took.Round(time.Millisecond))

	key := map[string]string{"Idempotency-Key": "frozen-" + newUUID()}
	body := jobProgress(job, 50)
	status, h, raw, took := timedRequest(t, 8*time.Second, http.MethodPost, srv.URL()+"/api/v1/events", body, key)
	if code := expectError(t, status, raw, http.StatusServiceUnavailable, ""); h.Get("Retry-After") == "" {
		t.Errorf("publish: 503 (%s) without Retry-After", code)
	}
	t.Logf("publish answered %d %s in %s while Redis was frozen", status, raw, took.Round(time.Millisecond))

	thaw()
	eventuallyStatus(t, srv.URL()+"/readyz", http.StatusOK)
	// The frozen publish may or may not have been appended (its commands were in Redis's socket
	// buffer): the retry either replays it or appends it, never both.
	var ids []string
	for deadline := time.Now().Add(20 * time.Second); ; {
		var raw []byte
		if status, ids, raw = publish(t, srv.URL(), body, key); status == http.StatusCreated {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retried publish: %d %s, want 201 once Redis is back", status, raw)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	if len(ids) != 1 {
		t.Fatalf("retried publish: ids %v, want one", ids)
	}
	status, h, raw = doRequest(t, http.MethodPost, srv.URL()+"/api/v1/events", body, key)
	if status != http.StatusCreated || h.Get("Idempotent-Replayed") != "true" || !jsonEqual(t, string(raw), `{"ids":["`+ids[0]+`"]}`) {
		t.Fatalf("second retry: %d %s (Idempotent-Replayed %q), want the replayed ids %v", status, raw, h.Get("Idempotent-Replayed"), ids)
	}
	requireIDs(t, "the log after the frozen publish", historyIDs(t, history(t, srv.URL(), "after="+before[0])), ids)
}

// TestE2ECLIPublishFrozenRedis: `eventgate publish` against a server whose Redis is frozen gets a
// 503, retries with the same Idempotency-Key, and once Redis resumes it exits 0 with the event in
// the log exactly once.
func TestE2ECLIPublishFrozenRedis(t *testing.T) {
	t.Parallel()
	r := startPrivateRedis(t)
	srv := startServer(t, map[string]string{"EVENTGATE_REDIS_URL": r.url(), "EVENTGATE_STREAM_KEY": "frozencli:events"})
	before := mustPublish(t, srv.URL(), queueStatus(0, 0), 1)

	thaw := redisFreeze(t, r)
	cmd := exec.Command(binPath, "publish", queueStatus(7, 7))
	var out, errs lockedBuffer
	cmd.Env, cmd.Stdout, cmd.Stderr = processEnv(map[string]string{"EVENTGATE_URL": srv.URL()}), &out, &errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(errs.String(), "retrying in"); {
		if time.Now().After(deadline) {
			t.Fatalf("eventgate publish announced no retry within 30s; stderr %q", errs.String())
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	thaw()
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("eventgate publish: %v; stderr %q", err, errs.String())
		}
	case <-time.After(cliTimeout):
		t.Fatalf("eventgate publish did not finish within %s after Redis resumed; stderr %q", cliTimeout, errs.String())
	}
	t.Logf("eventgate publish stderr: %s", errs.String())
	ids := strings.Fields(out.String())
	if len(ids) != 1 {
		t.Fatalf("eventgate publish printed %q, want one id", out.String())
	}
	requireIDs(t, "the log after the frozen publish", historyIDs(t, history(t, srv.URL(), "after="+before[0])), ids)
}
