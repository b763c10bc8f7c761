package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// topicQuery is ?topic=jobs/0&topic=jobs/1… with n distinct patterns, each repeated times times.
func topicQuery(n, times int) string {
	var b strings.Builder
	for range times {
		for i := range n {
			fmt.Fprintf(&b, "&topic=jobs/%d", i)
		}
	}
	return "?" + strings.TrimPrefix(b.String(), "&")
}

// TestTopicLimit: a request naming more distinct topic patterns than EVENTGATE_MAX_TOPICS
// (default 64) is refused with 400 invalid_filter on every route that takes a filter; repeats
// do not count.
func TestTopicLimit(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	tests := []struct {
		name, target string
		status       int
	}{
		{"stream", "/api/v1/stream" + topicQuery(65, 1), http.StatusBadRequest},
		{"websocket", "/api/v1/ws" + topicQuery(65, 1), http.StatusBadRequest},
		{"history", "/api/v1/events" + topicQuery(65, 1), http.StatusBadRequest},
		{"history at the limit, repeated", "/api/v1/events" + topicQuery(64, 3), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// A deadline, so that a stream that was wrongly accepted ends and the test fails.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, tt.target, nil))
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			if tt.status == http.StatusOK {
				return
			}
			if code, msg := errorCode(t, rec); code != "invalid_filter" || !strings.Contains(msg, "64") {
				t.Fatalf("error %s %q, want invalid_filter naming the limit", code, msg)
			}
		})
	}
}

// wsReply is a subscribed or error frame.
type wsReply struct {
	Type, Code             string
	Topics, Types, Removed []string
	Message                string
	ID                     string
}

func readReply(t *testing.T, conn *websocket.Conn) wsReply {
	t.Helper()
	var r wsReply
	m := readJSON(t, conn)
	for k, p := range map[string]*string{"type": &r.Type, "code": &r.Code, "message": &r.Message, "id": &r.ID} {
		*p, _ = m[k].(string)
	}
	for k, p := range map[string]*[]string{"topics": &r.Topics, "types": &r.Types, "removed": &r.Removed} {
		if l, ok := m[k].([]any); ok {
			*p = []string{}
			for _, v := range l {
				*p = append(*p, v.(string))
			}
		}
	}
	return r
}

// TestWebSocketTopicLimit: a subscribe that would take a connection past EVENTGATE_MAX_TOPICS —
// in one frame of thousands, or one pattern at a time — gets an error frame too_many_topics; the
// connection stays open and its subscription unchanged.
func TestWebSocketTopicLimit(t *testing.T) {
	t.Parallel()
	ts, log := startHTTP(t, Config{})
	conn := dialWS(t, ts, "?topic=jobs/*", nil)
	topics := make([]string, 4000) // one frame just under the 64 KiB limit
	for i := range topics {
		topics[i] = fmt.Sprintf("notes/n%d", i)
	}
	subscribe := func(topics []string) wsReply {
		t.Helper()
		if err := conn.WriteJSON(map[string]any{"action": "subscribe", "topics": topics}); err != nil {
			t.Fatal(err)
		}
		return readReply(t, conn)
	}
	if r := subscribe(topics); r.Type != "error" || r.Code != "too_many_topics" {
		t.Fatalf("4000 topics in one frame: got %q %q listing %d topics, want error too_many_topics", r.Type, r.Code, len(r.Topics))
	}
	if r := subscribe(topics[:63]); r.Type != "subscribed" || len(r.Topics) != 63 {
		t.Fatalf("63 more topics: got %q %q listing %d topics, want subscribed listing the 63", r.Type, r.Code, len(r.Topics))
	}
	if r := subscribe(topics[63:64]); r.Type != "error" || r.Code != "too_many_topics" {
		t.Fatalf("the 65th topic: got %q %q listing %d topics, want error too_many_topics", r.Type, r.Code, len(r.Topics))
	}
	// Unchanged: notes/<uuid> was never added, jobs/* still delivers.
	publishN(t, log, 1, "note.created", noteData)
	job := publishN(t, log, 1, "job.progress", progressData)
	if r := readReply(t, conn); r.ID != job[0].String() {
		t.Fatalf("got %+v, want only the job event %v", r, job[0])
	}
}

// TestWebSocketRepliesWithChanges: the subscribed frame answering an action lists only what the
// action changed — topics and types added, topics removed — not the whole filter.
func TestWebSocketRepliesWithChanges(t *testing.T) {
	t.Parallel()
	ts, _ := startHTTP(t, Config{})
	conn := dialWS(t, ts, "", nil) // the implicit "*"
	steps := []struct {
		action                 map[string]any
		topics, types, removed []string
	}{
		{map[string]any{"action": "subscribe", "topics": []string{"jobs/*", "notes/*"}},
			[]string{"jobs/*", "notes/*"}, []string{}, []string{"*"}},
		{map[string]any{"action": "subscribe", "topics": []string{"notes/*", "queue"}, "types": []string{"job.progress"}},
			[]string{"queue"}, []string{"job.progress"}, []string{}},
		{map[string]any{"action": "unsubscribe", "topics": []string{"jobs/*", "jobs/x"}},
			[]string{}, []string{}, []string{"jobs/*"}},
	}
	for i, st := range steps {
		if err := conn.WriteJSON(st.action); err != nil {
			t.Fatal(err)
		}
		r := readReply(t, conn)
		want := wsReply{Type: "subscribed", Topics: st.topics, Types: st.types, Removed: st.removed}
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("step %d %v: got %+v, want %+v", i, st.action, r, want)
		}
	}
}
