package main

// End-to-end tests of the client subcommands: the built binary runs `publish` and `tail` against
// servers started by startServer. tail must print every event exactly once, in order, across a
// server restart on the same address (Redis store), and exit non-zero on refusals.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliTimeout bounds one publish run.
const cliTimeout = 30 * time.Second

// runCLI runs the binary with args, env (no inherited EVENTGATE_*) and stdin; it returns the exit
// code, stdout and stderr.
func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env, cmd.Stdin = processEnv(env), strings.NewReader(stdin)
	var out, errs strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errs
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("eventgate %v did not finish within %s; stderr:\n%s", args, cliTimeout, errs.String())
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("eventgate %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errs.String()
}

// tailProc is a running `eventgate tail`: its stdout lines arrive on lines.
type tailProc struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *lockedBuffer
	done   chan struct{}
}

// startTailCLI starts `eventgate tail args...`; it is killed at cleanup if still running, and
// its stderr is logged if the test failed.
func startTailCLI(t *testing.T, env map[string]string, args ...string) *tailProc {
	t.Helper()
	p := &tailProc{cmd: exec.Command(binPath, append([]string{"tail"}, args...)...), lines: make(chan string, 10000),
		stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd.Env, p.cmd.Stderr = processEnv(env), p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting eventgate tail: %v", err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("---- eventgate tail stderr ----\n%s---- end ----", p.stderr.String())
		}
	})
	return p
}

// next returns the next n stdout lines, failing after timeout.
func (p *tailProc) next(t *testing.T, n int, timeout time.Duration) []string {
	t.Helper()
	deadline := time.After(timeout)
	out := make([]string, 0, n)
	for len(out) < n {
		select {
		case l := <-p.lines:
			out = append(out, l)
		case <-p.done:
			t.Fatalf("tail exited after %d of %d lines: %v", len(out), n, out)
		case <-deadline:
			t.Fatalf("tail printed %d of %d lines within %s: %v", len(out), n, timeout, out)
		}
	}
	return out
}

// exitCode waits up to timeout for tail to exit by itself.
func (p *tailProc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		t.Fatalf("tail did not exit within %s", timeout)
		return -1
	}
}

// waitStderr waits until ok(stderr) holds; stderr is copied by another goroutine, so it may lag
// behind stdout. It fails after timeout.
func (p *tailProc) waitStderr(t *testing.T, what string, ok func(string) bool) {
	t.Helper()
	for deadline := time.Now().Add(frameTimeout); !ok(p.stderr.String()); {
		if time.Now().After(deadline) {
			t.Fatalf("tail's stderr does not show %s:\n%s", what, p.stderr.String())
		}
		select {
		case <-p.done:
		case <-time.After(10 * time.Millisecond): // poll interval
		}
	}
}

// stop sends SIGTERM and requires exit code 0.
func (p *tailProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exitCode(t, stopTimeout); code != 0 {
		t.Fatalf("tail exited %d after SIGTERM, want 0", code)
	}
}

// lineIDs decodes each line as an envelope and returns the ids.
func lineIDs(t *testing.T, lines []string) []string {
	t.Helper()
	ids := make([]string, len(lines))
	for i, l := range lines {
		ids[i] = decodeEnvelope(t, l).ID
	}
	return ids
}

func TestE2ECLIPublishAndTail(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none"})
	cli := map[string]string{"EVENTGATE_URL": s.URL()}
	note := newUUID()
	stdin := jobQueued(jobA) + "\n" + jobProgress(jobA, 50) + "\n" + batch(noteCreated(note, "naïve ✓ \"quoted\""), queueStatus(2, 1)) + "\n"
	code, out, errs := runCLI(t, cli, stdin, "publish", "--batch-size", "3")
	if code != 0 {
		t.Fatalf("publish from stdin: exit %d, stderr %s", code, errs)
	}
	ids := strings.Fields(out)
	code, out, errs = runCLI(t, cli, "", "publish", jobProgress(jobA, 100), batch(queueStatus(0, 0)))
	if code != 0 {
		t.Fatalf("publish from arguments: exit %d, stderr %s", code, errs)
	}
	ids = append(ids, strings.Fields(out)...)
	if len(ids) != 6 {
		t.Fatalf("publish printed %d ids, want 6: %q", len(ids), ids)
	}
	requireIncreasing(t, ids)
	page := history(t, s.URL(), "after=0")
	requireIDs(t, "history after publish", historyIDs(t, page), ids)

	// tail replays them byte for byte (one envelope per line), then prints live events.
	tp := startTailCLI(t, cli, "--since", "0", "--heartbeat", "1s")
	got := tp.next(t, 6, frameTimeout)
	for i := range got {
		if got[i] != string(page.Events[i]) {
			t.Fatalf("tail line %d:\n%s\nwant the history envelope\n%s", i, got[i], page.Events[i])
		}
	}
	live := mustPublish(t, s.URL(), jobProgress(jobA, 1), 1)
	requireIDs(t, "live", lineIDs(t, tp.next(t, 1, frameTimeout)), live)
	tp.stop(t)

	// Filters: only jobs/<jobA> progress.
	ft := startTailCLI(t, cli, "--since", "0", "--topic", "jobs/"+jobA, "--type", "job.progress", "--type", "job.completed")
	requireIDs(t, "filtered", lineIDs(t, ft.next(t, 3, frameTimeout)), []string{ids[1], ids[4], live[0]})
	ft.stop(t)
}

func TestE2ECLIPublishErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none"})
	for _, tc := range []struct {
		name, url string
		args      []string
		code      int
		stderr    string
	}{
		{"invalid event", s.URL(), []string{`{"type":"job.progress","data":{"job_id":"` + jobA + `","percent":140}}`}, 1, "400 invalid_event: "},
		{"unknown type", s.URL(), []string{`{"type":"job.exploded","data":{}}`}, 1, "job.exploded"},
		{"unreachable", "http://" + freeAddr(t), []string{"--retry-for", "0", queueStatus(1, 1)}, 1, "connection refused"},
		{"malformed input", s.URL(), []string{`{"type":`}, 2, "invalid input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, map[string]string{"EVENTGATE_URL": tc.url}, "", append([]string{"publish"}, tc.args...)...)
			if code != tc.code || out != "" || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("exit %d stdout %q stderr %q, want %d and %q", code, out, errs, tc.code, tc.stderr)
			}
		})
	}
	// Nothing was appended by the refused requests.
	if p := history(t, s.URL(), "after=0"); len(p.Events) != 0 {
		t.Fatalf("history holds %d events, want 0", len(p.Events))
	}
}

// TestE2ECLITailRestart: tail follows a Redis-backed eventgate that is stopped and started again
// on the same address; events published meanwhile by a producer's XADD come through, every event
// exactly once, in order.
func TestE2ECLITailRestart(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sigterm", "sigkill"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			client, key, env := redisSetup(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_RETRY": "200ms", "EVENTGATE_SHUTDOWN_GRACE": "2s"})
			a := startServer(t, env)
			env["EVENTGATE_ADDR"] = a.addr // the restarted server comes back on the same address
			tp := startTailCLI(t, map[string]string{"EVENTGATE_URL": a.URL()}, "--since", "0", "--heartbeat", "1s", "--max-backoff", "1s")

			want := mustPublish(t, a.URL(), progressBatch(jobA, 3), 3)
			requireIDs(t, "before the restart", lineIDs(t, tp.next(t, 3, frameTimeout)), want)
			if mode == "sigterm" {
				a.Stop()
			} else {
				a.Kill()
			}
			// While eventgate is down, a producer appends directly (one invalid entry is skipped).
			want = append(want, xadd(t, client, key, "event", queueStatus(5, 1)))
			xadd(t, client, key, "event", `{"type":"nope","data":{}}`)
			want = append(want, xadd(t, client, key, "event", jobProgress(jobA, 60)), xadd(t, client, key, "event", noteCreated(newUUID(), "offline")))

			b := startServer(t, env)
			want = append(want, mustPublish(t, b.URL(), batch(jobProgress(jobA, 70), jobProgress(jobA, 80)), 2)...)
			requireIDs(t, "across the restart", lineIDs(t, tp.next(t, 5, 3*frameTimeout)), want[3:])
			// Exactly once: the next line is the next event, not a repeat of an earlier one.
			marker := mustPublish(t, b.URL(), queueStatus(0, 0), 1)
			requireIDs(t, "after the restart", lineIDs(t, tp.next(t, 1, frameTimeout)), marker)

			tp.waitStderr(t, "the reconnect", func(errs string) bool {
				return strings.Count(errs, "connected to") >= 2 && (mode == "sigkill" || strings.Contains(errs, "shutting down"))
			})
			tp.stop(t)
		})
	}
}

func TestE2ECLITailResync(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_RETENTION": "10"})
	ids := mustPublish(t, s.URL(), progressBatch(jobA, 30), 30)
	tp := startTailCLI(t, map[string]string{"EVENTGATE_URL": s.URL()}, "--since", ids[0])
	held := history(t, s.URL(), "after=0")
	got := lineIDs(t, tp.next(t, len(held.Events), frameTimeout))
	requireIDs(t, "after resync", got, historyIDs(t, held))
	if len(got) >= 29 || got[len(got)-1] != ids[29] {
		t.Fatalf("tail printed %v, want the retained tail of %v", got, ids)
	}
	tp.waitStderr(t, "the resync", func(errs string) bool {
		return strings.Contains(errs, "resync (history_truncated)") && strings.Contains(errs, "after "+ids[0])
	})
	tp.stop(t)
}

// hs256 signs claims as an HS256 JWT.
func hs256(t *testing.T, secret string, claims map[string]any) string {
	t.Helper()
	enc := base64.RawURLEncoding
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil))
}

func TestE2ECLIAuth(t *testing.T) {
	t.Parallel()
	const secret = "cli-test-secret-0123456789abcdefghijklmnop"
	s := startServer(t, map[string]string{"EVENTGATE_JWT_SECRET": secret})
	if status, _, _ := doRequest(t, http.MethodGet, s.URL()+"/api/v1/events", "", nil); status != http.StatusUnauthorized {
		t.Skipf("the binary does not enforce EVENTGATE_JWT_SECRET yet (GET /api/v1/events without a token: %d)", status)
	}
	exp := time.Now().Add(time.Hour).Unix()
	publisher := hs256(t, secret, map[string]any{"sub": "cli-test", "exp": exp, "scope": "publish"})
	reader := hs256(t, secret, map[string]any{"sub": "cli-test", "exp": exp, "scope": "subscribe"})
	url := map[string]string{"EVENTGATE_URL": s.URL()}
	withToken := func(tok string) map[string]string {
		return map[string]string{"EVENTGATE_URL": s.URL(), "EVENTGATE_TOKEN": tok}
	}

	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		stderr string
	}{
		{"tail without a token", url, []string{"tail"}, 3, "401 unauthorized"},
		{"tail with a bad token", withToken(publisher + "x"), []string{"tail"}, 3, "401 unauthorized"},
		{"tail without the subscribe scope", withToken(publisher), []string{"tail"}, 3, "403 forbidden"},
		{"publish without a token", url, []string{"publish", queueStatus(1, 1)}, 1, "401 unauthorized"},
		{"publish without the publish scope", url, []string{"publish", "--token", reader, queueStatus(1, 1)}, 1, "403 forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, tc.env, "", tc.args...)
			if code != tc.code || out != "" || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("exit %d stdout %q stderr %q, want %d and %q", code, out, errs, tc.code, tc.stderr)
			}
			if strings.Contains(errs, publisher[len(publisher)-20:]) || strings.Contains(errs, reader[len(reader)-20:]) {
				t.Fatalf("a token was printed: %s", errs)
			}
		})
	}
	// With the right tokens both work.
	code, out, errs := runCLI(t, withToken(publisher), "", "publish", queueStatus(1, 1))
	if code != 0 {
		t.Fatalf("publish with a publish token: exit %d %s", code, errs)
	}
	tp := startTailCLI(t, withToken(reader), "--since", "0")
	requireIDs(t, "tail with a subscribe token", lineIDs(t, tp.next(t, 1, frameTimeout)), strings.Fields(out))
	tp.stop(t)
}

// docGoBlock returns the ```go block that follows the marker comment in file (relative to the
// repository root).
func docGoBlock(t *testing.T, file, marker string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(file)))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(raw), "<!-- e2e: "+marker+" ")
	if !ok {
		t.Fatalf("%s has no <!-- e2e: %s --> marker", file, marker)
	}
	_, after, _ = strings.Cut(after, "```go\n")
	block, _, ok := strings.Cut(after, "\n```")
	if !ok {
		t.Fatalf("%s: no code block after the %s marker", file, marker)
	}
	return block + "\n"
}

// TestE2EReadmeGoClient builds docs/clients.md's Go example (on package client of this checkout)
// and runs it across a server restart.
func TestE2EReadmeGoClient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(docGoBlock(t, "docs/clients.md", "clients-go")), 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	gomod := fmt.Sprintf("module readmego\n\ngo 1.26\n\nrequire github.com/eventgate/eventgate v0.0.0\n\nreplace github.com/eventgate/eventgate => %q\n", root)
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", "client", ".")
	// -mod=mod: go.mod gets the go line the replaced module needs; package client needs no
	// module beyond the standard library, so nothing is downloaded.
	build.Dir, build.Env = dir, append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off", "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the Go example of docs/clients.md: %v\n%s", err, out)
	}

	env := map[string]string{"EVENTGATE_AUTH": "none", "EVENTGATE_RETRY": "200ms", "EVENTGATE_SHUTDOWN_GRACE": "2s"}
	a := startServer(t, env)
	env["EVENTGATE_ADDR"] = a.addr
	client := &tailProc{cmd: exec.Command(filepath.Join(dir, "client")), lines: make(chan string, 100), stderr: &lockedBuffer{}, done: make(chan struct{})}
	client.cmd.Env, client.cmd.Stderr = processEnv(map[string]string{"EVENTGATE_URL": a.URL()}), client.stderr
	stdout, err := client.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(client.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			client.lines <- sc.Text()
		}
		_ = client.cmd.Wait()
	}()
	t.Cleanup(func() { _ = client.cmd.Process.Kill(); <-client.done })

	want := mustPublish(t, a.URL(), batch(jobProgress(jobA, 10), queueStatus(1, 1), jobProgress(jobA, 20)), 3)
	for _, i := range []int{0, 2} { // topic=jobs/*: not the queue.status
		line := client.next(t, 1, frameTimeout)[0]
		typ, data, _ := strings.Cut(line, " ")
		if typ != "job.progress" || decodeEnvelope(t, data).ID != want[i] {
			t.Fatalf("the documented Go client printed %q, want job.progress %s", line, want[i])
		}
	}
	a.Stop()
	b := startServer(t, env) // same address; a new in-process log, so the client gets a resync first
	live := mustPublish(t, b.URL(), jobProgress(jobA, 30), 1)
	for {
		line := client.next(t, 1, 3*frameTimeout)[0]
		if strings.HasPrefix(line, "resync ") || strings.HasPrefix(line, "shutdown ") {
			continue // control events: the example prints every event it gets
		}
		if typ, data, _ := strings.Cut(line, " "); typ != "job.progress" || decodeEnvelope(t, data).ID != live[0] {
			t.Fatalf("after the restart the documented Go client printed %q, want job.progress %s", line, live[0])
		}
		break
	}
}
