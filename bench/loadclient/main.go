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
// Two ways to read (-mode): epoll, the default, has a few threads each reading its share of the
// sockets through its own epoll instance with raw syscalls (epoll_linux.go, parse.go); goroutine
// is the usual Go client, one goroutine per connection through net/http or gorilla/websocket
// (goroutine.go), as used up to session 5. Epoll spends only about 10 % less CPU per delivery
// (most of either's cost is the kernel's TCP receive path, and the ACKs an eager reader sends
// show up as server CPU instead), but it adds far less latency of its own: thousands of client
// goroutines queueing for the same 2 cores delayed the arrival they measured (at 2,000 x 500 the
// floor's p99 was 120 ms with them, 100 ms with epoll; docs/performance.md#the-load-client).
//
// Loopback only: it is pointed at servers the benchmark started. Not part of the eventgate binary.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
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
	// Reads is how many reads returned data (epoll mode; 0 in goroutine mode): the kernel's
	// receive path, an ACK included, is most of the client's cost, and how many events one read
	// brings depends on how far behind the server's writes are.
	Reads int64 `json:"reads,omitempty"`
}

func main() {
	url := flag.String("url", "", "server base URL, http://127.0.0.1:port")
	n := flag.Int("n", 1000, "connections")
	transport := flag.String("transport", "sse", "sse or websocket")
	events := flag.Int("events", 0, "events each connection expects (0: until stdin closes)")
	mode := flag.String("mode", "epoll", "epoll (a few threads reading every socket) or goroutine (one per connection)")
	workers := flag.Int("workers", runtime.GOMAXPROCS(0), "epoll mode: reader threads, each with its share of the connections")
	flag.Parse()
	host, err := loopbackHost(*url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadclient:", err)
		os.Exit(2)
	}
	cfg := config{url: *url, host: host, n: *n, transport: *transport, events: *events, workers: max(*workers, 1)}
	var res *Result
	switch *mode {
	case "epoll":
		res, err = runEpoll(cfg, os.Stdin, os.Stdout)
	case "goroutine":
		res, err = runGoroutine(cfg, os.Stdin, os.Stdout)
	default:
		err = fmt.Errorf("-mode %q: epoll or goroutine", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadclient:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
}

// config is one run's parameters.
type config struct {
	url       string // http://127.x.x.x:port
	host      string // its 127.x.x.x:port, the address dialled and the Host header
	n         int
	transport string
	events    int
	workers   int
}

// loopbackHost is the host:port of url, which must be http:// to a loopback IP literal: the client
// is pointed only at servers the benchmark started, never at a name that could resolve elsewhere.
func loopbackHost(url string) (string, error) {
	hostPort, ok := strings.CutPrefix(url, "http://")
	hostPort = strings.TrimSuffix(hostPort, "/")
	h, _, err := net.SplitHostPort(hostPort)
	if ip := net.ParseIP(h); !ok || err != nil || ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return "", errors.New("-url must be a loopback http://127.x.x.x:port address")
	}
	return hostPort, nil
}

// conn is one subscriber's tally; only its reader (goroutine or epoll worker) writes it until the
// run ends.
type conn struct {
	lat      []uint32 // microseconds, one per delivery
	outOrder int64
	lastID   [2]uint64
	dropped  bool
}

// progress is what every connection shares: how many have all their events.
type progress struct {
	events   int   // expected per connection (0: until stdin closes)
	n        int64 // connections
	complete atomic.Int64
	allDone  chan struct{} // closed when every connection has its events
}

func newProgress(cfg config) *progress {
	return &progress{events: cfg.events, n: int64(cfg.n), allDone: make(chan struct{})}
}

// record counts one delivery of c, sent at sent and read at now (unix ns).
func (p *progress) record(c *conn, id [2]uint64, sent, now int64) {
	if !less(c.lastID, id) {
		c.outOrder++
	}
	c.lastID = id
	c.lat = append(c.lat, uint32(max(now-sent, 0)/1000))
	if p.events > 0 && len(c.lat) == p.events && p.complete.Add(1) == p.n {
		close(p.allDone)
	}
}

// awaitEnd prints "ready" and returns once every connection has its events or stdin closes (the
// driver's "no more will come"), with the CPU seconds counted at "ready".
func awaitEnd(p *progress, stdin io.Reader, stdout io.Writer) (cpu0 float64) {
	cpu0 = cpuSeconds()
	fmt.Fprintln(stdout, "ready")
	stdinClosed := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, stdin); close(stdinClosed) }()
	select {
	case <-p.allDone:
	case <-stdinClosed:
	}
	return cpu0
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
