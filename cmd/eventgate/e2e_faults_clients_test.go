package main

// Clients of the fault-schedule test (e2e_faults_test.go): a publisher that retries each event with
// its own Idempotency-Key until it is acknowledged, and SSE and WebSocket subscribers that record
// every id and resync they receive and resume from their last id, on either instance. They run off
// the test goroutine, so they record problems instead of failing the test; every network call
// has a deadline, so none of them can hang the test.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// faultID is a parsed event id, compared numerically part by part.
type faultID struct{ ms, seq uint64 }

// parseFaultID parses "<ms>-<seq>"; a bare "<ms>" (such as the position "0") has seq 0.
func parseFaultID(s string) (faultID, error) {
	msPart, seqPart, hasSeq := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(msPart, 10, 64)
	var seq uint64
	var err2 error
	if hasSeq {
		seq, err2 = strconv.ParseUint(seqPart, 10, 64)
	}
	if err1 != nil || err2 != nil {
		return faultID{}, fmt.Errorf("id %q is not <ms>-<seq>", s)
	}
	return faultID{ms, seq}, nil
}

func (a faultID) less(b faultID) bool { return a.ms < b.ms || a.ms == b.ms && a.seq < b.seq }
func (a faultID) String() string      { return fmt.Sprintf("%d-%d", a.ms, a.seq) }

// faultGate holds back reconnecting subscribers while closed (clients cut off from the service,
// e.g. by a network outage), so the test can make them resume with an old id. Safe for concurrent
// use.
type faultGate struct {
	mu   sync.Mutex
	open chan struct{} // closed while the gate is open
}

func newFaultGate() *faultGate {
	g := &faultGate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *faultGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default: // already shut
	}
}

func (g *faultGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// wait blocks while the gate is shut; false when ctx ended.
func (g *faultGate) wait(ctx context.Context) bool {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// faultAck is one acknowledged event: its id, its sequence number (data.pending) and when the
// 201 arrived.
type faultAck struct {
	id  faultID
	seq int
	at  time.Time
}

// faultPublisher publishes queue.status events whose data.pending is a sequence number, one
// request per event with its own Idempotency-Key, retried with the same key (alternating
// instances) until acknowledged. Its methods are safe for concurrent use, but only one goroutine
// publishes at a time, so acks are in publish order.
type faultPublisher struct {
	urls   []string
	runID  string
	client *http.Client

	mu        sync.Mutex
	seq       int // last sequence number used
	turn      int // which instance the next attempt goes to
	acked     []faultAck
	attempts  int
	retried   int      // events that needed more than one attempt
	abandoned []string // events given up on (maybe appended, never acknowledged), with the last error
	problems  []string
	lastErr   string
}

var errPublishRejected = errors.New("publish rejected")

func newFaultPublisher(urls []string, attemptTimeout time.Duration) *faultPublisher {
	return &faultPublisher{urls: urls, runID: "faults-" + newUUID(),
		client: &http.Client{Transport: &http.Transport{Proxy: nil, DisableCompression: true}, Timeout: attemptTimeout}}
}

// run publishes one event every interval until stop is closed or ctx ends, then closes done.
// stop is checked between events, so the last one is not cut off in flight.
func (p *faultPublisher) run(ctx context.Context, stop <-chan struct{}, interval, giveUp time.Duration, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(interval) // the publishing rate, not synchronisation
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
		}
		p.publish(ctx, 0, giveUp)
	}
}

// publish sends the next event (data.active = active) until it is acknowledged, giving up after
// giveUp or when ctx ends. It returns the acknowledged id.
func (p *faultPublisher) publish(ctx context.Context, active int, giveUp time.Duration) (faultID, bool) {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	key := fmt.Sprintf("%s-%d", p.runID, seq)
	body := fmt.Sprintf(`{"type":"queue.status","data":{"pending":%d,"active":%d}}`, seq, active)
	deadline, backoff := time.Now().Add(giveUp), 50*time.Millisecond
	for attempt := 1; ; attempt++ {
		id, err := p.attempt(ctx, key, body)
		p.mu.Lock()
		p.attempts++
		if err == nil {
			p.acked = append(p.acked, faultAck{id: id, seq: seq, at: time.Now()})
			if attempt > 1 {
				p.retried++
			}
			p.mu.Unlock()
			return id, true
		}
		p.lastErr = err.Error()
		if errors.Is(err, errPublishRejected) {
			p.problems = append(p.problems, fmt.Sprintf("event %d: %v", seq, err))
			p.mu.Unlock()
			return faultID{}, false
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.abandoned = append(p.abandoned, fmt.Sprintf("event %d after %d attempts: %v", seq, attempt, err))
			p.mu.Unlock()
			return faultID{}, false
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(backoff): // the producer's back-off before retrying
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// attempt POSTs body once, to the instance whose turn it is.
func (p *faultPublisher) attempt(ctx context.Context, key, body string) (faultID, error) {
	p.mu.Lock()
	base := p.urls[p.turn%len(p.urls)]
	p.turn++
	p.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := p.client.Do(req)
	if err != nil {
		return faultID{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return faultID{}, fmt.Errorf("%s: reading the answer: %w", base, err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		var r struct{ IDs []string }
		if err := json.Unmarshal(raw, &r); err != nil || len(r.IDs) != 1 {
			return faultID{}, fmt.Errorf("%w: 201 with body %s", errPublishRejected, raw)
		}
		id, err := parseFaultID(r.IDs[0])
		if err != nil {
			return faultID{}, fmt.Errorf("%w: %v", errPublishRejected, err)
		}
		return id, nil
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound,
		http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
		return faultID{}, fmt.Errorf("%w: %s: status %d %s", errPublishRejected, base, resp.StatusCode, bytes.TrimSpace(raw))
	default: // 409 (first attempt still running), 429, 503, 5xx: retry with the same key
		return faultID{}, fmt.Errorf("%s: status %d %s", base, resp.StatusCode, bytes.TrimSpace(raw))
	}
}

// ackedCount is how many events were acknowledged so far.
func (p *faultPublisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// faultResync is a resync a subscriber received.
type faultResync struct {
	reason                string
	requested, oldest, at faultID
	hasAt                 bool // SSE only: the id: line, where delivery continues
	after                 int  // events the subscriber had received before it
}

// faultSub is one subscriber (SSE or WebSocket, topic=*). It resumes with its last id when its
// connection ends, after a short jittered delay, on a random instance (after a failed attempt, on
// the other one). Its fields are guarded by mu; run owns the connections.
type faultSub struct {
	name string
	ws   bool
	urls []string
	gate *faultGate
	idle time.Duration // no frame for this long (heartbeats come every second): reconnect

	started chan struct{} // closed once the first position (where it joined) is known
	done    chan struct{} // closed when run returns

	mu             sync.Mutex
	start          faultID // where it joined, live
	hasStart       bool
	last           string // the resume position, as the server wrote it
	got            []faultID
	seqs           []int // data.pending of each received event (-1: not one of ours)
	resyncs        []faultResync
	connects       int
	failedConnects int
	lastErr        string
	problems       []string
}

func newFaultSub(name string, ws bool, urls []string, gate *faultGate, idle time.Duration) *faultSub {
	return &faultSub{name: name, ws: ws, urls: urls, gate: gate, idle: idle, started: make(chan struct{}), done: make(chan struct{})}
}

// run connects to urls[first] and keeps a connection open until ctx ends.
func (s *faultSub) run(ctx context.Context, first int) {
	defer close(s.done)
	target := first
	for ctx.Err() == nil {
		var connected bool
		var err error
		if s.ws {
			connected, err = s.wsSession(ctx, s.urls[target])
		} else {
			connected, err = s.sseSession(ctx, s.urls[target])
		}
		if ctx.Err() != nil {
			return
		}
		s.ended(connected, err)
		if !s.gate.wait(ctx) {
			return
		}
		if connected {
			target = rand.IntN(len(s.urls))
		} else {
			target = (target + 1) % len(s.urls)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(50*time.Millisecond + rand.N(200*time.Millisecond)): // the client's reconnect delay
		}
	}
}

func (s *faultSub) ended(connected bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !connected {
		s.failedConnects++
	}
	if err != nil {
		s.lastErr = err.Error()
	}
}

func (s *faultSub) connected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.connects++
}

func (s *faultSub) resumeFrom() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *faultSub) problem(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.problems) < 20 {
		s.problems = append(s.problems, fmt.Sprintf(format, args...))
	}
}

// joined records the position a live connection started from (the first one only).
func (s *faultSub) joined(pos string) {
	id, err := parseFaultID(pos)
	if err != nil {
		s.problem("join position: %v", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.hasStart {
		s.start, s.hasStart, s.last = id, true, pos
		close(s.started)
	}
}

// event records an event envelope (JSON raw) with id.
func (s *faultSub) event(id string, raw []byte) {
	pid, err := parseFaultID(id)
	if err != nil {
		s.problem("event: %v", err)
		return
	}
	var e struct {
		Data struct{ Pending *int } `json:"data"`
	}
	seq := -1
	if json.Unmarshal(raw, &e) == nil && e.Data.Pending != nil {
		seq = *e.Data.Pending
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got, s.seqs, s.last = append(s.got, pid), append(s.seqs, seq), id
}

// resync records a resync body; at is the SSE id: line ("" on WebSocket, whose frame has none).
func (s *faultSub) resync(raw []byte, at string) {
	var b struct{ Type, Reason, Requested, Oldest string }
	if err := json.Unmarshal(raw, &b); err != nil || b.Reason == "" {
		s.problem("resync %s: %v", raw, err)
		return
	}
	r := faultResync{reason: b.Reason}
	var err error
	if r.requested, err = parseFaultID(b.Requested); err != nil {
		s.problem("resync %s: requested: %v", raw, err)
		return
	}
	if b.Oldest != "" {
		if r.oldest, err = parseFaultID(b.Oldest); err != nil {
			s.problem("resync %s: oldest: %v", raw, err)
		}
	}
	if at != "" {
		if r.at, err = parseFaultID(at); err != nil {
			s.problem("resync %s: id: %v", raw, err)
		}
		r.hasAt = err == nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r.after = len(s.got)
	s.resyncs = append(s.resyncs, r)
	if at != "" {
		s.last = at // as EventSource does: delivery continues from there
	}
}

// sseSession runs one SSE connection to base until it ends; connected is false if it never
// opened.
func (s *faultSub) sseSession(ctx context.Context, base string) (connected bool, err error) {
	var headers map[string]string
	if last := s.resumeFrom(); last != "" {
		headers = map[string]string{"Last-Event-ID": last}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dialDeadline := time.AfterFunc(faultDialTimeout, cancel) // until the response headers
	st, err := dialStream(ctx, streamClient, base+"/api/v1/stream?topic=*", headers)
	dialDeadline.Stop()
	if err != nil {
		return false, err
	}
	defer st.Close()
	s.connected()
	idle := time.NewTimer(s.idle)
	defer idle.Stop()
	for {
		select {
		case f, ok := <-st.frames:
			if !ok {
				<-st.done
				if st.err != nil {
					return true, st.err
				}
				return true, errors.New("stream ended")
			}
			idle.Reset(s.idle)
			switch {
			case f.Event == "resync":
				s.resync([]byte(f.Data), f.ID)
			case f.Event == "shutdown":
			case f.isEvent() && f.HasID:
				s.event(f.ID, []byte(f.Data))
			case f.isEvent():
				s.problem("event without id: %+v", f)
			case f.HasID: // the id-only block a live stream starts with: where it joined
				s.joined(f.ID)
			}
		case <-idle.C:
			return true, fmt.Errorf("no frame for %s", s.idle)
		case <-ctx.Done():
			return true, nil
		}
	}
}

// wsSession runs one WebSocket connection to base (resuming with since=<last id>) until it ends.
func (s *faultSub) wsSession(ctx context.Context, base string) (connected bool, err error) {
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/v1/ws?topic=*"
	if last := s.resumeFrom(); last != "" {
		u += "&since=" + url.QueryEscape(last)
	}
	d := websocket.Dialer{HandshakeTimeout: faultDialTimeout, Proxy: nil}
	conn, resp, err := d.DialContext(ctx, u, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (status %d)", err, resp.StatusCode)
		}
		return false, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // Close is safe beside the reader
	defer stop()
	s.connected()
	for {
		_ = conn.SetReadDeadline(time.Now().Add(s.idle)) // the server pings every second
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return true, err
		}
		var m struct{ Type, ID, Topic, Position, Code, Message string }
		if err := json.Unmarshal(msg, &m); err != nil {
			s.problem("frame %q: %v", msg, err)
			continue
		}
		switch {
		case m.ID != "" && m.Topic != "":
			s.event(m.ID, msg)
		case m.Type == "subscribed":
			if m.Position != "" {
				s.joined(m.Position)
			}
		case m.Type == "resync":
			s.resync(msg, "")
		case m.Type == "pong":
		default:
			s.problem("unexpected frame %s", msg)
		}
	}
}
