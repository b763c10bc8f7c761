package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
)

// Attacks on the SSE pump's single wake-up (streamWake, commit 205d133): lost wake-ups, the
// heartbeat, the drain, token expiry, the client's departure and the order of what is sent when
// several reasons are due at once.

const shutdownLine = "event: shutdown"

// quietServer is newTestServer logging nowhere, served over loopback.
func quietServer(t *testing.T, cfg Config) (*Server, *store.Memory, *httptest.Server) {
	t.Helper()
	s, log := newLoggedServer(t, cfg, slog.New(slog.DiscardHandler))
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, log, ts
}

// waitLine returns the next line of r with the prefix, failing after wait or at the stream's end.
func waitLine(t *testing.T, r *sseReader, prefix string, wait time.Duration) string {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				t.Fatalf("stream ended before a %q line", prefix)
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			t.Fatalf("no %q line within %v", prefix, wait)
		}
	}
}

// restUntilEnd collects r's remaining lines until the stream ends, failing after wait.
func restUntilEnd(t *testing.T, r *sseReader, wait time.Duration) []string {
	t.Helper()
	var got []string
	timeout := time.After(wait)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				return got
			}
			got = append(got, line)
		case <-timeout:
			t.Fatalf("stream still open after %v; lines so far %q", wait, got)
		}
	}
}

// TestSSEWakeEveryEventDelivered publishes one event at a time, each only after the previous one
// arrived, so every publish meets the pump at a different point of its loop (parked, just woken,
// writing). The heartbeat is an hour away: a lost wake-up is never rescued by a later one.
func TestSSEWakeEveryEventDelivered(t *testing.T) {
	t.Parallel()
	_, log, ts := quietServer(t, Config{Heartbeat: time.Hour})
	r := openAuthSSE(t, ts.URL+"/api/v1/stream")
	waitLine(t, r, "id: ", 5*time.Second) // the join position: subscribed
	for i := range 300 {
		// Two rounds in three publish a batch of two.
		ids := publishN(t, log, 1+min(1, i%3), "job.progress", progressData)
		for _, want := range ids {
			if got := nextSSEID(t, r); got != want.String() {
				t.Fatalf("round %d: id %s, want %s", i, got, want)
			}
		}
	}
}

// TestSSEWakeCatchUpWithoutPublish resumes behind three pages of history: the catch-up is
// delivered with no later publish to wake the stream.
func TestSSEWakeCatchUpWithoutPublish(t *testing.T) {
	t.Parallel()
	_, log, ts := quietServer(t, Config{Heartbeat: time.Hour})
	ids := publishN(t, log, 600, "job.progress", progressData)
	r := openAuthSSE(t, ts.URL+"/api/v1/stream?since="+ids[0].String())
	for _, want := range ids[1:] {
		if got := nextSSEID(t, r); got != want.String() {
			t.Fatalf("catch-up id %s, want %s", got, want)
		}
	}
}

// failingReads fails the log's Read (catch-up) while fails is positive.
type failingReads struct {
	*store.Memory
	fails atomic.Int32
}

func (l *failingReads) Read(ctx context.Context, after event.ID, limit int) (streams.Page, error) {
	if l.fails.Add(-1) >= 0 {
		return streams.Page{}, errors.New("injected read failure")
	}
	return l.Memory.Read(ctx, after, limit)
}

// TestSSEWakeCatchUpRetry: a store error during catch-up is retried (a second later) until it
// succeeds, with nothing published meanwhile to wake the stream.
func TestSSEWakeCatchUpRetry(t *testing.T) {
	t.Parallel()
	mem := store.NewMemory(1000)
	flaky := &failingReads{Memory: mem}
	hub := streams.NewHub(flaky, streams.HubOptions{Window: -1}) // no window: catch-up reads the store
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s, err := New(Config{Heartbeat: time.Hour}, Deps{Hub: hub, Log: flaky, Receipts: store.NewMemoryReceipts(),
		Leases: store.NewMemoryLeases(), Jobs: store.NewMemoryJobs(time.Hour), Store: mem,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	ids := publishN(t, mem, 5, "job.progress", progressData)
	flaky.fails.Store(2) // two retries: the retry timer is re-armed after it fired once
	r := openAuthSSE(t, ts.URL+"/api/v1/stream?since="+ids[0].String())
	for _, want := range ids[1:] {
		if got := nextSSEID(t, r); got != want.String() {
			t.Fatalf("id %s after retries, want %s", got, want)
		}
	}
	if n := flaky.fails.Load(); n >= 0 {
		t.Fatalf("fails left %d: the injected errors were not met", n)
	}
}

// TestSSEHeartbeatIdleAndBusy runs on a fake clock: a ping every interval, exactly, on an idle
// stream and on one receiving an event every second (events must neither postpone pings nor add any).
func TestSSEHeartbeatIdleAndBusy(t *testing.T) {
	for _, busy := range []bool{false, true} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, log := newLoggedServer(t, Config{Heartbeat: 10 * time.Second}, slog.New(slog.DiscardHandler))
				ctx, cancel := context.WithCancel(context.Background())
				req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/stream", nil)
				rec := &lockedRecorder{rec: httptest.NewRecorder()}
				done := make(chan struct{})
				go func() { defer close(done); s.Handler().ServeHTTP(rec, req) }()
				synctest.Wait()
				for sec := 1; sec <= 95; sec++ {
					if busy {
						publishN(t, log, 1, "job.progress", progressData)
					}
					time.Sleep(time.Second) // fake clock
					synctest.Wait()
					if n, want := strings.Count(rec.body(), ": ping\n\n"), sec/10; n != want {
						t.Fatalf("%d pings after %ds, want %d", n, sec, want)
					}
				}
				if busy && strings.Count(rec.body(), "event: job.progress") != 95 {
					t.Fatalf("busy stream delivered %d events, want 95", strings.Count(rec.body(), "event: job.progress"))
				}
				cancel()
				<-done
			})
		})
	}
}

// TestSSEDrainEveryStream: every stream ends with the shutdown frame within the spread, nothing
// after it, also while events are being published; with DrainSpread 0 and with a spread.
func TestSSEDrainEveryStream(t *testing.T) {
	for _, spread := range []time.Duration{0, 300 * time.Millisecond} {
		t.Run(spread.String(), func(t *testing.T) {
			t.Parallel()
			s, log, ts := quietServer(t, Config{Heartbeat: time.Hour, DrainSpread: spread, MaxConnectionsPerIP: 100})
			const n = 12
			readers := make([]*sseReader, n)
			for i := range readers {
				readers[i] = openAuthSSE(t, ts.URL+"/api/v1/stream")
				waitLine(t, readers[i], "id: ", 5*time.Second)
			}
			stop := make(chan struct{})
			var pub sync.WaitGroup
			defer pub.Wait()
			defer close(stop) // also when the test fails first
			pub.Add(1)
			go func() { // events keep coming during the drain
				defer pub.Done()
				// At most 60 events (3 lines each): a reader's 1024-line buffer never fills up.
				for range 60 {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond): // pacing: spread over the drain
					}
					publishN(t, log, 1, "job.progress", progressData)
				}
			}()
			s.Drain()
			for i, r := range readers {
				rest := restUntilEnd(t, r, spread+5*time.Second)
				checkEndsWithShutdown(t, fmt.Sprintf("stream %d", i), rest)
			}
			eventually(t, "subscriptions and slots released", func() bool { return s.hub.Len() == 0 && s.Active() == 0 })
		})
	}
}

// checkEndsWithShutdown fails unless lines hold the shutdown frame and no event line after it.
func checkEndsWithShutdown(t *testing.T, what string, lines []string) {
	t.Helper()
	at := -1
	for i, l := range lines {
		if l == shutdownLine {
			if at >= 0 {
				t.Fatalf("%s: two shutdown frames: %q", what, lines)
			}
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("%s ended without a shutdown frame (last lines %q)", what, lines[max(0, len(lines)-6):])
	}
	for _, l := range lines[at+1:] {
		if strings.HasPrefix(l, "id: ") || (strings.HasPrefix(l, "event: ") && l != shutdownLine) {
			t.Fatalf("%s: %q after the shutdown frame: %q", what, l, lines[at:])
		}
	}
}

// TestSSEDrainRacesSubscribe opens streams while the drain starts: every stream answered 200 ends
// with a shutdown frame (the pump's, or the refusal's) and is released.
func TestSSEDrainRacesSubscribe(t *testing.T) {
	t.Parallel()
	for round := range 6 {
		s, _, ts := quietServer(t, Config{Heartbeat: time.Hour})
		const n = 8
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/api/v1/stream", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					return
				}
				defer resp.Body.Close()
				var b bytes.Buffer
				_, err = b.ReadFrom(resp.Body) // the stream must end by itself, before the timeout
				if err != nil || !strings.Contains(b.String(), shutdownLine+"\n") {
					errs <- fmt.Errorf("round %d stream %d: err %v, body %q", round, i, err, b.String())
				}
			}()
		}
		if round%2 == 0 {
			runtime.Gosched() // odd rounds drain before the requests can arrive, even ones among them
		}
		s.Drain()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		eventually(t, "released", func() bool { return s.hub.Len() == 0 && s.Active() == 0 })
	}
}

// recSink is an sseSink that records what the pump writes.
type recSink struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	gone context.Context
}

func (k *recSink) write(b []byte, _ time.Duration) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.buf.Write(b)
	return nil
}
func (k *recSink) onGone(f func()) func() { return afterFunc(k.gone, f) }
func (k *recSink) close()                 {}
func (k *recSink) cutAt(time.Time) func() { return func() {} }
func (k *recSink) cut() bool              { return false }
func (k *recSink) String() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.buf.String()
}

// TestSSEWakeManyReasonsAtOnce starts the pump with several reasons already due (set before it
// parks, as a timer firing before the pump starts does): a terminal one is sent and nothing
// after it; otherwise the ping and the events all go out.
func TestSSEWakeManyReasonsAtOnce(t *testing.T) {
	t.Parallel()
	cases := []struct {
		due      uint32
		terminal string // "" when the pump keeps going
	}{
		{wakeEvents | wakeBeat | wakeDrainNow, "event: shutdown\n"},
		{wakeEvents | wakeBeat | wakeExpired, "event: auth_expired\n"},
		{wakeExpired, "event: auth_expired\n"}, // expiry already past when the pump starts
		{wakeEvents | wakeExpired | wakeDrainNow, "event: shutdown\n"},
		{wakeEvents | wakeBeat | wakeDrain, ""},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%07b", c.due), func(t *testing.T) {
			t.Parallel()
			s, log := newLoggedServer(t, Config{Heartbeat: time.Hour, DrainSpread: time.Hour}, slog.New(slog.DiscardHandler))
			wake := newStreamWake()
			sub, err := s.hub.SubscribeWith(context.Background(), event.Filter{}, streams.Live, streams.SubscribeOptions{Wake: wake.events})
			if err != nil {
				t.Fatal(err)
			}
			if c.due&wakeEvents != 0 {
				publishN(t, log, 3, "job.progress", progressData)
				eventually(t, "the events' wake-up", func() bool { return wake.due.Load()&wakeEvents != 0 })
			}
			if c.due&wakeDrain != 0 {
				s.Drain()
			}
			wake.set(c.due &^ wakeDrain)
			gone, leave := context.WithCancel(context.Background())
			defer leave()
			sink := &recSink{gone: gone}
			info := &connInfo{s: s, tm: s.metrics.Connections(telemetry.SSE)}
			ended := make(chan struct{})
			go func() { defer close(ended); s.pump(sink, sub, wake, info, func() {}) }()
			if c.terminal != "" {
				select {
				case <-ended:
				case <-time.After(5 * time.Second):
					t.Fatalf("pump still running; sent %q", sink.String())
				}
				out := sink.String()
				if !strings.HasPrefix(out[strings.LastIndex(out, "event: "):], c.terminal) || strings.Count(out, "event: ") > strings.Count(out, "event: job")+1 {
					t.Fatalf("sent %q, want it to end with %q and one terminal frame", out, c.terminal)
				}
				return
			}
			eventually(t, "ping and events", func() bool {
				out := sink.String()
				return strings.Contains(out, ": ping\n\n") && strings.Count(out, "event: job.progress") == 3
			})
			leave()
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				t.Fatal("pump kept running after the client left")
			}
			if n := s.hub.Len(); n != 0 {
				t.Fatalf("hub holds %d subscriptions after the pump ended", n)
			}
		})
	}
}

// TestSSEWriterSinkNoticesDeparture: served through the ResponseWriter (no hijack: a recorder),
// the stream ends as soon as the request's context does, heartbeat an hour away.
func TestSSEWriterSinkNoticesDeparture(t *testing.T) {
	t.Parallel()
	s, _ := newLoggedServer(t, Config{Heartbeat: time.Hour}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/v1/stream", nil)
	rec := &lockedRecorder{rec: httptest.NewRecorder()}
	done := make(chan struct{})
	go func() { defer close(done); s.Handler().ServeHTTP(rec, req) }()
	eventually(t, "subscribed", func() bool { return s.hub.Len() == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still streaming 5s after the client left")
	}
	if s.hub.Len() != 0 || s.Active() != 0 {
		t.Fatalf("after departure: %d subscriptions, %d active", s.hub.Len(), s.Active())
	}
}

// TestSSEDepartureReleasesEverything (not parallel: counts goroutines): clients that leave an
// idle stream (heartbeat an hour away) release the subscription, the slot and every goroutine
// promptly; streams with a fast heartbeat leave no timer goroutines behind either.
func TestSSEDepartureReleasesEverything(t *testing.T) {
	for _, hb := range []time.Duration{time.Hour, 5 * time.Millisecond} {
		t.Run(hb.String(), func(t *testing.T) {
			s, _, ts := quietServer(t, Config{Heartbeat: hb})
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			runtime.GC()
			base := runtime.NumGoroutine()
			const n = 10
			var resps []*http.Response
			for range n {
				resp, err := client.Get(ts.URL + "/api/v1/stream")
				if err != nil {
					t.Fatal(err)
				}
				resps = append(resps, resp)
			}
			eventually(t, "all subscribed", func() bool { return s.hub.Len() == n && s.Active() == n })
			start := time.Now()
			for _, r := range resps {
				r.Body.Close()
			}
			tr.CloseIdleConnections()
			deadline := time.Now().Add(3 * time.Second)
			for s.hub.Len() != 0 || s.Active() != 0 || runtime.NumGoroutine() > base {
				if time.Now().After(deadline) {
					t.Fatalf("3s after departure: %d subscriptions, %d active, %d goroutines (base %d)",
						s.hub.Len(), s.Active(), runtime.NumGoroutine(), base)
				}
				time.Sleep(5 * time.Millisecond) // poll interval
			}
			t.Logf("released in %v", time.Since(start))
			// Stopped timers must not come back: a few heartbeat intervals later, still nothing.
			for range 20 {
				time.Sleep(hb % time.Second) // pacing: let any leftover timer fire (0 for the hour)
				if g := runtime.NumGoroutine(); g > base {
					t.Fatalf("%d goroutines after release, base %d", g, base)
				}
			}
		})
	}
}
