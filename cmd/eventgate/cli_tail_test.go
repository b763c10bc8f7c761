package main

// Unit tests of `eventgate tail` against a scripted fake server, in a synctest bubble: the
// reconnect delays (retry:, backoff, Retry-After, the heartbeat watchdog) are checked on the
// bubble's fake clock, without sleeping.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// fakeConn is one request tail made to the fake server; the test answers it.
type fakeConn struct {
	req   *http.Request
	at    time.Time
	reply chan fakeReply
}

type fakeReply struct {
	resp *http.Response
	err  error
}

// fakeSSE is a scripted server: each request tail makes is handed to the test through conns.
type fakeSSE struct{ conns chan *fakeConn }

func newFakeSSE() *fakeSSE { return &fakeSSE{conns: make(chan *fakeConn)} }

func (f *fakeSSE) do(req *http.Request) (*http.Response, error) {
	c := &fakeConn{req: req, at: time.Now(), reply: make(chan fakeReply, 1)}
	ctx := req.Context()
	select {
	case f.conns <- c:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-c.reply:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// next returns tail's next request; it fails if none comes within an hour of fake time.
func (f *fakeSSE) next(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(time.Hour):
		t.Fatal("tail made no request")
		return nil
	}
}

// stream answers 200 text/event-stream; the test writes the body through the returned writer.
// The body fails with the request's context error once tail cancels the request.
func (c *fakeConn) stream() *io.PipeWriter {
	pr, pw := io.Pipe()
	go func() {
		<-c.req.Context().Done()
		pw.CloseWithError(c.req.Context().Err())
	}()
	c.reply <- fakeReply{resp: &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr}}
	return pw
}

// status answers with a status, a body and headers (key, value pairs).
func (c *fakeConn) status(code int, contentType, body string, kv ...string) {
	h := http.Header{"Content-Type": {contentType}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	c.reply <- fakeReply{resp: &http.Response{StatusCode: code, Header: h, Body: io.NopCloser(strings.NewReader(body))}}
}

func write(t *testing.T, w io.Writer, s string) {
	t.Helper()
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatalf("writing to tail: %v", err)
	}
}

// within fails unless d is in [lo, lo+25%] (the reconnect delay plus tail's jitter).
func within(t *testing.T, what string, d, lo time.Duration) {
	t.Helper()
	if d < lo || d > lo+lo/4 {
		t.Fatalf("%s after %s, want %s plus at most 25%% jitter", what, d, lo)
	}
}

// tailRun is a tail session in the bubble.
type tailRun struct {
	out, errs *lockedBuffer
	cancel    context.CancelFunc
	done      chan int
}

func startTail(f *fakeSSE, args ...string) *tailRun {
	ctx, cancel := context.WithCancel(context.Background())
	r := &tailRun{out: &lockedBuffer{}, errs: &lockedBuffer{}, cancel: cancel, done: make(chan int, 1)}
	env := func(k string) string { return map[string]string{"EVENTGATE_URL": "http://eventgate.test/prefix/"}[k] }
	go func() { r.done <- tailMain(ctx, args, env, r.out, r.errs, f.do) }()
	return r
}

// exit waits for tail to exit and returns its code.
func (r *tailRun) exit(t *testing.T) int {
	t.Helper()
	select {
	case code := <-r.done:
		return code
	case <-time.After(time.Hour):
		t.Fatal("tail did not exit")
		return -1
	}
}

func envelopeFrame(id string) string {
	return fmt.Sprintf("id: %s\nevent: job.progress\ndata: {\"id\":%q,\"type\":\"job.progress\"}\n\n", id, id)
}

func envelopeLine(id string) string {
	return fmt.Sprintf("{\"id\":%q,\"type\":\"job.progress\"}\n", id)
}

func TestTailResumes(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSSE()
		r := startTail(f, "--topic", "jobs/*", "--topic", "queue", "--type", "job.progress", "--since", "0", "--heartbeat", "0", "--token", "s3cret-token")

		c1 := f.next(t)
		q := c1.req.URL.Query()
		if c1.req.URL.Path != "/prefix/api/v1/stream" || strings.Join(q["topic"], ",") != "jobs/*,queue" || q.Get("type") != "job.progress" ||
			q.Get("since") != "0" || c1.req.Header.Get("Last-Event-ID") != "" || c1.req.Header.Get("Authorization") != "Bearer s3cret-token" ||
			c1.req.Header.Get("Accept") != "text/event-stream" {
			t.Fatalf("first request %s %v", c1.req.URL, c1.req.Header)
		}
		w := c1.stream()
		write(t, w, "retry: 500\n\n"+envelopeFrame("1-0")+": ping\n\n"+envelopeFrame("2-0"))
		w.Close() // a clean end of stream
		ended := time.Now()

		// Reconnects after retry: with Last-Event-ID; since is not sent again.
		c2 := f.next(t)
		within(t, "reconnect after a clean EOF", c2.at.Sub(ended), 500*time.Millisecond)
		if c2.req.Header.Get("Last-Event-ID") != "2-0" || c2.req.URL.Query().Has("since") {
			t.Fatalf("second request %s Last-Event-ID %q, want 2-0 and no since", c2.req.URL, c2.req.Header.Get("Last-Event-ID"))
		}
		w = c2.stream()
		// A replayed event is dropped; shutdown ends the stream with a new retry.
		write(t, w, envelopeFrame("2-0")+"event: shutdown\ndata: {\"type\":\"shutdown\"}\n\nretry: 700\n\n")
		w.Close()
		ended = time.Now()

		c3 := f.next(t)
		within(t, "reconnect after shutdown", c3.at.Sub(ended), 700*time.Millisecond)
		if c3.req.Header.Get("Last-Event-ID") != "2-0" {
			t.Fatalf("third request Last-Event-ID %q, want 2-0", c3.req.Header.Get("Last-Event-ID"))
		}
		w = c3.stream()
		// The log was reset: resync moves the position back; what follows is printed.
		write(t, w, "id: 1-5\nevent: resync\ndata: {\"type\":\"resync\",\"reason\":\"position_unknown\",\"requested\":\"2-0\",\"oldest\":\"1-6\"}\n\n"+envelopeFrame("1-6"))
		synctest.Wait()
		w.CloseWithError(errors.New("connection reset by peer"))
		ended = time.Now()

		c4 := f.next(t)
		within(t, "reconnect after a read error", c4.at.Sub(ended), 700*time.Millisecond)
		if c4.req.Header.Get("Last-Event-ID") != "1-6" {
			t.Fatalf("fourth request Last-Event-ID %q, want 1-6", c4.req.Header.Get("Last-Event-ID"))
		}
		c4.status(401, "application/json", `{"error":{"code":"unauthorized","message":"The token expired."}}`, "WWW-Authenticate", "Bearer")
		if code := r.exit(t); code != exitAuth {
			t.Fatalf("exit code %d after 401, want %d", code, exitAuth)
		}

		if got, want := r.out.String(), envelopeLine("1-0")+envelopeLine("2-0")+envelopeLine("1-6"); got != want {
			t.Fatalf("stdout\n%s\nwant\n%s", got, want)
		}
		errs := r.errs.String()
		for _, want := range []string{"resync (position_unknown)", "shutting down", "connection reset by peer", "The token expired.", "401 unauthorized"} {
			if !strings.Contains(errs, want) {
				t.Errorf("stderr lacks %q:\n%s", want, errs)
			}
		}
		if strings.Contains(errs, "s3cret") || strings.Contains(r.out.String(), "s3cret") {
			t.Errorf("the token was printed:\n%s", errs)
		}
	})
}

func TestTailBackoff(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSSE()
		r := startTail(f, "--heartbeat", "0", "--max-backoff", "8s")
		prev := f.next(t)
		// Failed attempts back off from the retry (3s until the server says) up to --max-backoff;
		// Retry-After wins when longer.
		for i, step := range []struct {
			answer func(c *fakeConn)
			wait   time.Duration
		}{
			{func(c *fakeConn) { c.reply <- fakeReply{err: errors.New("connection refused")} }, 3 * time.Second},
			{func(c *fakeConn) { c.status(502, "text/html", "<h1>Bad Gateway</h1>") }, 6 * time.Second},
			{func(c *fakeConn) { c.status(500, "application/json", `{"error":{"code":"internal","message":"x"}}`) }, 8 * time.Second},
			{func(c *fakeConn) {
				c.status(503, "application/json", `{"error":{"code":"draining","message":"x"}}`, "Retry-After", "20")
			}, 20 * time.Second},
			{func(c *fakeConn) {
				c.status(429, "application/json", `{"error":{"code":"too_many_connections","message":"x"}}`, "Retry-After", "1")
			}, 8 * time.Second},
			{func(c *fakeConn) { w := c.stream(); write(t, w, "retry: 100\n\n"); w.Close() }, 100 * time.Millisecond}, // success resets
			{func(c *fakeConn) { c.status(503, "application/json", `{}`) }, 100 * time.Millisecond},
			{func(c *fakeConn) { c.status(503, "application/json", `{}`) }, 200 * time.Millisecond},
		} {
			answered := time.Now()
			step.answer(prev)
			next := f.next(t)
			within(t, fmt.Sprintf("step %d", i), next.at.Sub(answered), step.wait)
			prev = next
		}
		r.cancel()
		if code := r.exit(t); code != exitOK {
			t.Fatalf("exit code %d after cancel, want 0", code)
		}
	})
}

func TestTailHeartbeatWatchdog(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		f := newFakeSSE()
		r := startTail(f, "--heartbeat", "1s")
		c1 := f.next(t)
		w := c1.stream()
		write(t, w, "retry: 100\n\n: ping\n\n")
		time.Sleep(2500 * time.Millisecond) // fake time: bytes within 3 heartbeats keep it alive
		write(t, w, ": ping\n\n")
		lastBytes := time.Now()

		c2 := f.next(t) // nothing for 3s: tail gives up on c1
		within(t, "reconnect after silence", c2.at.Sub(lastBytes), 3*time.Second+100*time.Millisecond)
		if !strings.Contains(r.errs.String(), "no data for 3s") {
			t.Fatalf("stderr: %s", r.errs.String())
		}
		// A server that never answers is given up on too.
		c3 := f.next(t)
		within(t, "reconnect after no answer", c3.at.Sub(c2.at), 3*time.Second+100*time.Millisecond)
		r.cancel()
		if code := r.exit(t); code != exitOK {
			t.Fatalf("exit code %d, want 0", code)
		}
	})
}

func TestTailGivesUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		code        int
		stderr      string
	}{
		{"401", 401, "application/json", `{"error":{"code":"unauthorized","message":"A bearer token is required."}}`, exitAuth, "401 unauthorized: A bearer token is required."},
		{"403", 403, "application/json", `{"error":{"code":"forbidden","message":"The token lacks the subscribe scope."}}`, exitAuth, "403 forbidden: The token lacks the subscribe scope."},
		{"400", 400, "application/json", `{"error":{"code":"invalid_position","message":"\"x\" is not a log id"}}`, exitFailure, `400 invalid_position: "x" is not a log id`},
		{"404", 404, "text/plain", "404 page not found\n", exitFailure, "404 Not Found: 404 page not found"},
		{"200 not a stream", 200, "text/html", "<html>", exitFailure, `Content-Type "text/html"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				f := newFakeSSE()
				r := startTail(f, "--heartbeat", "0")
				f.next(t).status(tc.status, tc.contentType, tc.body)
				if code := r.exit(t); code != tc.code || !strings.Contains(r.errs.String(), tc.stderr) {
					t.Fatalf("exit %d stderr %q, want %d and %q", code, r.errs.String(), tc.code, tc.stderr)
				}
			})
		})
	}
}

func TestClientHelpHidesToken(t *testing.T) {
	t.Parallel()
	env := func(k string) string { return map[string]string{"EVENTGATE_TOKEN": "env-s3cret"}[k] }
	var out, errs lockedBuffer
	if code := tailMain(context.Background(), []string{"-h"}, env, &out, &errs, nil); code != exitOK || !strings.Contains(errs.String(), "-token") || strings.Contains(errs.String(), "s3cret") {
		t.Fatalf("tail -h: exit %d, usage %q: want 0 and no token", code, errs.String())
	}
	if code := publishMain(context.Background(), []string{"-h"}, env, nil, &out, &errs, nil); code != exitOK || strings.Contains(errs.String(), "s3cret") {
		t.Fatalf("publish -h: exit %d, usage %q: want 0 and no token", code, errs.String())
	}
}

func TestTailUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--url", "ftp://x"},
		{"--url", "127.0.0.1:8080"},
		{"--heartbeat", "-1s"},
		{"--max-backoff", "0"},
		{"--nope"},
		{"extra"},
	} {
		var out, errs lockedBuffer
		code := tailMain(context.Background(), args, func(string) string { return "" }, &out, &errs, nil)
		if code != exitUsage || errs.String() == "" {
			t.Errorf("%q: exit %d stderr %q, want 2 with a message", args, code, errs.String())
		}
	}
}
