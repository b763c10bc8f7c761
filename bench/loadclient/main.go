// Command loadclient is the subscriber side of the fan-out load benchmark (cmd/eventgate
// BenchmarkLoad, docs/performance.md). It runs in a process of its own, so that the clients never
// share the server's Go runtime, scheduler or collector: it opens -n SSE or WebSocket connections
// to -url, prints "ready" on stdout once every one is subscribed, then counts what arrives.
//
// Each event's data carries the publisher's send time ("message":"t=<unix ns>"), so the latency
// of a delivery is its arrival minus the publisher's send: the whole path, HTTP publish, log append,
// log read, fan-out and write. The client ends when every connection has -events events or when
// stdin closes (the driver's "no more will come"), and prints one JSON Result on stdout.
//
// Loopback only: it is pointed at servers the benchmark started. Not part of the eventgate binary.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Result is what the client prints when it ends. Latencies are in milliseconds.
type Result struct {
	Conns      int     `json:"conns"`
	Expected   int64   `json:"expected"`   // conns × events
	Received   int64   `json:"received"`   // deliveries of events carrying a send time
	OutOfOrder int64   `json:"outOfOrder"` // deliveries whose id was not above the connection's previous one
	Dropped    int     `json:"dropped"`    // connections that ended before the client did
	P50        float64 `json:"p50"`
	P90        float64 `json:"p90"`
	P99        float64 `json:"p99"`
	Max        float64 `json:"max"`
	// CPUSeconds is the client's own user and system time from "ready" to its end: on a small
	// machine the clients compete with the server for the same cores.
	CPUSeconds float64 `json:"cpuSeconds"`
}

func main() {
	url := flag.String("url", "", "server base URL, http://127.0.0.1:port")
	n := flag.Int("n", 1000, "connections")
	transport := flag.String("transport", "sse", "sse or websocket")
	events := flag.Int("events", 0, "events each connection expects (0: until stdin closes)")
	flag.Parse()
	if !strings.HasPrefix(*url, "http://127.") {
		fmt.Fprintln(os.Stderr, "loadclient: -url must be a loopback http://127.x address")
		os.Exit(2)
	}
	res, err := run(*url, *n, *transport, *events)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadclient:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// conn is one subscriber's tally; only its reader goroutine writes it until done is closed.
type conn struct {
	lat      []uint32 // microseconds, one per delivery
	outOrder int64
	lastID   [2]uint64
	dropped  bool
}

func run(url string, n int, transport string, events int) (*Result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*conn, n)
	var complete atomic.Int64 // connections that have all the expected events
	allDone := make(chan struct{})
	var wg sync.WaitGroup
	var openErr error
	var errOnce sync.Once
	sem := make(chan struct{}, 64)
	var opened sync.WaitGroup
	for i := range n {
		c := &conn{lat: make([]uint32, 0, max(events, 16))}
		conns[i] = c
		sem <- struct{}{}
		opened.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			read, err := open(ctx, url, transport)
			<-sem
			opened.Done()
			if err != nil {
				errOnce.Do(func() { openErr = err })
				return
			}
			read(func(id [2]uint64, sent int64) {
				if !less(c.lastID, id) {
					c.outOrder++
				}
				c.lastID = id
				c.lat = append(c.lat, uint32(max(time.Now().UnixNano()-sent, 0)/1000))
				if events > 0 && len(c.lat) == events && complete.Add(1) == int64(n) {
					close(allDone)
				}
			})
			if ctx.Err() == nil {
				c.dropped = true
			}
		}()
	}
	opened.Wait()
	if openErr != nil {
		return nil, fmt.Errorf("opening connections: %w", openErr)
	}
	cpu0 := cpuSeconds()
	fmt.Println("ready")
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	select {
	case <-allDone:
	case <-stdinClosed:
	}
	cancel()
	wg.Wait()
	r := tally(conns, int64(n)*int64(events))
	r.CPUSeconds = cpuSeconds() - cpu0
	return r, nil
}

// cpuSeconds is this process's user and system time so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func tally(conns []*conn, expected int64) *Result {
	r := &Result{Conns: len(conns), Expected: expected}
	var all []uint32
	for _, c := range conns {
		all = append(all, c.lat...)
		r.OutOfOrder += c.outOrder
		if c.dropped {
			r.Dropped++
		}
	}
	r.Received = int64(len(all))
	slices.Sort(all)
	at := func(q float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(int(q*float64(len(all))), len(all)-1)]) / 1000
	}
	r.P50, r.P90, r.P99, r.Max = at(0.50), at(0.90), at(0.99), at(1)
	return r
}

// open connects one subscriber and returns its read loop, which calls onEvent per event (in
// arrival order) until the connection or ctx ends.
func open(ctx context.Context, url, transport string) (func(onEvent func(id [2]uint64, sent int64)), error) {
	if transport == "websocket" {
		d := websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 512, NetDialContext: dialNoLinger}
		ws, _, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(url, "http")+"/api/v1/ws", nil)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { ws.Close() })
		return func(onEvent func([2]uint64, int64)) {
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if id, sent, ok := parseEvent(msg); ok {
					onEvent(id, sent)
				}
			}
		}, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/stream", nil)
	resp, err := sseTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("stream: status %d", resp.StatusCode)
	}
	r := bufio.NewReaderSize(resp.Body, 16<<10)
	if _, err := r.ReadSlice('\n'); err != nil { // retry: the server has subscribed
		resp.Body.Close()
		return nil, err
	}
	return func(onEvent func([2]uint64, int64)) {
		defer resp.Body.Close()
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				if !errors.Is(err, bufio.ErrBufferFull) {
					return
				}
				continue // longer than the buffer: not a line this benchmark sends
			}
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				if id, sent, ok := parseEvent(data); ok {
					onEvent(id, sent)
				}
			}
		}
	}, nil
}

// dialNoLinger dials a connection that resets rather than lingers in TIME_WAIT when closed: a
// run's 10,000 connections, closed by the client, would otherwise hold their ephemeral ports for
// a minute, and three runs in a row exhaust the range (28,000 ports by default on Linux).
func dialNoLinger(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c, err
}

var sseTransport = &http.Transport{
	Proxy:       nil,
	DialContext: dialNoLinger,
	// Every stream is its own connection; none goes back to a pool.
	DisableKeepAlives: true,
}

var (
	idKey   = []byte(`"id":"`)
	sentKey = []byte(`"message":"t=`)
)

// parseEvent reads the envelope's id and the publisher's send time from an event's JSON without
// decoding it (the client must stay cheap beside 10,000 connections); ok is false for control
// events and for events without a send time.
func parseEvent(b []byte) (id [2]uint64, sent int64, ok bool) {
	i := bytes.Index(b, sentKey)
	j := bytes.Index(b, idKey)
	if i < 0 || j < 0 {
		return id, 0, false
	}
	rest := b[i+len(sentKey):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return id, 0, false
	}
	sent, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	if err != nil {
		return id, 0, false
	}
	raw := b[j+len(idKey):]
	if end = bytes.IndexByte(raw, '"'); end < 0 {
		return id, 0, false
	}
	ms, seq, _ := bytes.Cut(raw[:end], []byte("-"))
	id[0], _ = strconv.ParseUint(string(ms), 10, 64)
	id[1], _ = strconv.ParseUint(string(seq), 10, 64)
	return id, sent, true
}

// less compares two ids numerically, part by part.
func less(a, b [2]uint64) bool { return a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]) }
