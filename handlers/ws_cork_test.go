package handlers

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// corkPair upgrades a loopback connection as the handler does (progressHijacker under gorilla)
// and returns the server's corkConn and gorilla connection, and the client's.
func corkPair(t *testing.T) (*corkConn, *websocket.Conn, *websocket.Conn) {
	t.Helper()
	server := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(progressHijacker{w}, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		server <- c
	}))
	t.Cleanup(srv.Close)
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	sc := <-server
	t.Cleanup(func() { _ = sc.Close() })
	return sc.UnderlyingConn().(*corkConn), sc, client
}

// TestCorkConnFrames: text frames framed by appendTextFrame, of every length encoding, written as
// one batch, reach a gorilla client as the messages they carry, in order; after a close frame no
// batch is written.
func TestCorkConnFrames(t *testing.T) {
	t.Parallel()
	cork, sc, client := corkPair(t)
	var msgs [][]byte
	var batch []byte
	for _, n := range []int{0, 1, 125, 126, 127, 65535, 65536, 200000} {
		m := bytes.Repeat([]byte{'a' + byte(n%26)}, n)
		msgs = append(msgs, m)
		batch = appendTextFrame(batch, m)
	}
	written := make(chan error, 1)
	go func() { written <- cork.writeText(batch, time.Now().Add(10*time.Second)) }()
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i, want := range msgs {
		kind, got, err := client.ReadMessage()
		if err != nil || kind != websocket.TextMessage || !bytes.Equal(got, want) {
			t.Fatalf("message %d: kind %d, %d bytes, %v; want text of %d bytes", i, kind, len(got), err, len(want))
		}
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if err := sc.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""), time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := cork.writeText(appendTextFrame(nil, []byte("late")), time.Now().Add(time.Second)); !errors.Is(err, websocket.ErrCloseSent) {
		t.Fatalf("a batch after the close frame: %v, want ErrCloseSent", err)
	}
	if _, _, err := client.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Fatalf("after the close frame the client read %v, want the close", err)
	}
}

// TestCorkConnControlBesideBatches: pings written by another goroutine (as gorilla does for a
// close from the heartbeat) never split a batch: the client reads every message whole and in
// order, and every ping.
func TestCorkConnControlBesideBatches(t *testing.T) {
	t.Parallel()
	cork, sc, client := corkPair(t)
	const batches, perBatch, pings = 200, 5, 200
	pinged := make(chan struct{}, pings)
	client.SetPingHandler(func(string) error { pinged <- struct{}{}; return nil })
	var wg sync.WaitGroup
	wg.Go(func() {
		for range pings {
			if err := sc.WriteControl(websocket.PingMessage, []byte("p"), time.Now().Add(10*time.Second)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for b := range batches {
			var batch []byte
			for i := range perBatch {
				batch = appendTextFrame(batch, []byte(strings.Repeat("x", 100*i)+string(rune('A'+b%26))))
			}
			if err := cork.writeText(batch, time.Now().Add(10*time.Second)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	_ = client.SetReadDeadline(time.Now().Add(20 * time.Second))
	for b := range batches {
		for i := range perBatch {
			_, got, err := client.ReadMessage()
			want := strings.Repeat("x", 100*i) + string(rune('A'+b%26))
			if err != nil || string(got) != want {
				t.Fatalf("batch %d message %d: %q, %v", b, i, got, err)
			}
		}
	}
	wg.Wait()
	// The client handles pings inside ReadMessage: every one was sent before "end".
	if err := cork.writeText(appendTextFrame(nil, []byte("end")), time.Now().Add(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := client.ReadMessage(); err != nil || string(got) != "end" {
		t.Fatalf("last message %q, %v; want end", got, err)
	}
	if len(pinged) != pings {
		t.Fatalf("the client read %d pings of %d", len(pinged), pings)
	}
}

// TestCorkConnCloseBesideBlockedBatch: a close written from another goroutine (stop: the drain, an
// expired token) while a batch is blocked on a client that reads nothing gives up at its own
// deadline, as it did behind gorilla's lock; it does not wait for the batch.
func TestCorkConnCloseBesideBlockedBatch(t *testing.T) {
	t.Parallel()
	cork, sc, _ := corkPair(t) // the client never reads
	blocked := make(chan error, 1)
	go func() {
		big := appendTextFrame(nil, bytes.Repeat([]byte("x"), 8<<20)) // far past the socket buffers
		blocked <- cork.writeText(big, time.Now().Add(30*time.Second))
	}()
	waitUntil(t, "the batch to block", func() bool {
		if cork.mu.TryLock() {
			cork.mu.Unlock()
			return false
		}
		return true
	})
	start := time.Now()
	err := sc.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseServiceRestart, ""), time.Now().Add(200*time.Millisecond))
	if took := time.Since(start); err == nil || took > 5*time.Second {
		t.Fatalf("close beside a blocked batch: %v after %s; want a timeout at its 200 ms deadline", err, took)
	}
	_ = sc.Close() // as stop does: ends the blocked batch
	if err := <-blocked; err == nil {
		t.Fatal("the blocked batch succeeded after the socket was closed")
	}
}
