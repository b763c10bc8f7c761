package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// publishRecorder is a fake POST /api/v1/events that records each batch and answers with ids
// counting up, or with the scripted answers first.
type publishRecorder struct {
	mu      sync.Mutex
	batches [][]json.RawMessage
	headers []http.Header
	keys    []string                      // the Idempotency-Key of every request, answered or not
	answers []func(w http.ResponseWriter) // consumed in order (nil: accept), then 201
	arrived chan int                      // the size of each batch, as it arrives
	next    int
}

func newPublishServer(t *testing.T, answers ...func(w http.ResponseWriter)) (*publishRecorder, *httptest.Server) {
	rec := &publishRecorder{answers: answers, arrived: make(chan int, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/events" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "unexpected request "+r.Method+" "+r.URL.Path, http.StatusTeapot)
			return
		}
		var batch []json.RawMessage
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusTeapot)
			return
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.keys = append(rec.keys, r.Header.Get("Idempotency-Key"))
		if len(rec.answers) > 0 {
			a := rec.answers[0]
			rec.answers = rec.answers[1:]
			if a != nil {
				a(w)
				return
			}
		}
		rec.batches = append(rec.batches, batch)
		rec.headers = append(rec.headers, r.Header.Clone())
		ids := make([]string, len(batch))
		for i := range ids {
			rec.next++
			ids[i] = strconv.Itoa(rec.next) + "-0"
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string][]string{"ids": ids})
		rec.arrived <- len(batch)
	}))
	t.Cleanup(srv.Close)
	return rec, srv
}

func (r *publishRecorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, b := range r.batches {
		out = append(out, len(b))
	}
	return out
}

func ev(n int) string {
	return fmt.Sprintf(`{"type":"queue.status","data":{"pending":%d,"active":0}}`, n)
}

// idLines is "1-0\n2-0\n..." up to n.
func idLines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d-0\n", i)
	}
	return b.String()
}

func runPublishTest(t *testing.T, url string, stdin io.Reader, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errs lockedBuffer
	if env == nil {
		env = map[string]string{}
	}
	env["EVENTGATE_URL"] = url
	client := &http.Client{Timeout: 10 * time.Second}
	code := publishMain(context.Background(), args, func(k string) string { return env[k] }, stdin, &out, &errs, client.Do)
	return code, out.String(), errs.String()
}

func TestPublishInputs(t *testing.T) {
	t.Parallel()
	many := make([]string, 2500)
	for i := range many {
		many[i] = ev(i)
	}
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		sizes []int
	}{
		{"one argument", []string{ev(1)}, "", []int{1}},
		{"arguments and arrays", []string{ev(1), "[" + ev(2) + "," + ev(3) + "]", " [ ] ", ev(4)}, "", []int{4}},
		{"stdin object", nil, "\n  " + ev(1) + "\n", []int{1}},
		{"stdin pretty array", nil, "[\n  " + ev(1) + ",\n  " + ev(2) + "\n]\n", []int{2}},
		{"stdin NDJSON", nil, ev(1) + "\n" + ev(2) + "\r\n" + ev(3), []int{3}},
		{"stdin mixed", nil, ev(1) + "[" + ev(2) + "]" + ev(3), []int{3}},
		{"dash reads stdin", []string{"-"}, ev(1), []int{1}},
		{"batches of 1000", nil, strings.Join(many, "\n"), []int{1000, 1000, 500}},
		{"batch size flag", []string{"--batch-size", "2", ev(1), ev(2), ev(3)}, "", []int{2, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, srv := newPublishServer(t)
			code, out, errs := runPublishTest(t, srv.URL, strings.NewReader(tc.stdin), nil, tc.args...)
			total := 0
			for _, n := range tc.sizes {
				total += n
			}
			if code != exitOK || out != idLines(total) || !slices.Equal(rec.sizes(), tc.sizes) {
				t.Fatalf("exit %d, batches %v (want %v), stderr %q, stdout %q", code, rec.sizes(), tc.sizes, errs, out)
			}
		})
	}
}

func TestPublishHeaders(t *testing.T) {
	t.Parallel()
	rec, srv := newPublishServer(t)
	code, _, errs := runPublishTest(t, srv.URL+"/", nil, map[string]string{"EVENTGATE_TOKEN": "tok-123\n"},
		"--batch-size", "1", "--idempotency-key", "run-7", ev(1), ev(2), ev(3))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var keys []string
	for _, h := range rec.headers {
		if h.Get("Authorization") != "Bearer tok-123" {
			t.Fatalf("Authorization %q", h.Get("Authorization"))
		}
		keys = append(keys, h.Get("Idempotency-Key"))
	}
	if want := []string{"run-7", "run-7/1", "run-7/2"}; !slices.Equal(keys, want) {
		t.Fatalf("Idempotency-Keys %q, want %q", keys, want)
	}
	// --token wins over the environment.
	rec2, srv2 := newPublishServer(t)
	if code, _, errs := runPublishTest(t, srv2.URL, nil, map[string]string{"EVENTGATE_TOKEN": "env"}, "--token", "flag", ev(1)); code != 0 ||
		rec2.headers[0].Get("Authorization") != "Bearer flag" {
		t.Fatalf("exit %d %s, Authorization %q", code, errs, rec2.headers[0].Get("Authorization"))
	}
}

func TestPublishErrors(t *testing.T) {
	t.Parallel()
	jsonError := func(status int, code, msg string, kv ...string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			for i := 0; i+1 < len(kv); i += 2 {
				w.Header().Set(kv[i], kv[i+1])
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
		}
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // a loopback port nobody listens on

	for _, tc := range []struct {
		name    string
		answers []func(w http.ResponseWriter)
		url     string // default: the fake server
		args    []string
		stdin   string
		code    int
		out     string
		stderr  []string
	}{
		{name: "server refuses", answers: []func(http.ResponseWriter){jsonError(400, "invalid_event", "event[0]: data.percent: must be an integer from 0 to 100")},
			args: []string{ev(1)}, code: exitFailure, stderr: []string{"input event 1 refused (not appended): 400 invalid_event: event[0]: data.percent: must be an integer from 0 to 100"}},
		{name: "second batch refused", answers: []func(http.ResponseWriter){nil, jsonError(400, "invalid_event", "no such type")}, args: []string{"--batch-size", "2", ev(1), ev(2), `{"type":"x"}`},
			code: exitFailure, out: "1-0\n2-0\n", stderr: []string{"input event 3 refused", "400 invalid_event: no such type"}},
		{name: "rate limited then accepted", answers: []func(http.ResponseWriter){jsonError(429, "rate_limited", "slow down", "Retry-After", "0")},
			args: []string{ev(1)}, code: exitOK, out: "1-0\n"},
		{name: "server error", answers: []func(http.ResponseWriter){jsonError(503, "store_unavailable", "The event store is unavailable; retry later.")},
			args: []string{"--retry-for", "0", ev(1)}, code: exitFailure, stderr: []string{"503 store_unavailable: The event store is unavailable; retry later.",
				"may or may not have been appended; rerun with --idempotency-key publish-"}},
		{name: "not JSON answer", answers: []func(http.ResponseWriter){func(w http.ResponseWriter) { http.Error(w, "<html>bad gateway</html>", 502) }},
			args: []string{"--retry-for", "0", ev(1)}, code: exitFailure, stderr: []string{"502 Bad Gateway: <html>bad gateway</html>"}},
		{name: "unreachable", url: closed.URL, args: []string{"--retry-for", "0", ev(1)}, code: exitFailure, stderr: []string{"input event 1 not sent", "connection refused"}},
		{name: "malformed argument", args: []string{ev(1), `{"type":`}, code: exitUsage, stderr: []string{"argument 2", "unexpected EOF"}},
		{name: "not an object", args: []string{"42"}, code: exitUsage, stderr: []string{"argument 1", "want an event"}},
		{name: "array of non-objects", args: []string{"[1]"}, code: exitUsage, stderr: []string{"array element 0"}},
		{name: "malformed stdin after good events", stdin: ev(1) + "\n" + ev(2) + "\n{oops}\n", code: exitUsage, out: "1-0\n2-0\n", stderr: []string{"stdin, JSON value 3"}},
		{name: "empty stdin", stdin: " \n", code: exitUsage, stderr: []string{"no events"}},
		{name: "bad flag", args: []string{"--nope"}, code: exitUsage},
		{name: "batch size", args: []string{"--batch-size", "1001", ev(1)}, code: exitUsage, stderr: []string{"--batch-size"}},
		{name: "key and no key", args: []string{"--idempotency-key", "k", "--no-idempotency-key", ev(1)}, code: exitUsage, stderr: []string{"exclude each other"}},
		{name: "negative retry-for", args: []string{"--retry-for", "-1s", ev(1)}, code: exitUsage, stderr: []string{"--retry-for"}},
		{name: "bad url", url: "localhost:8080", args: []string{ev(1)}, code: exitUsage, stderr: []string{"--url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, srv := newPublishServer(t, tc.answers...)
			url := srv.URL
			if tc.url != "" {
				url = tc.url
			}
			code, out, errs := runPublishTest(t, url, strings.NewReader(tc.stdin), nil, tc.args...)
			if code != tc.code || out != tc.out {
				t.Fatalf("exit %d stdout %q stderr %q, want %d and %q", code, out, errs, tc.code, tc.out)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr %q lacks %q", errs, want)
				}
			}
		})
	}
}

// TestPublishLinger: from a stdin that stays open, a partial batch goes out when input pauses.
func TestPublishLinger(t *testing.T) {
	t.Parallel()
	rec, srv := newPublishServer(t)
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var out, errs lockedBuffer
	go func() {
		done <- publishMain(context.Background(), []string{"--linger", "20ms"}, func(k string) string { return map[string]string{"EVENTGATE_URL": srv.URL}[k] },
			pr, &out, &errs, (&http.Client{Timeout: 10 * time.Second}).Do)
	}()
	// Each write must be published while stdin stays open (maybe split in several batches if the
	// machine is slow: what matters is that nothing waits for the end of input).
	for _, n := range []int{2, 1} {
		var chunk strings.Builder
		for i := range n {
			chunk.WriteString(ev(i) + "\n")
		}
		if _, err := io.WriteString(pw, chunk.String()); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < n; {
			select {
			case k := <-rec.arrived:
				got += k
			case <-time.After(10 * time.Second):
				t.Fatalf("%d of %d events sent while stdin stays open", got, n)
			}
		}
	}
	pw.Close()
	if code := <-done; code != exitOK || out.String() != idLines(3) {
		t.Fatalf("exit %d stdout %q stderr %q", code, out.String(), errs.String())
	}
}
