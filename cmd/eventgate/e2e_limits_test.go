package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/store/redistest"
)

// streamStatus opens an SSE stream and returns its status; a 200 stream stays open until cleanup.
func streamStatus(t *testing.T, base string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/stream", nil)
	resp, err := streamClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return resp.StatusCode
	}
	buf := make([]byte, 1)
	if _, err := resp.Body.Read(buf); err != nil { // the preamble: the slot is held
		t.Fatalf("stream preamble: %v", err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return http.StatusOK
}

// TestE2EPerIPCapAcrossInstances: two instances on one Redis share the per-IP connection count
// (SSE and WebSocket together), and a SIGKILLed instance's connections stop counting once their
// leases lapse.
func TestE2EPerIPCapAcrossInstances(t *testing.T) {
	t.Parallel()
	_, url, prefix := redistest.Client(t)
	env := map[string]string{
		"EVENTGATE_REDIS_URL": url, "EVENTGATE_STREAM_KEY": prefix + "events",
		"EVENTGATE_MAX_CONNECTIONS_PER_IP": "2", "EVENTGATE_CONN_LEASE_TTL": "3s",
	}
	a, b := startServer(t, env), startServer(t, env)

	if got := streamStatus(t, a.URL()); got != http.StatusOK {
		t.Fatalf("first stream on A: %d", got)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+b.addr+"/api/v1/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket on B: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	for name, srv := range map[string]*server{"A": a, "B": b} {
		status, hdr, raw := doRequest(t, http.MethodGet, srv.URL()+"/api/v1/stream", "", nil)
		expectError(t, status, raw, http.StatusTooManyRequests, "too_many_connections")
		if hdr.Get("Retry-After") == "" {
			t.Fatalf("429 from %s without Retry-After", name)
		}
	}
	// Closing the WebSocket frees its slot across instances.
	ws.Close()
	eventually(t, "a slot freed on B is usable on A", func() bool { return tryStream(t, a.URL()) })

	// A holds both slots now. Kill it: its leases count until they lapse, then B admits again.
	a.Kill()
	if tryStream(t, b.URL()) {
		t.Fatal("B admitted a third connection while the killed instance's leases were fresh")
	}
	eventually(t, "the dead instance's leases lapse", func() bool { return tryStream(t, b.URL()) })
}

// tryStream opens a stream and reports whether it was admitted (keeping it open if so).
func tryStream(t *testing.T, base string) bool {
	t.Helper()
	switch got := streamStatus(t, base); got {
	case http.StatusOK:
		return true
	case http.StatusTooManyRequests:
		return false
	default:
		t.Fatalf("stream: %d", got)
		return false
	}
}

// smallWindowDialer dials with a 4 KiB receive buffer, so a client that stops reading makes the
// server's writes block soon.
var smallWindowDialer = &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	if err != nil {
		return err
	}
	return serr
}}

// bigNotes is a batch of n note events of about 600 bytes each.
func bigNotes(n int) string {
	ev := make([]string, n)
	for i := range ev {
		ev[i] = noteCreated(newUUID(), fmt.Sprintf("%03d %s", i, strings.Repeat("x", 480)))
	}
	return batch(ev...)
}

// TestE2ESlowConsumer: a client that stops reading does not hold up anyone. Once the server's
// writes to it block for longer than the write timeout it is closed (WebSocket 1013, SSE ends),
// while a fast subscriber gets every event; the slow one resumes with its last id and loses
// nothing.
func TestE2ESlowConsumer(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"EVENTGATE_WRITE_TIMEOUT": "300ms", "EVENTGATE_RETENTION": "100000"})
	fast := openStream(t, srv.URL()+"/api/v1/stream", nil)
	defer fast.Close()
	fast.next(t, 10*time.Second)

	d := websocket.Dialer{NetDialContext: smallWindowDialer.DialContext, ReadBufferSize: 1024}
	slow, _, err := d.Dial("ws://"+srv.addr+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	// Never answer pings: a pong written to the connection the server has closed would make the
	// client's kernel discard what it still holds (a reset).
	slow.SetPingHandler(func(string) error { return nil })
	if err := slow.WriteJSON(map[string]string{"action": "ping"}); err != nil {
		t.Fatal(err)
	}
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := slow.ReadMessage(); err != nil { // pong: subscribed
		t.Fatal(err)
	}

	slowSSE := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: smallWindowDialer.DialContext}}
	sseResp, err := slowSSE.Get(srv.URL() + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer sseResp.Body.Close()

	var ids []string
	var got []frame
	for range 8 { // ~5 MB: more than the kernel buffers between server and the slow client
		batchIDs := mustPublish(t, srv.URL(), bigNotes(1000), 1000)
		ids = append(ids, batchIDs...)
		// The fast subscriber keeps reading while the rest is published: its client buffers
		// 4,096 frames, and a reader stalled behind them would be cut as too slow itself.
		got = append(got, fast.events(t, len(batchIDs), 60*time.Second)...)
	}
	requireIDs(t, "fast subscriber", frameIDs(got), ids)

	// The slow clients must not read before the server has judged them: publishing can take
	// less than the write timeout (about 250 ms without -race), and a client that then reads
	// has only been slow for a moment; the server rightly keeps it and delivers everything.
	// So wait, with a deadline, until the server has closed both as too slow: a write timed out
	// (write_timeout), or a ping could not be written within it (write_failed).
	eventually(t, "the server closes both slow clients as too slow", func() bool {
		m := scrape(t, srv.URL()+"/metrics")
		cut := func(transport string) float64 {
			tr := `transport="` + transport + `"`
			return m[seriesKey("eventgate_connections_closed_total", tr, `reason="write_timeout"`)] +
				m[seriesKey("eventgate_connections_closed_total", tr, `reason="write_failed"`)]
		}
		return cut("websocket") >= 1 && cut("sse") >= 1
	})

	// The slow client now reads what the kernels held, then the end: a 1013 close frame if the
	// server could still write one, else the connection's close (1006) — its socket was full.
	var last string
	received := 0
	_ = slow.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		_, msg, err := slow.ReadMessage()
		if err != nil {
			if !websocket.IsCloseError(err, websocket.CloseTryAgainLater, websocket.CloseAbnormalClosure) {
				t.Fatalf("slow client ended with %v, want close 1013 or 1006", err)
			}
			break
		}
		received += len(msg)
		if i := strings.Index(string(msg), `"id":"`); i >= 0 {
			last = strings.SplitN(string(msg)[i+6:], `"`, 2)[0]
		}
	}
	if last == ids[len(ids)-1] {
		t.Fatal("the slow client got everything: the test did not make it slow")
	}
	// What the server had accepted for it is bounded: the socket's unsent bytes are capped at
	// 16 KiB (TCP_NOTSENT_LOWAT), one write adds at most a cork's 32 KiB and a frame, and the
	// client's receive buffer is 8 KiB; about 60 KiB in all (25 KiB measured), of ~4.8 MB.
	if received > 256<<10 {
		t.Fatalf("the slow client received %d bytes before its close: the server buffered far more than its sockets' limits", received)
	}
	t.Logf("the slow client received %d bytes before its close", received)
	// The slow SSE client likewise finds its stream ended before the last event.
	sc := bufio.NewScanner(sseResp.Body)
	lastSSE := ""
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			lastSSE = v
		}
	}
	if lastSSE == ids[len(ids)-1] {
		t.Fatal("the slow SSE client got everything: its stream was not ended")
	}
	// Resuming with its last id it gets the rest, in order, once. This client reads, but the
	// write timeout is short and the machine may be loaded: if it is closed as too slow again
	// (1013, or 1006 when the close frame could not be written), it resumes again from its last
	// id, as any client must.
	var rest []string
	for i, id := range ids {
		if id == last {
			rest = ids[i+1:]
		}
	}
	for got := 0; got < len(rest); {
		again, _, err := websocket.DefaultDialer.Dial("ws://"+srv.addr+"/api/v1/ws?since="+last, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = again.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := again.ReadMessage(); err != nil { // subscribed
			t.Fatal(err)
		}
		for got < len(rest) {
			_ = again.SetReadDeadline(time.Now().Add(10 * time.Second))
			var ev struct{ ID string }
			err := again.ReadJSON(&ev)
			if websocket.IsCloseError(err, websocket.CloseTryAgainLater, websocket.CloseAbnormalClosure) {
				t.Logf("resumed connection closed as too slow after event %d: resuming again", got)
				break
			}
			if err != nil || ev.ID != rest[got] {
				t.Fatalf("resumed event %d: %q (%v), want %s", got, ev.ID, err, rest[got])
			}
			last = ev.ID
			got++
		}
		again.Close()
	}
}

// TestE2EDrain: on SIGTERM /readyz turns 503 at once, open streams end with shutdown (SSE) or
// 1012 (WebSocket), a new SSE request meanwhile gets 200 + retry + shutdown, and the process exits
// 0 within the grace period.
func TestE2EDrain(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"EVENTGATE_SHUTDOWN_GRACE": "4s", "EVENTGATE_MAX_CONNECTIONS_PER_IP": "100"})
	// Many streams: their ends are spread over half the grace, so the drain lasts long enough to
	// observe (the chance that all 20 random delays are under 100 ms is nil).
	var streams []*sseStream
	for range 20 {
		st := openStream(t, srv.URL()+"/api/v1/stream", nil)
		defer st.Close()
		st.next(t, 10*time.Second)
		streams = append(streams, st)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+srv.addr+"/api/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	srv.Signal()
	eventuallyStatus(t, srv.URL()+"/readyz", http.StatusServiceUnavailable)
	late := openStream(t, srv.URL()+"/api/v1/stream", nil)
	frames := late.expectEnd(t, 10*time.Second)
	if len(frames) < 2 || frames[0].Retry == "" || frames[len(frames)-1].Event != "shutdown" && frames[len(frames)-2].Event != "shutdown" {
		t.Fatalf("a stream opened during the drain got %+v, want retry: then shutdown", frames)
	}
	status, _, raw := doRequest(t, http.MethodGet, srv.URL()+"/api/v1/ws", "", map[string]string{
		"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
	expectError(t, status, raw, http.StatusServiceUnavailable, "draining")

	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for { // the subscribed frame, then the close
		if _, _, err := ws.ReadMessage(); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseServiceRestart) {
				t.Fatalf("WebSocket ended with %v, want 1012", err)
			}
			break
		}
	}
	for i, st := range streams {
		fs := st.expectEnd(t, 10*time.Second)
		if !hasShutdown(fs) {
			t.Fatalf("stream %d ended without shutdown: %+v", i, fs)
		}
	}
	if code, ok := srv.Wait(10 * time.Second); !ok || code != 0 {
		t.Fatalf("exit %d (exited %v), want 0", code, ok)
	}
}

func hasShutdown(fs []frame) bool {
	for _, f := range fs {
		if f.Event == "shutdown" {
			return true
		}
	}
	return false
}

// TestE2ESecondSignal: a second SIGTERM during the drain ends the process at once, without
// waiting out the grace period.
func TestE2ESecondSignal(t *testing.T) {
	t.Parallel()
	srv := startServer(t, map[string]string{"EVENTGATE_SHUTDOWN_GRACE": "5m"})
	for range 3 { // they keep the drain waiting: their ends are spread over 2.5 minutes
		st := openStream(t, srv.URL()+"/api/v1/stream", nil)
		defer st.Close()
		st.next(t, 10*time.Second)
	}
	srv.Signal()
	eventuallyStatus(t, srv.URL()+"/readyz", http.StatusServiceUnavailable) // draining
	srv.Signal()
	if _, ok := srv.Wait(30 * time.Second); !ok {
		t.Fatal("still running after a second SIGTERM (the grace period is 5 minutes)")
	}
}
