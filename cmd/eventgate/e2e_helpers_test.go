package main

// End-to-end test helpers: TestMain builds the real binary once; startServer runs it on a free
// loopback port; a minimal SSE client reads frames with deadlines (no sleeps as synchronisation).

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// binPath is the eventgate binary built by TestMain.
var binPath string

const (
	startTimeout = 15 * time.Second // until /healthz answers 200
	stopTimeout  = 15 * time.Second // from SIGTERM to exit
	frameTimeout = 10 * time.Second // for one expected SSE frame
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "eventgate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "eventgate")
	args := []string{"build", "-o", binPath}
	if raceEnabled() {
		args = append(args, "-race")
	}
	// go test puts $GOROOT/bin first in PATH, so this is the toolchain that built the test.
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building eventgate:", err)
		return 1
	}
	return m.Run()
}

// raceEnabled reports whether this test binary was built with -race (then so is the server).
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	return ok && slices.Contains(bi.Settings, debug.BuildSetting{Key: "-race", Value: "true"})
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *lockedBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// server is one running eventgate process.
type server struct {
	t          *testing.T
	name, addr string
	cmd        *exec.Cmd
	stderr     *lockedBuffer
	done       chan struct{} // closed when the process has exited
	state      *os.ProcessState
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("picking a port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// processEnv is the environment without inherited EVENTGATE_* variables, plus env.
func processEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		// The binary's own GC default applies unless a test sets GOGC.
		if !strings.HasPrefix(kv, "EVENTGATE_") && !strings.HasPrefix(kv, "GOGC=") {
			out = append(out, kv)
		}
	}
	if os.Getenv("GORACE") == "" {
		// A -race binary sleeps 1s at exit by default; races are still reported (exit code 66).
		out = append(out, "GORACE=atexit_sleep_ms=0")
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

var serverSeq atomic.Int32

// startServer starts eventgate with the test defaults plus env and waits until /healthz is 200.
// Unless env configures authentication (EVENTGATE_AUTH or a key), the server runs with
// EVENTGATE_AUTH=none; unless env sets EVENTGATE_CONNECT_RATE, the connect rate is generous
// (1000-S) so that tests opening many streams are not rate-limited by accident.
// The process is killed at cleanup if still running; its stderr is dumped if the test failed.
func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		full := map[string]string{"EVENTGATE_ADDR": freeAddr(t), "EVENTGATE_LOG_FORMAT": "json", "EVENTGATE_HEARTBEAT": "1s",
			"EVENTGATE_CONNECT_RATE": "1000-S"}
		if !configuresAuth(env) {
			full["EVENTGATE_AUTH"] = "none"
		}
		if os.Getenv("EVENTGATE_TEST_STORE") == "disk" && env["EVENTGATE_REDIS_URL"] == "" {
			full["EVENTGATE_DATA_DIR"] = t.TempDir() // the in-process store's tests, on a data folder (.ci/test.sh)
		}
		maps.Copy(full, env)
		s := &server{t: t, name: fmt.Sprintf("eventgate#%d", serverSeq.Add(1)), addr: full["EVENTGATE_ADDR"],
			stderr: &lockedBuffer{}, done: make(chan struct{}), cmd: exec.Command(binPath)}
		s.cmd.Env, s.cmd.Stderr = processEnv(full), s.stderr
		if err := s.cmd.Start(); err != nil {
			t.Fatalf("starting eventgate: %v", err)
		}
		go func() { _ = s.cmd.Wait(); s.state = s.cmd.ProcessState; close(s.done) }()
		t.Cleanup(func() {
			s.Kill()
			if out := s.stderr.String(); strings.Contains(out, "WARNING: DATA RACE") || strings.Contains(out, "panic:") {
				t.Errorf("%s reported a data race or a panic", s.name)
			}
			if t.Failed() {
				t.Logf("---- %s (%s) stderr ----\n%s---- end %s ----", s.name, s.addr, s.stderr.String(), s.name)
			}
		})
		if s.waitHealthy() {
			return s
		}
		// A port taken between freeAddr and the bind: try another one.
		if s.exited() && strings.Contains(s.stderr.String(), "EVENTGATE_ADDR") && attempt < 3 {
			continue
		}
		t.Fatalf("%s did not become healthy within %s (exited: %v)", s.name, startTimeout, s.exited())
	}
}

// configuresAuth reports whether env sets EVENTGATE_AUTH or a token key.
func configuresAuth(env map[string]string) bool {
	for _, k := range []string{"EVENTGATE_AUTH", "EVENTGATE_JWT_SECRET", "EVENTGATE_JWT_SECRET_FILE", "EVENTGATE_JWT_PUBLIC_KEY_FILE"} {
		if _, ok := env[k]; ok {
			return true
		}
	}
	return false
}

// waitHealthy polls /healthz until 200, the process exits or startTimeout passes. It only trusts
// /healthz once this process logged that it listens: another test's server could in theory have
// taken the port freeAddr picked.
func (s *server) waitHealthy() bool {
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline) && !s.exited(); {
		if strings.Contains(s.stderr.String(), `"msg":"eventgate listening"`) {
			if resp, err := httpClient.Get(s.URL() + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return true
				}
			}
		}
		select {
		case <-s.done:
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
	return false
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// URL is the server's base URL, e.g. http://127.0.0.1:12345.
func (s *server) URL() string { return "http://" + s.addr }

// Signal sends SIGTERM without waiting.
func (s *server) Signal() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		s.t.Fatalf("%s: SIGTERM: %v", s.name, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code (-1 if killed by a
// signal); ok is false on timeout.
func (s *server) Wait(timeout time.Duration) (code int, ok bool) {
	select {
	case <-s.done:
		return s.state.ExitCode(), true
	case <-time.After(timeout):
		return 0, false
	}
}

// Stop sends SIGTERM and checks that the process exits with code 0 within stopTimeout.
func (s *server) Stop() {
	s.t.Helper()
	start := time.Now()
	s.Signal()
	if code, ok := s.Wait(stopTimeout); !ok || code != 0 {
		s.t.Fatalf("%s: after SIGTERM: exited %v with code %d, want exit code 0 within %s", s.name, ok, code, stopTimeout)
	}
	s.t.Logf("%s stopped in %s", s.name, time.Since(start).Round(time.Millisecond))
}

// Kill sends SIGKILL and waits for the process to be gone. Idempotent.
func (s *server) Kill() {
	if !s.exited() {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// httpClient never uses a proxy (loopback only).
var httpClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true, MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}

// streamClient has no overall timeout: streams are closed by context.
var streamClient = &http.Client{Transport: httpClient.Transport}

// doRequest sends a request and returns status, headers and body.
func doRequest(t *testing.T, method, url, body string, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	resp, err := httpClient.Do(jsonRequest(t, method, url, body, headers))
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, resp.Header, raw
}

// jsonRequest builds a request with a JSON body (every body must be application/json) and headers.
func jsonRequest(t *testing.T, method, url, body string, headers map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

// publish POSTs body to /api/v1/events. ids is set when the answer is a 201 {"ids":[...]}.
func publish(t *testing.T, baseURL, body string, headers map[string]string) (status int, ids []string, raw []byte) {
	t.Helper()
	status, _, raw = doRequest(t, http.MethodPost, baseURL+"/api/v1/events", body, headers)
	if status == http.StatusCreated {
		var r struct{ IDs []string }
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("publish: 201 with body %s: %v", raw, err)
		}
		ids = r.IDs
	}
	return status, ids, raw
}

// mustPublish publishes and requires 201 with one id per event.
func mustPublish(t *testing.T, baseURL, body string, n int) []string {
	t.Helper()
	status, ids, raw := publish(t, baseURL, body, nil)
	if status != http.StatusCreated || len(ids) != n {
		t.Fatalf("publish: status %d body %s, want 201 with %d ids", status, raw, n)
	}
	return ids
}

// historyPage is GET /api/v1/events.
type historyPage struct {
	Events       []json.RawMessage
	Oldest, Next string
}

// history GETs /api/v1/events?query and requires 200.
func history(t *testing.T, baseURL, query string) historyPage {
	t.Helper()
	status, _, raw := doRequest(t, http.MethodGet, baseURL+"/api/v1/events?"+query, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/events?%s: status %d body %s", query, status, raw)
	}
	var p historyPage
	if err := json.Unmarshal(raw, &p); err != nil || p.Events == nil {
		t.Fatalf("history page %s (%v): want {\"events\":[...],\"oldest\",\"next\"}", raw, err)
	}
	return p
}

// historyIDs returns the ids of a page's events.
func historyIDs(t *testing.T, p historyPage) []string {
	t.Helper()
	out := make([]string, len(p.Events))
	for i, raw := range p.Events {
		out[i] = decodeEnvelope(t, string(raw)).ID
	}
	return out
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// expectError requires the status (0: any 4xx) and the error body (docs/api.md#errors)
// {"error":{"code":"<snake_case>","message":"..."}} with wantCode (if set); it returns the message.
func expectError(t *testing.T, status int, raw []byte, wantStatus int, wantCode string) string {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&body)
	code, msg := body.Error.Code, body.Error.Message
	switch {
	case wantStatus == 0 && (status < 400 || status > 499), wantStatus != 0 && status != wantStatus:
		t.Fatalf("status %d body %s, want %d", status, raw, wantStatus)
	case err != nil || !snakeCase.MatchString(code) || msg == "":
		t.Fatalf("error body %s (%v): want {\"error\":{\"code\":<snake_case>,\"message\":<text>}}", raw, err)
	case wantCode != "" && code != wantCode:
		t.Fatalf("error code %q (%s), want %q", code, msg, wantCode)
	}
	return msg
}

// envelope is a decoded event envelope (docs/api.md#envelope).
type envelope struct {
	ID, Type, Topic, Time string
	Data                  json.RawMessage
}

var timeFormat = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// decodeEnvelope checks the envelope's shape (exactly id, type, topic, time, data; time RFC 3339
// with milliseconds in UTC, near now) and returns it.
func decodeEnvelope(t *testing.T, raw string) envelope {
	t.Helper()
	var keys map[string]json.RawMessage
	var e envelope
	if json.Unmarshal([]byte(raw), &keys) != nil || json.Unmarshal([]byte(raw), &e) != nil || len(keys) != 5 ||
		keys["id"] == nil || keys["type"] == nil || keys["topic"] == nil || keys["time"] == nil || keys["data"] == nil {
		t.Fatalf("envelope %s: want exactly id, type, topic, time, data", raw)
	}
	parseID(t, e.ID)
	ts, err := time.Parse(time.RFC3339Nano, e.Time)
	if !timeFormat.MatchString(e.Time) || err != nil || time.Since(ts) > 10*time.Minute || time.Since(ts) < -time.Minute {
		t.Fatalf("envelope %s: time %q is not RFC 3339 UTC with milliseconds near now", raw, e.Time)
	}
	return e
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	canon := func(s string) []byte {
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			t.Fatalf("json %s: %v", s, err)
		}
		out, _ := json.Marshal(v)
		return out
	}
	return bytes.Equal(canon(a), canon(b))
}

// parseID parses "<ms>-<seq>" strictly (two uint64s).
func parseID(t *testing.T, s string) (ms, seq uint64) {
	t.Helper()
	msPart, seqPart, _ := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if err1 != nil || err2 != nil || strings.ContainsAny(s, "+ ") {
		t.Fatalf("id %q is not <ms>-<seq>", s)
	}
	return ms, seq
}

// idLess compares ids numerically, part by part (never as text: "9-0" < "10-0").
func idLess(t *testing.T, a, b string) bool {
	t.Helper()
	am, as := parseID(t, a)
	bm, bs := parseID(t, b)
	return am < bm || am == bm && as < bs
}

// requireIncreasing requires ids to strictly increase.
func requireIncreasing(t *testing.T, ids []string) {
	t.Helper()
	for i := 1; i < len(ids); i++ {
		if !idLess(t, ids[i-1], ids[i]) {
			t.Fatalf("ids not strictly increasing at %d: %q then %q (all: %v)", i, ids[i-1], ids[i], ids)
		}
	}
}

// requireIDs requires got == want, element by element.
func requireIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %d ids, want %d\ngot  %v\nwant %v", what, len(got), len(want), got, want)
	}
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Event bodies as producers send them.

const jobA = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"

func jobProgress(job string, pct int) string {
	return fmt.Sprintf(`{"type":"job.progress","data":{"job_id":%q,"percent":%d}}`, job, pct)
}

func jobQueued(job string) string {
	return fmt.Sprintf(`{"type":"job.queued","data":{"job_id":%q,"job_type":"export"}}`, job)
}

func noteCreated(note, title string) string {
	return fmt.Sprintf(`{"type":"note.created","data":{"note_id":%q,"title":%q}}`, note, title)
}

func queueStatus(pending, active int) string {
	return fmt.Sprintf(`{"type":"queue.status","data":{"pending":%d,"active":%d}}`, pending, active)
}

// batch joins event bodies into a JSON array.
func batch(events ...string) string { return "[" + strings.Join(events, ",") + "]" }

// progressBatch is n job.progress events for job.
func progressBatch(job string, n int) string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = jobProgress(job, i%101)
	}
	return batch(evs...)
}
