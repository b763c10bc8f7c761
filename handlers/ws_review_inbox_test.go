package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/telemetry"
)

// TestWebSocketBurstAnsweredInOrderReview: bursts of actions far past the inbox's 16, sent at once
// while events stream in and the heartbeat pings, are each answered exactly once and in the order
// sent — errors, subscribes and unsubscribes alike, each subscribe's answer naming the topic it
// added and each unsubscribe's the topic it removed — with the events in order between them.
func TestWebSocketBurstAnsweredInOrderReview(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{Heartbeat: 20 * time.Millisecond, WriteTimeout: 5 * time.Second})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	bigNotes(t, log, 400, 2000) // a catch-up of 400 events, under way while the actions arrive
	conn := dialWS(t, ts, "?topic=notes/*&since=0", nil)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	defer bg.Wait()
	defer close(stop)
	bg.Go(func() { // 2 KB notes, steadily: the writer's rounds deliver while actions wait
		data := `{"note_id":"` + jobID + `","title":"` + strings.Repeat("x", 2000) + `"}`
		for !stopped(stop) {
			_, _ = log.Append(context.Background(), []event.Draft{{Type: "note.created", Topic: "notes/" + jobID, Data: []byte(data)}})
			time.Sleep(200 * time.Microsecond) // paces the publisher; synchronises nothing
		}
	})
	const bursts, perBurst = 4, 60
	var want []string
	for b := range bursts {
		for i := range perBurst {
			n := b*perBurst + i
			switch i % 3 {
			case 0:
				want = append(want, fmt.Sprintf("error a%d", n))
			case 1:
				want = append(want, fmt.Sprintf("+notes/x%d", n))
			case 2:
				want = append(want, fmt.Sprintf("-notes/x%d", n-1))
			}
		}
	}
	sent := make(chan error, 1)
	go func() { // each burst in one go; the next once the last burst's first answer is in
		for _, w := range want {
			var msg string
			switch w[0] {
			case 'e':
				msg = fmt.Sprintf(`{"action":%q}`, w[len("error "):])
			case '+':
				msg = fmt.Sprintf(`{"action":"subscribe","topics":[%q]}`, w[1:])
			case '-':
				msg = fmt.Sprintf(`{"action":"unsubscribe","topics":[%q]}`, w[1:])
			}
			if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var got []string
	var last event.ID
	events := 0
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for len(got) < len(want) {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("after %d answers: %v", len(got), err)
		}
		var m struct {
			ID      string   `json:"id"`
			Type    string   `json:"type"`
			Message string   `json:"message"`
			Topics  []string `json:"topics"`
			Removed []string `json:"removed"`
		}
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("%.80q: %v", msg, err)
		}
		switch {
		case m.ID != "":
			id, err := event.ParseID(m.ID)
			if err != nil || id.Compare(last) <= 0 {
				t.Fatalf("event %s after %s (%v)", m.ID, last, err)
			}
			last = id
			events++
		case m.Type == "error":
			a, _, _ := strings.Cut(strings.TrimPrefix(m.Message, `unknown action "`), `"`)
			got = append(got, "error "+a)
		case m.Type == "subscribed" && len(m.Topics) == 1 && len(m.Removed) == 0:
			got = append(got, "+"+m.Topics[0])
		case m.Type == "subscribed" && len(m.Removed) == 1 && len(m.Topics) == 0:
			got = append(got, "-"+m.Removed[0])
		default:
			t.Fatalf("unexpected %.120q", msg)
		}
		if i := len(got) - 1; i >= 0 && got[i] != want[i] {
			t.Fatalf("answer %d: %q, want %q (answers so far: %q)", i, got[i], want[i], got[max(0, i-3):])
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d answers in order, %d events between them", len(got), events)
}

// TestWebSocketHeldReaderDeafClientReview: a client that fills the inbox while its writer is
// blocked on it, so that the reader is held and pings are not counted, and then reads nothing and
// sends nothing, is not kept alive by that: the write timeout closes it (1013 write_timeout), and
// the held reader is let go, so the connection is released within about a write timeout.
func TestWebSocketHeldReaderDeafClientReview(t *testing.T) {
	t.Parallel()
	const writeTimeout = 400 * time.Millisecond
	s, log := newTestServer(t, Config{Heartbeat: 40 * time.Millisecond, WriteTimeout: writeTimeout})
	ts := smallBufferServer(t, s)
	conn := dialSmallWindow(t, ts)
	rawWS(t, conn, "/api/v1/ws") // and reads nothing more
	w := onlyConn(t, s)
	var reason telemetry.CloseReason
	held := time.Now()
	go func() { bigNotes(t, log, 60, 20000) }() // ~1.2 MB: the writer blocks
	c := &rawClient{conn: conn}
	for i := range 3 * wsInboxMessages {
		if err := c.send(websocket.TextMessage, []byte(`{"action":"ping"}`)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	waitUntil(t, "the reader is held", w.held.Load)
	waitUntil(t, "the connection is released", func() bool {
		if len(serverConns(s)) != 0 || s.Active() != 0 {
			return false
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		reason = w.reason
		return true
	})
	took := time.Since(held)
	t.Logf("closed (%s) %v after the inbox was filled", reason, took)
	if reason != telemetry.CloseWriteTimeout {
		t.Errorf("closed for %s, want %s", reason, telemetry.CloseWriteTimeout)
	}
	// The write timeout (a batch's frames may stretch it to about two), the close frame's second
	// and a margin for a loaded machine.
	if limit := 3*writeTimeout + wsCloseWait + time.Second; took > limit {
		t.Errorf("released %v after the inbox was filled; want within %v", took, limit)
	}
}
