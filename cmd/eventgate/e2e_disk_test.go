package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// End-to-end tests of the on-disk store (EVENTGATE_DATA_DIR) against the real binary: what a
// 201 acknowledged survives a SIGKILL, and so do receipts, job state and webhooks.

// diskEnv is the environment of a server on the data folder dir, plus extra.
func diskEnv(dir string, extra map[string]string) map[string]string {
	env := map[string]string{"EVENTGATE_DATA_DIR": dir, "EVENTGATE_SHUTDOWN_GRACE": "2s"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// allHistory pages through GET /api/v1/events from the oldest event and returns every id.
func allHistory(t *testing.T, base string) []string {
	t.Helper()
	evs := allEvents(t, base)
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// allEvents pages through GET /api/v1/events from the oldest event and returns every event.
func allEvents(t *testing.T, base string) []envelope {
	t.Helper()
	var out []envelope
	for after := "0"; ; {
		p := history(t, base, "limit=1000&after="+after)
		if len(p.Events) == 0 {
			return out
		}
		for _, raw := range p.Events {
			out = append(out, decodeEnvelope(t, string(raw)))
		}
		after = out[len(out)-1].ID
	}
}

// TestE2EDiskSIGKILLDuringPublishing: 8 clients publish concurrently while the server is killed
// with SIGKILL. After a restart on the same folder every id that got a 201 is in history, in
// order, nothing twice; a subscriber that was connected resumes with Last-Event-ID and gets
// exactly what it missed, without resync: it never saw an event that was not on disk.
func TestE2EDiskSIGKILLDuringPublishing(t *testing.T) {
	t.Parallel()
	const clients, killAfter = 8, 300
	dir := t.TempDir()
	a := startServer(t, diskEnv(dir, nil))
	st := openStream(t, a.URL()+"/api/v1/stream?topic=*", nil)

	var (
		mu      sync.Mutex
		acked   []string
		batches = map[string]int{} // job id → events, of every batch sent (acknowledged or not)
		total   atomic.Int32
		wg      sync.WaitGroup
	)
	killed := make(chan struct{})
	for c := range clients {
		wg.Go(func() {
			for i := 0; ; i++ {
				body := jobProgress(jobA, (c*7+i)%101)
				if i%3 == 0 { // batches too, each of its own job: all of one or none
					job, n := newUUID(), 2+i%4
					mu.Lock()
					batches[job] = n
					mu.Unlock()
					body = progressBatch(job, n)
				}
				req, _ := http.NewRequest(http.MethodPost, a.URL()+"/api/v1/events", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := httpClient.Do(req)
				if err != nil {
					return // the server is gone
				}
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				var r struct{ IDs []string }
				if resp.StatusCode != http.StatusCreated || json.Unmarshal(raw, &r) != nil {
					select {
					case <-killed:
						return
					default:
						t.Errorf("client %d: publish answered %d %s", c, resp.StatusCode, raw)
						return
					}
				}
				mu.Lock()
				acked = append(acked, r.IDs...)
				mu.Unlock()
				total.Add(int32(len(r.IDs)))
			}
		})
	}
	pollUntil(t, fmt.Sprintf("%d events acknowledged", killAfter), 30*time.Second, func() bool { return total.Load() >= killAfter })
	close(killed)
	a.Kill() // SIGKILL while the clients keep publishing
	wg.Wait()
	var seen []string
	for _, f := range st.expectEnd(t, frameTimeout) {
		if f.isEvent() {
			seen = append(seen, f.ID)
		}
	}
	if len(seen) == 0 {
		t.Fatal("the subscriber saw nothing before the kill")
	}

	b := startServer(t, diskEnv(dir, nil))
	evs := allEvents(t, b.URL())
	held := make([]string, len(evs))
	perJob := map[string]int{}
	for i, e := range evs {
		held[i] = e.ID
		var d struct {
			JobID string `json:"job_id"`
		}
		_ = json.Unmarshal(e.Data, &d)
		perJob[d.JobID]++
	}
	requireIncreasing(t, held) // in order, nothing twice
	for job, n := range batches {
		if got := perJob[job]; got != 0 && got != n {
			t.Fatalf("a batch of %d events is held in part after SIGKILL: %d of them", n, got)
		}
	}
	index := make(map[string]int, len(held))
	for i, id := range held {
		index[id] = i
	}
	for _, id := range acked {
		if _, ok := index[id]; !ok {
			t.Fatalf("id %s was acknowledged with 201 but is not in history after SIGKILL (%d acknowledged, %d held)", id, len(acked), len(held))
		}
	}
	for _, id := range seen {
		if _, ok := index[id]; !ok {
			t.Fatalf("the subscriber saw %s, which is not in history after SIGKILL", id)
		}
	}
	last := seen[len(seen)-1]
	missed := held[index[last]+1:]
	t.Logf("%d acknowledged, %d held after SIGKILL; the subscriber saw %d and missed %d", len(acked), len(held), len(seen), len(missed))

	again := openStream(t, b.URL()+"/api/v1/stream?topic=*", map[string]string{"Last-Event-ID": last})
	got := again.events(t, len(missed), frameTimeout)
	for _, f := range got {
		if f.Event == "resync" {
			t.Fatalf("resume after SIGKILL from %s got a resync: %s", last, f.Data)
		}
	}
	requireIDs(t, "resumed after SIGKILL", frameIDs(got), missed)
	live := mustPublish(t, b.URL(), jobProgress(jobA, 99), 1)
	if f := again.nextEvent(t, frameTimeout); f.ID != live[0] {
		t.Fatalf("after the missed events got %v, want live %s", f, live[0])
	}
}

// TestE2EDiskIdempotencyAfterRestart: a key repeated after a SIGKILL and restart returns the first
// ids and appends nothing.
func TestE2EDiskIdempotencyAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startServer(t, diskEnv(dir, nil))
	key := map[string]string{"Idempotency-Key": "order-" + newUUID()}
	status, first, raw := publish(t, a.URL(), progressBatch(jobA, 3), key)
	if status != http.StatusCreated || len(first) != 3 {
		t.Fatalf("first publish: %d %s", status, raw)
	}
	a.Kill()
	b := startServer(t, diskEnv(dir, nil))
	status, hdr, raw := doRequest(t, http.MethodPost, b.URL()+"/api/v1/events", progressBatch(jobA, 3), key)
	var r struct{ IDs []string }
	if status != http.StatusCreated || json.Unmarshal(raw, &r) != nil || !slices.Equal(r.IDs, first) || hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("repeat after restart: %d %s (replayed %q), want 201 with %v", status, raw, hdr.Get("Idempotent-Replayed"), first)
	}
	requireIDs(t, "history", allHistory(t, b.URL()), first)
}

// TestE2EDiskJobsAndWebhooksSurvive: job state, an endpoint and its pending deliveries survive a
// SIGKILL; deliveries continue after the restart.
func TestE2EDiskJobsAndWebhooksSurvive(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := hookEnv(diskEnv(dir, map[string]string{"EVENTGATE_WEBHOOK_RETRY_SCHEDULE": "200ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s"}))
	r := newHookReceiver(t, nil)
	a := startServer(t, env)
	w := registerHook(t, a.URL(), `{"url":"`+r.URL()+`","topics":["jobs/*"]}`)
	r.setSecret(w.Secret)
	r.down()
	job := newUUID()
	ids := mustPublish(t, a.URL(), batch(jobQueued(job), jobProgress(job, 10), jobProgress(job, 45)), 3)
	waitJob(t, a.URL(), job, func(st map[string]any) bool { return st["percent"] == 45.0 })
	pollUntil(t, "first attempts failed and were queued", hookWait, func() bool {
		return len(hookDeliveries(t, a.URL(), w.ID)) >= 3
	})
	a.Kill()

	r.up()
	b := startServer(t, env)
	st := waitJob(t, b.URL(), job, func(map[string]any) bool { return true })
	if st["status"] != "running" || st["percent"] != 45.0 || st["last_event_id"] != ids[2] {
		t.Fatalf("job state after SIGKILL and restart: %v", st)
	}
	if got := getHook(t, b.URL(), w.ID); !got.Enabled || got.URL != r.URL() {
		t.Fatalf("endpoint after restart: %+v", got)
	}
	ids = append(ids, mustPublish(t, b.URL(), jobProgress(job, 60), 1)...)
	r.waitDelivered(t, ids, hookWait)
}

// refusedStart runs eventgate on the data folder dir and requires it to exit at once with a
// non-zero code and exactly one line naming EVENTGATE_DATA_DIR, which it returns.
func refusedStart(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(binPath)
	cmd.Env = processEnv(diskEnv(dir, map[string]string{"EVENTGATE_ADDR": freeAddr(t), "EVENTGATE_AUTH": "none"}))
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("eventgate exited 0; stderr:\n%s", stderr.String())
		}
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("eventgate still runs after %s; stderr:\n%s", startTimeout, stderr.String())
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		if strings.Contains(line, "EVENTGATE_DATA_DIR") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "eventgate: EVENTGATE_DATA_DIR="+dir) {
		t.Fatalf("stderr:\n%s\nwant one line naming EVENTGATE_DATA_DIR=%s", stderr.String(), dir)
	}
	return lines[0]
}

// TestE2EDiskSecondProcessRefused: a second eventgate on the same folder exits at once with one
// line naming EVENTGATE_DATA_DIR; the first keeps serving.
func TestE2EDiskSecondProcessRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startServer(t, diskEnv(dir, nil))
	if line := refusedStart(t, dir); !strings.Contains(line, "in use") {
		t.Fatalf("refusal %q does not say the folder is in use", line)
	}
	mustPublish(t, a.URL(), jobProgress(jobA, 5), 1)
}

// TestE2EDiskUnreadableFolder: a folder that is not a readable store stops start-up with one line
// naming the variable and the file, and how to start over; nothing is created in it.
func TestE2EDiskUnreadableFolder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(dir string) error
		want  string
	}{
		{"foreign files", func(dir string) error { return os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("x"), 0o600) }, "notes.txt"},
		{"corrupt marker", func(dir string) error { return os.WriteFile(filepath.Join(dir, "EVENTGATE"), []byte("{"), 0o600) }, "EVENTGATE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			if err := tc.setup(dir); err != nil {
				t.Fatal(err)
			}
			line := refusedStart(t, dir)
			if !strings.Contains(line, tc.want) || !strings.Contains(line, "move the folder away") {
				t.Fatalf("refusal %q: want it to name %s and say how to start over", line, tc.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 2 { // the file and Pebble's LOCK
				t.Fatalf("the refused start left %d entries in the folder", len(entries))
			}
		})
	}
}

// TestE2EDiskWipedFolderGivesResync: a restart on the folder resumes without resync; after the
// folder is emptied, old positions get resync, also once the new log was appended to.
func TestE2EDiskWipedFolderGivesResync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := startServer(t, diskEnv(dir, nil))
	old := mustPublish(t, a.URL(), progressBatch(jobA, 2), 2)
	a.Stop()
	a = startServer(t, diskEnv(dir, nil))
	kept := openStream(t, a.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": old[0]})
	if f := kept.nextEvent(t, frameTimeout); f.ID != old[1] {
		t.Fatalf("resume after a restart on the folder got %v, want %s", f, old[1])
	}
	kept.Close()
	a.Stop()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	b := startServer(t, diskEnv(dir, nil))
	fresh := mustPublish(t, b.URL(), jobProgress(jobA, 77), 1)
	st := openStream(t, b.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": old[0]})
	expectResync(t, st.nextEvent(t, frameTimeout), "position_unknown", old[0])
	if f := st.nextEvent(t, frameTimeout); f.ID != fresh[0] {
		t.Fatalf("after the resync got %v, want %s", f, fresh[0])
	}
}

// TestE2EDiskRetentionAfterRestart: EVENTGATE_RETENTION caps the log across restarts; a trimmed
// position gets resync.
func TestE2EDiskRetentionAfterRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := diskEnv(dir, map[string]string{"EVENTGATE_RETENTION": "50"})
	a := startServer(t, env)
	first := mustPublish(t, a.URL(), progressBatch(jobA, 40), 40)
	a.Kill()
	b := startServer(t, env)
	requireIDs(t, "held after the restart", allHistory(t, b.URL()), first)
	var last []string
	for range 4 {
		last = mustPublish(t, b.URL(), progressBatch(jobA, 20), 20)
	}
	held := allHistory(t, b.URL())
	if n := len(held); n < 50 || n > 55 || held[n-1] != last[19] {
		t.Fatalf("%d events held with EVENTGATE_RETENTION=50 (the last %s), want 50 to 55 ending with %s", n, held[n-1], last[19])
	}
	st := openStream(t, b.URL()+"/api/v1/stream", map[string]string{"Last-Event-ID": first[0]})
	r := expectResync(t, st.nextEvent(t, frameTimeout), "history_truncated", first[0])
	if r.Oldest != held[0] {
		t.Fatalf("resync oldest %s, want %s", r.Oldest, held[0])
	}
	// The store's metrics: its size, its commits, what the retention trimmed (here, since the
	// restart: 40 + 80 − the ≤ 55 held).
	_, _, raw := doRequest(t, http.MethodGet, b.URL()+"/metrics", "", nil)
	for _, want := range []struct {
		series string
		least  float64
	}{
		{"eventgate_disk_bytes", 1},
		{"eventgate_disk_commit_seconds_count", 4},
		{"eventgate_disk_trimmed_events_total", 65},
	} {
		if v := metricValue(string(raw), want.series); v < want.least {
			t.Errorf("%s = %v, want at least %v", want.series, v, want.least)
		}
	}
}

// metricValue returns the value of an unlabelled series in a /metrics text (-1 if absent).
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}
