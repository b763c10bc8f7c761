package main

// End-to-end test helpers: TestMain builds the real binary once; startServer runs it on a free
// loopback port; a minimal SSE client reads frames with deadlines (no sleeps as synchronisation).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
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
	args = append(args, ".")
	// go test puts $GOROOT/bin first in PATH, so this is the toolchain that built the test.
	cmd := exec.Command("go", args...)
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
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
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

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// server is one running eventgate process.
type server struct {
	t      *testing.T
	name   string
	addr   string
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited
	state  *os.ProcessState
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("picking a port: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// processEnv is the environment without inherited EVENTGATE_* variables, plus env.
func processEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "EVENTGATE_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// startServer starts eventgate with the test defaults plus env and waits until /healthz is 200.
// The process is killed at cleanup if still running; its stderr is dumped if the test failed.
func startServer(t *testing.T, env map[string]string) *server {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s, retry := tryStart(t, env)
		if s != nil {
			return s
		}
		if !retry || attempt == 3 {
			t.Fatalf("eventgate did not start")
		}
	}
}

var serverSeq struct {
	sync.Mutex
	n int
}

func tryStart(t *testing.T, env map[string]string) (*server, bool) {
	t.Helper()
	full := map[string]string{
		"EVENTGATE_ADDR":       freeAddr(t),
		"EVENTGATE_LOG_FORMAT": "json",
		"EVENTGATE_HEARTBEAT":  "1s",
	}
	for k, v := range env {
		full[k] = v
	}
	serverSeq.Lock()
	serverSeq.n++
	name := fmt.Sprintf("eventgate#%d", serverSeq.n)
	serverSeq.Unlock()
	s := &server{t: t, name: name, addr: full["EVENTGATE_ADDR"], stderr: &lockedBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(binPath)
	s.cmd.Env = processEnv(full)
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting eventgate: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.done)
	}()
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			t.Logf("---- %s (%s) stderr ----\n%s---- end %s ----", s.name, s.addr, s.stderr.String(), s.name)
		}
	})

	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			// A port taken between freeAddr and the bind: try another one.
			retry := strings.Contains(s.stderr.String(), "EVENTGATE_ADDR")
			if !retry {
				t.Errorf("%s exited during start-up with %v", s.name, s.state)
			}
			return nil, retry
		default:
		}
		resp, err := httpClient.Get(s.URL() + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, false
			}
		}
		select {
		case <-s.done:
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
	t.Errorf("%s: /healthz not 200 within %s", s.name, startTimeout)
	return nil, false
}

// URL is the server's base URL, e.g. http://127.0.0.1:12345.
func (s *server) URL() string { return "http://" + s.addr }

// Stderr returns what the process wrote to stderr so far.
func (s *server) Stderr() string { return s.stderr.String() }

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
	code, ok := s.Wait(stopTimeout)
	if !ok {
		s.t.Fatalf("%s: still running %s after SIGTERM", s.name, stopTimeout)
	}
	if code != 0 {
		s.t.Fatalf("%s: exit code %d after SIGTERM, want 0 (%v)", s.name, code, s.state)
	}
	s.t.Logf("%s stopped in %s", s.name, time.Since(start).Round(time.Millisecond))
}

// Kill sends SIGKILL and waits for the process to be gone. Idempotent.
func (s *server) Kill() {
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.done
}

var httpClient = &http.Client{
	Transport: &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DisableCompression:  true,
		MaxIdleConnsPerHost: 16,
	},
	Timeout: 30 * time.Second,
}

// streamClient has no overall timeout: streams are closed by context.
var streamClient = &http.Client{Transport: httpClient.Transport}

// frame is one SSE block (lines up to a blank line), as the server wrote it.
type frame struct {
	ID       string
	HasID    bool
	Event    string
	Data     string
	HasData  bool
	Retry    string
	Comments []string
}

// isEvent reports whether the frame carries an event (not only a comment or retry hint).
func (f frame) isEvent() bool { return f.HasData || f.Event != "" }

func (f frame) String() string {
	return fmt.Sprintf("{id=%q event=%q data=%q retry=%q comments=%q}", f.ID, f.Event, f.Data, f.Retry, f.Comments)
}

// sseStream is an open SSE response read by a goroutine into frames.
type sseStream struct {
	Resp   *http.Response
	frames chan frame
	done   chan struct{}
	cancel context.CancelFunc
	err    error // read error at the end (nil: clean EOF); valid once done is closed
}

// openStream GETs url and requires a 200 text/event-stream response. Closed at cleanup.
func openStream(t *testing.T, url string, headers map[string]string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := streamClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		t.Fatalf("GET %s: status %d, want 200; body %s", url, resp.StatusCode, body)
	}
	s := &sseStream{Resp: resp, frames: make(chan frame, 4096), done: make(chan struct{}), cancel: cancel}
	go s.read(ctx)
	t.Cleanup(s.Close)
	return s
}

func (s *sseStream) read(ctx context.Context) {
	defer close(s.done)
	defer close(s.frames)
	sc := bufio.NewScanner(s.Resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var f frame
	empty := true
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if !empty {
				select {
				case s.frames <- f:
				case <-ctx.Done():
					return
				}
			}
			f, empty = frame{}, true
			continue
		}
		empty = false
		if c, ok := strings.CutPrefix(line, ":"); ok {
			f.Comments = append(f.Comments, strings.TrimPrefix(c, " "))
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			f.ID, f.HasID = value, true
		case "event":
			f.Event = value
		case "data":
			if f.HasData {
				f.Data += "\n"
			}
			f.Data += value
			f.HasData = true
		case "retry":
			f.Retry = value
		}
	}
	s.err = sc.Err()
}

// Close cancels the request and waits for the reader. Idempotent.
func (s *sseStream) Close() {
	s.cancel()
	s.Resp.Body.Close()
	<-s.done
}

// next returns the next frame; it fails the test on timeout or if the stream ended.
func (s *sseStream) next(t *testing.T, timeout time.Duration) frame {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case f, ok := <-s.frames:
		if !ok {
			t.Fatalf("stream ended (err %v) while waiting for a frame", s.err)
		}
		return f
	case <-timer.C:
		t.Fatalf("no frame within %s", timeout)
	}
	panic("unreachable")
}

// nextEvent returns the next frame that carries an event, skipping heartbeats and retry hints.
func (s *sseStream) nextEvent(t *testing.T, timeout time.Duration) frame {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f := s.next(t, max(time.Until(deadline), time.Millisecond))
		if f.isEvent() {
			return f
		}
	}
}

// events returns the next n event frames, within timeout overall.
func (s *sseStream) events(t *testing.T, n int, timeout time.Duration) []frame {
	t.Helper()
	deadline := time.Now().Add(timeout)
	out := make([]frame, 0, n)
	for len(out) < n {
		out = append(out, s.nextEvent(t, max(time.Until(deadline), time.Millisecond)))
	}
	return out
}

// untilID returns the event frames up to and including the one with id, within timeout.
func (s *sseStream) untilID(t *testing.T, id string, timeout time.Duration) []frame {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var out []frame
	for {
		f := s.nextEvent(t, max(time.Until(deadline), time.Millisecond))
		out = append(out, f)
		if f.ID == id {
			return out
		}
	}
}

// expectEnd waits for the stream to end and returns the frames that came before the end.
func (s *sseStream) expectEnd(t *testing.T, timeout time.Duration) []frame {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var out []frame
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				return out
			}
			out = append(out, f)
		case <-timer.C:
			t.Fatalf("stream did not end within %s; frames meanwhile: %v", timeout, out)
		}
	}
}

// frameIDs returns the id: of each frame.
func frameIDs(fs []frame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	return out
}

// doRequest sends a request and returns status, headers and body.
func doRequest(t *testing.T, method, url, body string, headers map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
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

// publish POSTs body to /api/v1/events. ids is set when the answer is a 201 {"ids":[...]}.
func publish(t *testing.T, baseURL, body string, headers map[string]string) (status int, ids []string, raw []byte) {
	t.Helper()
	status, _, raw = doRequest(t, http.MethodPost, baseURL+"/api/v1/events", body, headers)
	if status == http.StatusCreated {
		var r struct {
			IDs []string `json:"ids"`
		}
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
	Events []json.RawMessage `json:"events"`
	Oldest string            `json:"oldest"`
	Next   string            `json:"next"`
}

// history GETs /api/v1/events?query and requires 200.
func history(t *testing.T, baseURL, query string) historyPage {
	t.Helper()
	status, _, raw := doRequest(t, http.MethodGet, baseURL+"/api/v1/events?"+query, "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/events?%s: status %d body %s", query, status, raw)
	}
	var p historyPage
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatalf("history page %s: %v", raw, err)
	}
	if p.Events == nil {
		t.Fatalf("history page %s: events must be an array", raw)
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

// errorCode checks the SPEC §6 error shape {"error":{"code","message"}} and returns the code and
// message.
func errorCode(t *testing.T, raw []byte) (code, message string) {
	t.Helper()
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(raw, &outer); err != nil || len(outer) != 1 || outer["error"] == nil {
		t.Fatalf("error body %s: want exactly {\"error\":{...}}", raw)
	}
	var inner map[string]any
	if err := json.Unmarshal(outer["error"], &inner); err != nil {
		t.Fatalf("error body %s: %v", raw, err)
	}
	code, _ = inner["code"].(string)
	message, _ = inner["message"].(string)
	if !snakeCase.MatchString(code) || message == "" {
		t.Fatalf("error body %s: want a snake_case code and a message", raw)
	}
	return code, message
}

// expectError requires status and error code.
func expectError(t *testing.T, status int, raw []byte, wantStatus int, wantCode string) string {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("status %d body %s, want %d", status, raw, wantStatus)
	}
	code, msg := errorCode(t, raw)
	if wantCode != "" && code != wantCode {
		t.Fatalf("error code %q (%s), want %q", code, msg, wantCode)
	}
	return msg
}

// envelope is a decoded SPEC §1 event.
type envelope struct {
	ID    string          `json:"id"`
	Type  string          `json:"type"`
	Topic string          `json:"topic"`
	Time  string          `json:"time"`
	Data  json.RawMessage `json:"data"`
}

var timeFormat = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$`)

// decodeEnvelope checks the envelope's shape (exactly id, type, topic, time, data; time RFC 3339
// with milliseconds in UTC, near now) and returns it.
func decodeEnvelope(t *testing.T, raw string) envelope {
	t.Helper()
	var keys map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		t.Fatalf("envelope %s: %v", raw, err)
	}
	for _, k := range []string{"id", "type", "topic", "time", "data"} {
		if _, ok := keys[k]; !ok {
			t.Fatalf("envelope %s: no %q", raw, k)
		}
	}
	if len(keys) != 5 {
		t.Fatalf("envelope %s: want exactly id, type, topic, time, data", raw)
	}
	var e envelope
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatalf("envelope %s: %v", raw, err)
	}
	parseID(t, e.ID)
	if !timeFormat.MatchString(e.Time) {
		t.Fatalf("envelope %s: time %q is not RFC 3339 UTC with milliseconds", raw, e.Time)
	}
	ts, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		t.Fatalf("envelope %s: time: %v", raw, err)
	}
	if d := time.Since(ts); d > 10*time.Minute || d < -time.Minute {
		t.Fatalf("envelope %s: time %s is not near now", raw, e.Time)
	}
	return e
}

// jsonEqual reports whether a and b are the same JSON value.
func jsonEqual(t *testing.T, a, b string) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal([]byte(a), &va); err != nil {
		t.Fatalf("json %s: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &vb); err != nil {
		t.Fatalf("json %s: %v", b, err)
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

var idFormat = regexp.MustCompile(`^(\d+)-(\d+)$`)

// parseID parses "<ms>-<seq>" strictly.
func parseID(t *testing.T, s string) [2]uint64 {
	t.Helper()
	m := idFormat.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("id %q is not <ms>-<seq>", s)
	}
	ms, err1 := strconv.ParseUint(m[1], 10, 64)
	seq, err2 := strconv.ParseUint(m[2], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("id %q does not fit uint64", s)
	}
	return [2]uint64{ms, seq}
}

// idLess compares ids numerically, part by part.
func idLess(t *testing.T, a, b string) bool {
	t.Helper()
	x, y := parseID(t, a), parseID(t, b)
	return x[0] < y[0] || x[0] == y[0] && x[1] < y[1]
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
	if len(got) != len(want) {
		t.Fatalf("%s: got %d ids %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: id[%d] = %q, want %q\ngot  %v\nwant %v", what, i, got[i], want[i], got, want)
		}
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
