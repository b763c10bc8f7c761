package main

// `eventgate tail`: an SSE client that prints one JSON envelope per line and keeps going across
// errors, clean ends of stream, server restarts and `shutdown`, resuming with Last-Event-ID.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/internal/backoff"
	"github.com/eventgate/eventgate/streams"
)

const (
	// defaultTailRetry is the reconnect delay until the server sends retry: (EventSource's
	// customary value).
	defaultTailRetry = 3 * time.Second
	// deadAfterHeartbeats: a connection that sends nothing (not even a heartbeat) for this many
	// heartbeat intervals is considered dead.
	deadAfterHeartbeats = 3
)

// errTailAuth wraps a 401/403 answer: tail gives up (exit 3).
var errTailAuth = errors.New("not authorized")

// errTailFatal wraps an answer that a retry cannot fix (400, 404, not an event stream): exit 1.
var errTailFatal = errors.New("giving up")

// errNoHeartbeat is the cause of a request cancelled by the dead-connection watchdog.
var errNoHeartbeat = errors.New("no data (not even a heartbeat)")

// tailOptions are tail's settings after flag parsing.
type tailOptions struct {
	client     clientFlags
	topics     []string
	types      []string
	since      string
	heartbeat  time.Duration // 0 disables dead-connection detection
	maxBackoff time.Duration
	maxLine    int
}

// runTail is `eventgate tail`; it returns the exit code. It stops cleanly (exit 0) when ctx ends.
func runTail(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	client := &http.Client{Transport: newClientTransport()}
	return tailMain(ctx, args, getenv, stdout, stderr, client.Do)
}

// tailMain is runTail with the HTTP round trip injected (tests use a fake one).
func tailMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer,
	do func(*http.Request) (*http.Response, error)) int {
	opts, code, ok := parseTailArgs(args, getenv, stderr)
	if !ok {
		return code
	}
	t := &tailer{opts: opts, do: do, out: stdout, log: stderr, retry: defaultTailRetry, lastID: ""}
	return exitCode(stderr, "tail", t.run(ctx), errTailAuth, exitAuth)
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func parseTailArgs(args []string, getenv func(string) string, stderr io.Writer) (tailOptions, int, bool) {
	var o tailOptions
	fs := flag.NewFlagSet("eventgate tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: eventgate tail [flags]

Prints the events of GET /api/v1/stream, one JSON envelope per line, and reconnects (honouring
retry: and resuming with Last-Event-ID) until interrupted. resync and connection notes go to
stderr. Exit codes: 0 interrupted, 1 refused or invalid answer, 2 usage, 3 401/403.

Flags:
`)
		fs.PrintDefaults()
	}
	o.client.register(fs, getenv)
	var topics, types stringList
	fs.Var(&topics, "topic", "topic pattern: exact (jobs/<uuid>), prefix (jobs/*) or * (repeatable; default *)")
	fs.Var(&types, "type", "event type, e.g. job.progress (repeatable; default all)")
	fs.StringVar(&o.since, "since", "", "start after this event id; 0 = oldest retained, now = live (default live)")
	fs.DurationVar(&o.heartbeat, "heartbeat", 15*time.Second, "the server's heartbeat interval; no data for 3× this reconnects (0 disables)")
	fs.DurationVar(&o.maxBackoff, "max-backoff", 30*time.Second, "longest wait between failed connection attempts")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, exitOK, false
		}
		return o, exitUsage, false
	}
	o.topics, o.types, o.maxLine = topics, types, defaultSSEMaxLine
	fail := func(format string, a ...any) (tailOptions, int, bool) {
		fmt.Fprintf(stderr, "eventgate tail: "+format+"\n", a...)
		return o, exitUsage, false
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if _, err := o.client.endpoint("/api/v1/stream"); err != nil {
		return fail("%v", err)
	}
	if o.heartbeat < 0 || o.maxBackoff <= 0 {
		return fail("--heartbeat must be 0 or more and --max-backoff more than 0")
	}
	return o, 0, true
}

// tailer is one tail session. It is used by one goroutine.
type tailer struct {
	opts tailOptions
	do   func(*http.Request) (*http.Response, error)
	out  io.Writer
	log  io.Writer

	lastID   string        // sent as Last-Event-ID; empty until the stream gave one
	seen     event.ID      // the last printed (or resync) position, to drop duplicates
	haveSeen bool          // seen is set
	retry    time.Duration // the server's last retry:, else defaultTailRetry
}

// run connects and reconnects until ctx ends (nil) or the server refuses for good.
func (t *tailer) run(ctx context.Context) error {
	failures := 0
	for {
		connected, err := t.once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errTailAuth) || errors.Is(err, errTailFatal) {
			return err
		}
		if connected {
			failures = 0
		} else {
			failures++
		}
		wait := t.backoff(failures)
		var se *serverError
		if errors.As(err, &se) && se.RetryAfter > wait {
			wait = se.RetryAfter
		}
		wait += jitter(wait)
		fmt.Fprintf(t.log, "eventgate tail: %v; reconnecting in %s\n", err, wait.Round(time.Millisecond))
		if !backoff.Wait(ctx, wait) {
			return nil
		}
	}
}

// backoff is the wait before the next attempt: the server's retry after a connection that
// worked and after the first failed attempt, doubling with each further one up to
// max(retry, --max-backoff).
func (t *tailer) backoff(failures int) time.Duration {
	return backoff.Policy{Base: t.retry, Max: t.opts.maxBackoff}.Delay(failures - 1)
}

// jitter returns a random extra wait in [0, d/4], so clients do not reconnect in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d/4 + 1)
}

// once makes one connection and reads it to its end. connected reports whether the server
// answered with an event stream (resets the backoff). The returned error says why it ended.
func (t *tailer) once(ctx context.Context) (connected bool, err error) {
	u, err := t.opts.client.endpoint("/api/v1/stream")
	if err != nil {
		return false, fmt.Errorf("%w: %v", errTailFatal, err)
	}
	q := u.Query()
	for _, v := range t.opts.topics {
		q.Add("topic", v)
	}
	for _, v := range t.opts.types {
		q.Add("type", v)
	}
	if t.lastID == "" && t.opts.since != "" {
		q.Set("since", t.opts.since)
	}
	u.RawQuery = q.Encode()

	reqCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, fmt.Errorf("%w: %v", errTailFatal, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if t.lastID != "" {
		req.Header.Set("Last-Event-ID", t.lastID)
	}
	t.opts.client.authorize(req)

	// The watchdog cancels the request when nothing arrives for deadAfterHeartbeats heartbeats
	// (from the request on, so a server that never answers is caught too).
	var dog *time.Timer
	if hb := t.opts.heartbeat; hb > 0 {
		dog = time.AfterFunc(deadAfterHeartbeats*hb, func() { cancel(errNoHeartbeat) })
		defer dog.Stop()
	}
	resp, err := t.do(req)
	if err != nil {
		if errors.Is(context.Cause(reqCtx), errNoHeartbeat) {
			return false, fmt.Errorf("no answer within %s", deadAfterHeartbeats*t.opts.heartbeat)
		}
		return false, fmt.Errorf("connecting: %w", transportError(err))
	}
	defer resp.Body.Close()
	if err := t.checkResponse(resp); err != nil {
		return false, err
	}
	fmt.Fprintf(t.log, "eventgate tail: connected to %s%s\n", redactURL(u.String()), t.resumeNote())

	var body io.Reader = resp.Body
	if dog != nil {
		body = &watchdogReader{r: resp.Body, dog: dog, after: deadAfterHeartbeats * t.opts.heartbeat}
	}
	sr := newSSEReader(body, t.opts.maxLine, t.lastID)
	defer func() {
		if d, ok := sr.Retry(); ok {
			t.retry = d
		}
		t.lastID = sr.LastEventID()
	}()
	for {
		ev, err := sr.Next()
		if err != nil {
			switch {
			case errors.Is(context.Cause(reqCtx), errNoHeartbeat):
				return true, fmt.Errorf("no data for %s (%d× the %s heartbeat)", deadAfterHeartbeats*t.opts.heartbeat, deadAfterHeartbeats, t.opts.heartbeat)
			case errors.Is(err, io.EOF):
				return true, errors.New("the stream ended")
			default:
				return true, fmt.Errorf("reading the stream: %w", transportError(err))
			}
		}
		if d, ok := sr.Retry(); ok {
			t.retry = d
		}
		t.lastID = sr.LastEventID()
		if err := t.handle(ev); err != nil {
			return true, err
		}
	}
}

// resumeNote says where the connection resumes from, for the connection message.
func (t *tailer) resumeNote() string {
	switch {
	case t.lastID != "":
		return " (resuming after " + t.lastID + ")"
	case t.opts.since != "":
		return " (since " + t.opts.since + ")"
	}
	return ""
}

// checkResponse accepts a 200 event stream; otherwise it classifies the answer: 401/403 give up
// with errTailAuth, 408/429/5xx are retried, anything else gives up with errTailFatal.
func (t *tailer) checkResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if mt != "text/event-stream" {
			return fmt.Errorf("%w: the server answered 200 with Content-Type %q, not an event stream (is --url right?)", errTailFatal, resp.Header.Get("Content-Type"))
		}
		return nil
	}
	se := readServerError(resp)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%w: %w", errTailAuth, se)
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return se
	default:
		return fmt.Errorf("%w: %w", errTailFatal, se)
	}
}

// handle prints an event or reports a control event. Only a failing stdout is an error.
func (t *tailer) handle(ev sseEvent) error {
	switch ev.Type {
	case streams.TypeResync:
		var r struct{ Reason, Requested, Oldest string }
		_ = json.Unmarshal([]byte(ev.Data), &r)
		fmt.Fprintf(t.log, "eventgate tail: resync (%s): the log no longer vouches for events after %s; continuing from %s (oldest held %s); refetch your state: %s\n",
			r.Reason, r.Requested, ev.ID, r.Oldest, oneLine(ev.Data, 2000))
		// Delivery continues from the resync's id, which may be before what was seen (a reset log).
		if id, err := event.ParseID(ev.ID); err == nil {
			t.seen, t.haveSeen = id, true
		}
		return nil
	case "shutdown":
		fmt.Fprintln(t.log, "eventgate tail: the server is shutting down")
		return nil
	case "auth_expired":
		fmt.Fprintln(t.log, "eventgate tail: the token expired")
		return nil
	}
	if id, err := event.ParseID(ev.ID); err == nil {
		if t.haveSeen && !t.seen.Less(id) {
			return nil // already printed (a server that replays the seam)
		}
		t.seen, t.haveSeen = id, true
	}
	data := []byte(ev.Data)
	if !json.Valid(data) {
		fmt.Fprintf(t.log, "eventgate tail: skipping event %q (%s): its data is not JSON\n", ev.ID, ev.Type)
		return nil
	}
	if strings.ContainsAny(ev.Data, "\r\n") {
		var b bytes.Buffer
		_ = json.Compact(&b, data)
		data = b.Bytes()
	}
	if _, err := t.out.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("%w: writing to stdout: %v", errTailFatal, err)
	}
	return nil
}

// watchdogReader pushes the dead-connection deadline back whenever bytes arrive.
type watchdogReader struct {
	r     io.Reader
	dog   *time.Timer
	after time.Duration
}

func (w *watchdogReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.dog.Reset(w.after)
	}
	return n, err
}
