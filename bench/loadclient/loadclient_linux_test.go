package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const testEvents = 5

// eventJSON is an event as eventgate sends it, with the publisher's send time; pad lengthens it
// (WebSocket frames with 16- and 64-bit lengths).
func eventJSON(seq, pad int) string {
	return fmt.Sprintf(`{"id":"1700000000000-%d","type":"job.progress","topic":"queue","data":{"percent":1,"pad":%q,"message":"t=%d"}}`,
		seq, strings.Repeat("x", pad), time.Now().UnixNano())
}

func sseFrame(seq int) string {
	return fmt.Sprintf("id: 1700000000000-%d\nevent: job.progress\ndata: %s\n\n", seq, eventJSON(seq, 0))
}

// sseChunked answers through the ResponseWriter, so the body is chunked; one event goes a byte,
// so a chunk, at a time.
func sseChunked(t *testing.T, closeAfter int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		io.WriteString(w, "retry: 1000\n\n")
		rc.Flush()
		for seq := range testEvents {
			if seq == closeAfter {
				return // the final chunk ends the response
			}
			f := sseFrame(seq)
			if seq == 1 {
				for i := range len(f) {
					io.WriteString(w, f[i:i+1])
					rc.Flush()
				}
				continue
			}
			io.WriteString(w, ": comment\n"+f)
			rc.Flush()
		}
		<-r.Context().Done()
	}
}

// sseRaw takes the connection over as eventgate and the floor do: no chunking, ended by the close.
func sseRaw(w http.ResponseWriter, r *http.Request) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\nretry: 1000\n\n"+sseFrame(0))
	for seq := 1; seq < testEvents; seq++ {
		f := sseFrame(seq)
		for i := range len(f) {
			c.Write([]byte{f[i]})
		}
	}
	_, _ = io.Copy(io.Discard, c)
}

// wsServer sends the subscribed frame, a ping, and events: plain, fragmented (small write
// buffer), one written a byte at a time by hand, and one with a 64-bit length. pongs counts the
// pongs that answer the ping.
func wsServer(t *testing.T, pongs *sync.WaitGroup) http.HandlerFunc {
	up := websocket.Upgrader{WriteBufferSize: 256}
	return func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer ws.Close()
		var once sync.Once
		ws.SetPongHandler(func(data string) error {
			if data != "hi" {
				t.Errorf("pong %q, want hi", data)
			}
			once.Do(pongs.Done)
			return nil
		})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					return
				}
			}
		}()
		ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribed","topics":[],"types":[]}`))
		ws.WriteControl(websocket.PingMessage, []byte("hi"), time.Now().Add(time.Second))
		ws.WriteMessage(websocket.TextMessage, []byte(eventJSON(0, 0)))
		ws.WriteMessage(websocket.TextMessage, []byte(eventJSON(1, 1000))) // fragments of < 256 bytes
		raw := rawFrame(eventJSON(2, 200))
		for i := range raw {
			ws.NetConn().Write(raw[i : i+1])
		}
		ws.NetConn().Write(rawFrame(eventJSON(3, 70_000)))
		ws.WriteMessage(websocket.TextMessage, []byte(eventJSON(4, 0)))
		<-done
	}
}

// rawFrame is one unfragmented, unmasked text frame.
func rawFrame(payload string) []byte {
	var h []byte
	switch n := len(payload); {
	case n < 126:
		h = []byte{0x81, byte(n)}
	case n < 1<<16:
		h = binary.BigEndian.AppendUint16([]byte{0x81, 126}, uint16(n))
	default:
		h = binary.BigEndian.AppendUint64([]byte{0x81, 127}, uint64(n))
	}
	return append(h, payload...)
}

type runFunc func(config, io.Reader, io.Writer) (*Result, error)

var modes = map[string]runFunc{"epoll": runEpoll, "goroutine": runGoroutine}

// runClient runs the client against url; it ends when every connection has its events, or when
// the returned stdin is closed.
func runClient(t *testing.T, run runFunc, url, transport string, n int, stdin io.Reader) *Result {
	t.Helper()
	host, err := loopbackHost(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{url: url, host: host, n: n, transport: transport, events: testEvents, workers: 2}
	pr, pw := io.Pipe()
	go func() {
		if line, _ := bufio.NewReader(pr).ReadString('\n'); line != "ready\n" {
			t.Errorf("stdout %q, want ready", line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	defer pw.Close()
	res, err := run(cfg, stdin, pw)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestClientReceivesEverything(t *testing.T) {
	const n = 4
	for name, run := range modes {
		for _, tc := range []struct {
			name      string
			transport string
			handler   func(pongs *sync.WaitGroup) http.Handler
		}{
			{"sse-chunked", "sse", func(*sync.WaitGroup) http.Handler { return sseChunked(t, -1) }},
			{"sse-raw", "sse", func(*sync.WaitGroup) http.Handler { return http.HandlerFunc(sseRaw) }},
			{"websocket", "websocket", func(p *sync.WaitGroup) http.Handler { return wsServer(t, p) }},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				var pongs sync.WaitGroup
				if tc.transport == "websocket" {
					pongs.Add(n)
				}
				srv := httptest.NewServer(tc.handler(&pongs))
				defer srv.Close()
				stdin, stdinW := io.Pipe() // the events end the run; a stuck run ends in 10 s, and fails
				defer time.AfterFunc(10*time.Second, func() { stdinW.Close() }).Stop()
				defer stdinW.Close()
				res := runClient(t, run, srv.URL, tc.transport, n, stdin)
				if res.Received != n*testEvents || res.Expected != n*testEvents || res.OutOfOrder != 0 || res.Dropped != 0 {
					t.Fatalf("%+v: want %d received, none out of order or dropped", res, n*testEvents)
				}
				pongs.Wait() // every connection answered the ping
			})
		}
	}
}

// TestClientCountsDropped: a server ending the stream early (here with the final chunk) is a
// dropped connection, in both modes; the run then ends when stdin closes.
func TestClientCountsDropped(t *testing.T) {
	const n = 3
	for name, run := range modes {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(sseChunked(t, 2))
			defer srv.Close()
			stdin, stdinW := io.Pipe()
			time.AfterFunc(500*time.Millisecond, func() { stdinW.Close() })
			res := runClient(t, run, srv.URL, "sse", n, stdin)
			if res.Received != n*2 || res.Dropped != n || res.OutOfOrder != 0 {
				t.Fatalf("%+v: want %d received and %d dropped", res, n*2, n)
			}
		})
	}
}

// TestParseSplits feeds SSE (chunked and not) and WebSocket bytes cut at every position.
func TestParseSplits(t *testing.T) {
	sse := "retry: 1000\n\n" + sseFrame(0) + sseFrame(1) + ": c\n" + sseFrame(2)
	chunked := ""
	for _, part := range []string{sse[:7], sse[7:100], sse[100:]} {
		chunked += fmt.Sprintf("%x;ext=1\r\n%s\r\n", len(part), part)
	}
	e2 := eventJSON(2, 40) // in two fragments
	frames := string(rawFrame(eventJSON(0, 0))) + "\x89\x02hi" + string(rawFrame(eventJSON(1, 300))) +
		"\x01\x05" + e2[:5] + "\x80\x7e" + string(binary.BigEndian.AppendUint16(nil, uint16(len(e2)-5))) + e2[5:]
	for _, tc := range []struct {
		name    string
		ws      bool
		chunked bool
		bytes   string
	}{{"sse", false, false, sse}, {"chunked", false, true, chunked}, {"websocket", true, false, frames}} {
		for cut := range len(tc.bytes) {
			p := &progress{events: 3, n: 1, allDone: make(chan struct{})}
			s := &stream{p: p, ws: tc.ws, ready: tc.ws, chunked: tc.chunked, chunkLeft: chunkSize}
			b := []byte(tc.bytes)
			s.feed(b[:cut], 1)
			s.feed(b[cut:], 1)
			if len(s.lat) != 3 || s.outOrder != 0 || s.err != nil || len(s.part) != 0 {
				t.Fatalf("%s cut at %d: %d events, %d out of order, err %v, %d left over", tc.name, cut, len(s.lat), s.outOrder, s.err, len(s.part))
			}
			if tc.ws && len(s.pong) != 8 {
				t.Fatalf("%s cut at %d: pong %x", tc.name, cut, s.pong)
			}
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:80", "http://127.1.2.3:8080/"} {
		if _, err := loopbackHost(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:80", "http://127.example.com:80", "https://127.0.0.1:80", "http://[::1]:80", "http://localhost:80"} {
		if _, err := loopbackHost(u); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}
