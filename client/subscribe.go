package client

// Following GET /api/v1/stream across reconnects.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"time"

	"github.com/eventgate/eventgate/internal/backoff"
)

const (
	// DefaultHeartbeat is the server's default heartbeat interval (EVENTGATE_HEARTBEAT).
	DefaultHeartbeat = 15 * time.Second
	// DefaultMaxBackoff is the default cap on the wait between failed connection attempts.
	DefaultMaxBackoff = 30 * time.Second

	// defaultRetry is the reconnect delay until the server sends retry: (EventSource's customary
	// value).
	defaultRetry = 3 * time.Second
	// deadAfterHeartbeats: a connection that sends nothing (not even a heartbeat) for this many
	// heartbeat intervals is considered dead.
	deadAfterHeartbeats = 3
)

// errNoHeartbeat is the cause of a request cancelled by the dead-connection watchdog.
var errNoHeartbeat = errors.New("no data (not even a heartbeat)")

// SubscribeOptions say what to follow and how; the zero value follows every topic, live. The
// callbacks run on the goroutine that calls Next, between messages: they need no locking, and
// must not block for long.
type SubscribeOptions struct {
	// Topics are topic patterns: exact (jobs/<uuid>), prefix (jobs/*) or *. None: all.
	Topics []string
	// Types are event types, e.g. job.progress. None: all.
	Types []string
	// Since is where to start while no position is known (no LastEventID, no event yet): after an
	// event id, "0" for the oldest retained, "now" or "" for live.
	Since string
	// LastEventID resumes an earlier subscription (its LastEventID): it is sent as Last-Event-ID
	// from the first connection on, and events up to it are not delivered again.
	LastEventID string
	// Heartbeat is the server's heartbeat interval: a connection that sends nothing for 3× it is
	// dropped and reopened. 0: DefaultHeartbeat; negative: never.
	Heartbeat time.Duration
	// MaxBackoff caps the wait after failed attempts (a longer retry: or Retry-After still wins).
	// 0: DefaultMaxBackoff.
	MaxBackoff time.Duration
	// MaxEventBytes bounds a line and an event's data; a longer one drops the connection. 0: 32 MiB.
	MaxEventBytes int

	// OnConnect, if set, is called when a connection is established, with the stream's URL
	// (without query or user info) and the Last-Event-ID it resumes after ("" if none).
	OnConnect func(url, lastEventID string)
	// OnRetry, if set, is called when a connection ends or an attempt fails and another one
	// follows: why, and the wait before it.
	OnRetry func(err error, wait time.Duration)
	// OnSkip, if set, is called for an event that is not delivered because its data is not an
	// event envelope (its SSE id and event type, and why).
	OnSkip func(id, typ string, err error)
}

// Subscription follows the stream: it connects on the first Next and reconnects by itself. It is
// read by one goroutine (Next, LastEventID and Close are not safe for concurrent use); to stop a
// blocked Next from elsewhere, cancel the context given to Subscribe. It owns its connection:
// call Close when done.
type Subscription struct {
	c    *Client
	ctx  context.Context
	opts SubscribeOptions

	lastID   string        // sent as Last-Event-ID; empty until the stream gave one
	seen     position      // the last delivered (or resync) position, to drop duplicates
	haveSeen bool          // seen is set
	retry    time.Duration // the server's last retry:, else defaultRetry
	failures int           // failed attempts since the last connection that worked
	conn     *conn         // the open connection; nil between connections
	err      error         // why it ended; nil while it goes on
}

// conn is one open stream.
type conn struct {
	ctx    context.Context // the request's: its cause tells a watchdog cancel apart
	cancel context.CancelCauseFunc
	body   io.Closer
	dog    *time.Timer // nil when heartbeats are not watched
	r      *reader
}

// Subscribe returns a Subscription to the stream; nothing is sent until the first Next. It ends
// when ctx ends.
func (c *Client) Subscribe(ctx context.Context, o SubscribeOptions) *Subscription {
	switch {
	case o.Heartbeat == 0:
		o.Heartbeat = DefaultHeartbeat
	case o.Heartbeat < 0:
		o.Heartbeat = 0
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	s := &Subscription{c: c, ctx: ctx, opts: o, lastID: o.LastEventID, retry: defaultRetry}
	s.seen, s.haveSeen = parsePosition(o.LastEventID)
	return s
}

// LastEventID is the position to resume from: pass it as SubscribeOptions.LastEventID to a new
// subscription (after ErrAuthExpired, or in another process). "" until the stream gave one.
func (s *Subscription) LastEventID() string { return s.lastID }

// Close ends the subscription and releases its connection. Next then returns ErrClosed (or the
// error that had ended it already).
func (s *Subscription) Close() error {
	s.hangUp()
	if s.err == nil {
		s.err = ErrClosed
	}
	return nil
}

// Next returns the next message, connecting and reconnecting as needed (it blocks meanwhile).
// An error ends the subscription, and Next returns it again on every later call: ctx's error
// once ctx ends, ErrAuthExpired, an error wrapping ErrUnauthorized (401/403) or
// ErrNotEventStream, a *StatusError that a retry cannot fix (400, 404), or ErrClosed.
func (s *Subscription) Next() (Message, error) {
	for s.err == nil {
		if s.conn == nil {
			if err := s.dial(); err != nil {
				s.fail(false, err)
				continue
			}
		}
		m, ok, err := s.read()
		if err != nil {
			s.fail(true, err)
		} else if ok {
			return m, nil
		}
	}
	return Message{}, s.err
}

// fail ends the connection (if any) and either ends the subscription or waits before the next
// attempt. connected: the attempt got an event stream (the backoff starts over).
func (s *Subscription) fail(connected bool, err error) {
	s.hangUp()
	var final finalError
	switch {
	case s.ctx.Err() != nil:
		s.err = s.ctx.Err()
		return
	case errors.As(err, &final):
		s.err = final.err
		return
	case connected:
		s.failures = 0
	default:
		s.failures++
	}
	wait := s.backoff()
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > wait {
		wait = se.RetryAfter
	}
	wait += jitter(wait)
	if s.opts.OnRetry != nil {
		s.opts.OnRetry(err, wait)
	}
	if err := sleep(s.ctx, wait); err != nil {
		s.err = err
	}
}

// backoff is the wait before the next attempt: the server's retry after a connection that
// worked, doubling with each failed attempt up to max(retry, MaxBackoff).
func (s *Subscription) backoff() time.Duration {
	return backoff.Policy{Base: s.retry, Max: s.opts.MaxBackoff}.Delay(s.failures - 1)
}

// jitter returns a random extra wait in [0, d/4], so clients do not reconnect in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d/4 + 1)
}

// sleep waits d, or returns ctx's error if ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if !backoff.Wait(ctx, d) {
		return ctx.Err()
	}
	return nil
}

// dial opens a connection: on success s.conn is set. A finalError ends the subscription.
func (s *Subscription) dial() error {
	u := s.c.endpoint("/api/v1/stream")
	q := u.Query()
	for _, v := range s.opts.Topics {
		q.Add("topic", v)
	}
	for _, v := range s.opts.Types {
		q.Add("type", v)
	}
	if s.lastID == "" && s.opts.Since != "" {
		q.Set("since", s.opts.Since)
	}
	u.RawQuery = q.Encode()

	ctx, cancel := context.WithCancelCause(s.ctx)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		cancel(nil)
		return finalError{err}
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if s.lastID != "" {
		req.Header.Set("Last-Event-ID", s.lastID)
	}
	s.c.authorize(req)

	// The watchdog cancels the request when nothing arrives for deadAfterHeartbeats heartbeats
	// (from the request on, so a server that never answers is caught too).
	c := &conn{ctx: ctx, cancel: cancel}
	dead := deadAfterHeartbeats * s.opts.Heartbeat
	if dead > 0 {
		c.dog = time.AfterFunc(dead, func() { cancel(errNoHeartbeat) })
	}
	resp, err := s.c.http.Do(req)
	if err != nil {
		c.close()
		if errors.Is(context.Cause(ctx), errNoHeartbeat) {
			return fmt.Errorf("no answer within %s", dead)
		}
		return fmt.Errorf("connecting: %w", transportError(err))
	}
	c.body = resp.Body
	if err := checkResponse(resp); err != nil {
		c.close()
		return err
	}
	if s.opts.OnConnect != nil {
		s.opts.OnConnect(redactURL(u.String()), s.lastID)
	}
	var body io.Reader = resp.Body
	if c.dog != nil {
		body = &watchdogReader{r: resp.Body, dog: c.dog, after: dead}
	}
	c.r = newReader(body, s.opts.MaxEventBytes, s.lastID)
	s.conn = c
	return nil
}

// checkResponse accepts a 200 event stream; otherwise it classifies the answer: 401/403 end the
// subscription with ErrUnauthorized, 408/429/5xx are retried, anything else ends it.
func checkResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		ct := resp.Header.Get("Content-Type")
		if mt, _, _ := mime.ParseMediaType(ct); mt != "text/event-stream" {
			return finalError{fmt.Errorf("%w: the server answered 200 with Content-Type %q", ErrNotEventStream, ct)}
		}
		return nil
	}
	se := readStatusError(resp)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return finalError{fmt.Errorf("%w: %w", ErrUnauthorized, se)}
	case resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return se
	default:
		return finalError{se}
	}
}

// read returns the connection's next message; ok is false for one that is not delivered. An
// error says why the connection ended.
func (s *Subscription) read() (m Message, ok bool, err error) {
	c := s.conn
	f, err := c.r.Next()
	if d, ok := c.r.Retry(); ok {
		s.retry = d
	}
	s.lastID = c.r.LastEventID()
	if err != nil {
		dead := deadAfterHeartbeats * s.opts.Heartbeat
		switch {
		case errors.Is(context.Cause(c.ctx), errNoHeartbeat):
			return m, false, fmt.Errorf("no data for %s (%d× the %s heartbeat)", dead, deadAfterHeartbeats, s.opts.Heartbeat)
		case errors.Is(err, io.EOF):
			return m, false, errors.New("the stream ended")
		default:
			return m, false, fmt.Errorf("reading the stream: %w", transportError(err))
		}
	}
	return s.message(f)
}

// message interprets one frame: control events, duplicates, envelopes.
func (s *Subscription) message(f frame) (m Message, ok bool, err error) {
	m = Message{ID: f.ID, Data: json.RawMessage(f.Data)}
	switch f.Type {
	case "resync":
		_ = json.Unmarshal(m.Data, &m.Resync)
		// Delivery continues from the resync's id, which may be before what was seen (a reset log).
		if p, ok := parsePosition(f.ID); ok {
			s.seen, s.haveSeen = p, true
		}
		m.Kind = KindResync
		return m, true, nil
	case "shutdown":
		m.Kind = KindShutdown
		return m, true, nil
	case "auth_expired":
		return m, false, finalError{ErrAuthExpired}
	}
	if p, ok := parsePosition(f.ID); ok {
		if s.haveSeen && !s.seen.less(p) {
			return m, false, nil // already delivered (a server that replays the seam)
		}
		s.seen, s.haveSeen = p, true
	}
	if !json.Valid(m.Data) {
		s.skip(f, errors.New("its data is not JSON"))
		return m, false, nil
	}
	if err := json.Unmarshal(m.Data, &m.Event); err != nil {
		s.skip(f, fmt.Errorf("its data is not an event envelope: %w", err))
		return m, false, nil
	}
	m.Kind = KindEvent
	return m, true, nil
}

func (s *Subscription) skip(f frame, why error) {
	if s.opts.OnSkip != nil {
		s.opts.OnSkip(f.ID, f.Type, why)
	}
}

// hangUp closes the open connection, if any.
func (s *Subscription) hangUp() {
	if s.conn != nil {
		s.conn.close()
		s.conn = nil
	}
}

func (c *conn) close() {
	if c.dog != nil {
		c.dog.Stop()
	}
	c.cancel(nil)
	if c.body != nil {
		c.body.Close()
	}
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
