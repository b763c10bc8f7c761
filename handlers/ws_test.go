package handlers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

func startHTTP(t *testing.T, cfg Config) (*httptest.Server, *store.Memory) {
	t.Helper()
	s, log := newTestServer(t, cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts, log
}

func dialWS(t *testing.T, ts *httptest.Server, query string, header http.Header) *websocket.Conn {
	t.Helper()
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws" + query
	conn, resp, err := websocket.DefaultDialer.Dial(u, header)
	if err != nil {
		t.Fatalf("dial %s: %v (%v)", u, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	// The first frame confirms the subscription and says where delivery starts.
	if m := readJSON(t, conn); m["type"] != "subscribed" || m["position"] == nil || m["position"] == "" {
		t.Fatalf("first frame %v, want subscribed with a position", m)
	}
	return conn
}

// readJSON reads one text frame into a map, with a deadline.
func readJSON(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("frame %q: %v", msg, err)
	}
	return m
}

func publishN(t *testing.T, log streams.Log, n int, typ, data string) []event.ID {
	t.Helper()
	var ids []event.ID
	for i := 0; i < n; i++ {
		d, err := event.ParseDraft([]byte(fmt.Sprintf(`{"type":%q,"data":%s}`, typ, fmt.Sprintf(data, i%101))))
		if err != nil {
			t.Fatal(err)
		}
		got, err := log.Append(context.Background(), []event.Draft{d})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got...)
	}
	return ids
}

const progressData = `{"job_id":"` + jobID + `","percent":%d}`
const noteData = `{"note_id":"` + jobID + `","title":"t%d"}`

func TestWebSocketActions(t *testing.T) {
	t.Parallel()
	ts, log := startHTTP(t, Config{})
	conn := dialWS(t, ts, "?topic=jobs/*", nil)
	notes := publishN(t, log, 2, "note.created", noteData)
	jobs := publishN(t, log, 2, "job.progress", progressData)
	for _, id := range jobs {
		if m := readJSON(t, conn); m["id"] != id.String() || m["type"] != "job.progress" {
			t.Fatalf("got %v, want job.progress %v", m, id)
		}
	}
	// ping action
	if err := conn.WriteJSON(map[string]string{"action": "ping"}); err != nil {
		t.Fatal(err)
	}
	if m := readJSON(t, conn); m["type"] != "pong" {
		t.Fatalf("got %v, want pong", m)
	}
	// subscribe with since replays the added topic's history, without repeating jobs.
	if err := conn.WriteJSON(map[string]any{"action": "subscribe", "topics": []string{"notes/*"}, "since": "0"}); err != nil {
		t.Fatal(err)
	}
	if m := readJSON(t, conn); m["type"] != "subscribed" {
		t.Fatalf("got %v, want subscribed", m)
	}
	for _, id := range notes {
		if m := readJSON(t, conn); m["id"] != id.String() {
			t.Fatalf("replay got %v, want note %v", m, id)
		}
	}
	more := publishN(t, log, 1, "note.created", noteData)
	if m := readJSON(t, conn); m["id"] != more[0].String() {
		t.Fatalf("live got %v, want %v", m, more[0])
	}
	// malformed and unknown actions get an error frame, the connection stays.
	for _, bad := range []string{`{`, `{"action":"dance"}`, `{"action":"subscribe","topics":["BAD"]}`, `{"action":"subscribe","since":"x"}`} {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(bad)); err != nil {
			t.Fatal(err)
		}
		if m := readJSON(t, conn); m["type"] != "error" || m["code"] == "" {
			t.Fatalf("%s: got %v, want error frame", bad, m)
		}
	}
	// unsubscribe from notes: only jobs again.
	if err := conn.WriteJSON(map[string]any{"action": "unsubscribe", "topics": []string{"notes/*"}}); err != nil {
		t.Fatal(err)
	}
	if m := readJSON(t, conn); m["type"] != "subscribed" {
		t.Fatalf("got %v", m)
	}
	publishN(t, log, 1, "note.created", noteData)
	last := publishN(t, log, 1, "job.progress", progressData)
	if m := readJSON(t, conn); m["id"] != last[0].String() {
		t.Fatalf("got %v, want only the job event %v", m, last[0])
	}
}

func TestWebSocketCloses(t *testing.T) {
	t.Parallel()
	t.Run("frame too large", func(t *testing.T) {
		t.Parallel()
		ts, _ := startHTTP(t, Config{})
		conn := dialWS(t, ts, "", nil)
		_ = conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", maxInboundFrame+1)))
		wantClose(t, conn, websocket.CloseMessageTooBig)
	})
	t.Run("no pong", func(t *testing.T) {
		t.Parallel()
		ts, _ := startHTTP(t, Config{Heartbeat: 100 * time.Millisecond})
		conn := dialWS(t, ts, "", nil)
		conn.SetPingHandler(func(string) error { return nil }) // never answer pings
		wantClose(t, conn, websocket.ClosePolicyViolation)
	})
	t.Run("drain", func(t *testing.T) {
		t.Parallel()
		s, _ := newTestServer(t, Config{})
		ts := httptest.NewServer(s.Handler())
		defer ts.Close()
		conn := dialWS(t, ts, "", nil)
		if err := conn.WriteJSON(map[string]string{"action": "ping"}); err != nil {
			t.Fatal(err)
		}
		readJSON(t, conn) // the connection is up
		s.Drain()
		wantClose(t, conn, websocket.CloseServiceRestart)
	})
}

func wantClose(t *testing.T, conn *websocket.Conn, code int) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, _, err := conn.ReadMessage()
		if err == nil {
			continue
		}
		if !websocket.IsCloseError(err, code) {
			t.Fatalf("closed with %v, want close code %d", err, code)
		}
		return
	}
}

func TestWebSocketOrigin(t *testing.T) {
	t.Parallel()
	ts, _ := startHTTP(t, Config{AllowedOrigins: []string{"https://app.example"}})
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws"
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{ts.URL, true},
		{"https://app.example", true},
		{"https://evil.example", false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		conn, resp, err := websocket.DefaultDialer.Dial(u, h)
		if tt.ok {
			if err != nil {
				t.Fatalf("origin %q refused: %v", tt.origin, err)
			}
			conn.Close()
			continue
		}
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %q: err %v resp %v, want 403", tt.origin, err, resp)
		}
	}
}

// TestSameEventsOverSSEAndWebSocket checks both transports drain one core identically.
func TestSameEventsOverSSEAndWebSocket(t *testing.T) {
	t.Parallel()
	ts, log := startHTTP(t, Config{})
	conn := dialWS(t, ts, "", nil)
	resp, err := http.Get(ts.URL + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Both are subscribed once the SSE preamble arrived and the WebSocket answers a ping.
	sc := bufio.NewScanner(resp.Body)
	sc.Scan()
	_ = conn.WriteJSON(map[string]string{"action": "ping"})
	readJSON(t, conn)

	ids := publishN(t, log, 50, "job.progress", progressData)
	for i, id := range ids {
		if m := readJSON(t, conn); m["id"] != id.String() {
			t.Fatalf("ws event %d: %v, want %v", i, m["id"], id)
		}
	}
	var got []string
	id := ""
	for len(got) < len(ids) && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			id = v
		}
		if strings.HasPrefix(sc.Text(), "event: ") { // an id-only block (the join position) is no event
			got = append(got, id)
		}
	}
	for i, id := range ids {
		if i >= len(got) || got[i] != id.String() {
			t.Fatalf("sse event %d: %v, want %v", i, got, id)
		}
	}
}

// TestSSEJoinPosition: a live stream starts with an id-only block at the position it joined, so
// a client that drops before its first event resumes from there and misses nothing.
func TestSSEJoinPosition(t *testing.T) {
	t.Parallel()
	ts, log := startHTTP(t, Config{})
	before := publishN(t, log, 2, "job.progress", progressData)
	resp, err := http.Get(ts.URL + "/api/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(resp.Body)
	var head []string
	for len(head) < 4 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		head = append(head, line)
	}
	resp.Body.Close() // dropped before any event
	joined, err := event.ParseID(strings.TrimSuffix(strings.TrimPrefix(head[2], "id: "), "\n"))
	if head[0] != "retry: 2000\n" || head[1] != "\n" || err != nil || head[3] != "\n" {
		t.Fatalf("stream head %q, want retry: then an id-only block", head)
	}
	if before[1].Less(joined) {
		t.Fatalf("joined at %v, after the last event %v", joined, before[1])
	}
	missed := publishN(t, log, 1, "job.progress", progressData)
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/v1/stream", nil)
	req.Header.Set("Last-Event-ID", joined.String())
	again, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Body.Close()
	sc := bufio.NewScanner(again.Body)
	// Resuming from the join position delivers what came after it (the hub may have joined before
	// it dispatched the first two events), ending with the missed one: nothing is lost.
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), "id: ")
		if !ok {
			continue
		}
		id, err := event.ParseID(v)
		if err != nil || !joined.Less(id) {
			t.Fatalf("resumed with %q, not after the join position %v", v, joined)
		}
		if id == missed[0] {
			return
		}
	}
	t.Fatal("stream ended")
}

// TestWebSocketJoinPosition: the subscribed frame on connect carries the start position; a client
// that drops before its first event resumes from it and misses nothing.
func TestWebSocketJoinPosition(t *testing.T) {
	t.Parallel()
	ts, log := startHTTP(t, Config{})
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/api/v1/ws"
	conn, _, err := websocket.DefaultDialer.Dial(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := readJSON(t, conn)
	conn.Close() // dropped before any event
	pos, _ := first["position"].(string)
	if _, err := event.ParseID(pos); err != nil || first["type"] != "subscribed" {
		t.Fatalf("first frame %v, want subscribed with a position", first)
	}
	missed := publishN(t, log, 1, "job.progress", progressData)
	again := dialWS(t, ts, "?since="+pos, nil)
	if m := readJSON(t, again); m["id"] != missed[0].String() {
		t.Fatalf("resumed with %v, want the missed event %v", m, missed[0])
	}
}
