package handlers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/eventgate/eventgate/event"
)

// slowReadConn reads at most 8 KiB every 2 ms (about 4 MB/s): a live client on a slow link. The
// sleep paces reading; it synchronises nothing.
type slowReadConn struct{ net.Conn }

func (c slowReadConn) Read(b []byte) (int, error) {
	time.Sleep(2 * time.Millisecond)
	return c.Conn.Read(b[:min(len(b), 8<<10)])
}

// TestWebSocketActionsDoNotHidePongsAttack: a live client on a slow link, fed far more than it can
// read, that sends an action every few milliseconds and answers every ping at once, is not closed
// for a ping timeout (the build before the inbox failed 4 of 4 at this 200 ms heartbeat; a
// shorter one would also catch a loaded machine's stalls). Its pongs reach the server behind its actions; while
// the server's reader waited for the writer to take one action (a writer in a long delivery), the
// pongs after the next action sat unread, and the pings counted as missed closed a live client.
func TestWebSocketActionsDoNotHidePongsAttack(t *testing.T) {
	t.Parallel()
	s, log := newTestServer(t, Config{Heartbeat: 200 * time.Millisecond, WriteTimeout: 5 * time.Second})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	stop := make(chan struct{})
	var bg sync.WaitGroup
	defer bg.Wait()
	defer close(stop)
	bg.Go(func() { // 40 KB notes as fast as the log takes them: the writer's rounds are long
		title := strings.Repeat("x", 40000)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = log.Append(context.Background(), []event.Draft{{Type: "note.created", Topic: "notes/" + jobID,
				Data: []byte(`{"note_id":"` + jobID + `","title":"` + title + `"}`)}})
			if i%4 == 3 {
				time.Sleep(time.Millisecond) // paces the publisher; synchronises nothing
			}
		}
	})
	rc, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c := &rawClient{conn: rc}
	br := rawWS(t, rc, "/api/v1/ws")
	early, _ := br.Peek(br.Buffered()) // frames read with the handshake's answer
	c.br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), slowReadConn{rc}), 4096)
	_ = rc.SetReadDeadline(time.Now().Add(20 * time.Second))
	var pings atomic.Int64
	closed := make(chan string, 1)
	bg.Go(func() {
		for {
			f, err := readRawFrame(c.br)
			if err != nil {
				closed <- "read: " + err.Error()
				return
			}
			switch f.op {
			case websocket.PingMessage:
				pings.Add(1)
				_ = c.send(websocket.PongMessage, f.payload)
			case websocket.CloseMessage:
				code := 0
				if len(f.payload) >= 2 {
					code = int(binary.BigEndian.Uint16(f.payload))
				}
				closed <- fmt.Sprintf("close frame %d %q", code, f.payload[min(2, len(f.payload)):])
				return
			}
		}
	})
	end := time.After(1500 * time.Millisecond)
	for sent := 0; ; sent++ {
		select {
		case why := <-closed:
			t.Fatalf("a live client was closed after %d actions and %d pings: %s", sent, pings.Load(), why)
		case <-end:
			if pings.Load() < 4 {
				t.Fatalf("only %d pings in 1.5 s at a 200 ms heartbeat: the test did not test", pings.Load())
			}
			t.Logf("%d actions, %d pings answered, still open", sent, pings.Load())
			return
		default:
		}
		if err := c.send(websocket.TextMessage, []byte(`{"action":"ping"}`)); err != nil {
			t.Fatalf("sending action %d: %v", sent, err)
		}
		time.Sleep(3 * time.Millisecond) // paces the client's actions; synchronises nothing
	}
}
