package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Loopback load benchmarks against the real binary (go tool task bench). They report figures
// rather than assert them. EVENTGATE_BENCH_CONNS sets the number of connections (default 10000).

func benchConns() int {
	if n, err := strconv.Atoi(os.Getenv("EVENTGATE_BENCH_CONNS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// benchServer starts eventgate with limits opened up for load, and returns the URLs of its API
// and of its profiles (EVENTGATE_DEBUG_ADDR), and its pid, with heartbeats every heartbeat.
// EVENTGATE_BENCH_GOGC, when set, is the server's GOGC.
func benchServer(b *testing.B, heartbeat time.Duration) (string, string, int) {
	b.Helper()
	addr, debugAddr := benchAddr(b), benchAddr(b)
	cmd := exec.Command(binPath)
	env := map[string]string{
		"EVENTGATE_ADDR": addr, "EVENTGATE_LOG_LEVEL": "error", "EVENTGATE_AUTH": "none",
		"EVENTGATE_MAX_CONNECTIONS": "100000", "EVENTGATE_MAX_CONNECTIONS_PER_IP": "100000",
		"EVENTGATE_CONNECT_RATE": "1000000-S", "EVENTGATE_PUBLISH_RATE": "1000000-S",
		"EVENTGATE_HEARTBEAT": heartbeat.String(), "EVENTGATE_RETENTION": "100000", "EVENTGATE_DEBUG_ADDR": debugAddr,
	}
	if v := os.Getenv("EVENTGATE_BENCH_GOGC"); v != "" {
		env["GOGC"] = v
	}
	cmd.Env = processEnv(env)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	waitBenchHealthy(b, url, 20*time.Millisecond)
	return url, "http://" + debugAddr, cmd.Process.Pid
}

// waitBenchHealthy polls url's /healthz every poll until it answers, and fails b when it has not
// within 20s.
func waitBenchHealthy(b *testing.B, url string, poll time.Duration) {
	b.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Fatal("eventgate did not start")
		}
		time.Sleep(poll)
	}
}

func benchAddr(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// rssBytes reads a process's resident set size.
func rssBytes(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// goMemory is the server's Go heap and stacks in use, from its /metrics: the spans the runtime
// holds for objects (live or not yet collected) and goroutines, without the allocator's and the
// OS's slack that RSS counts.
func goMemory(b *testing.B, url string) int64 {
	return scrapeSum(b, url, "go_memstats_heap_inuse_bytes ", "go_memstats_stack_inuse_bytes ")
}

// heldMemory is what the server's live objects and goroutine stacks take right after a garbage
// collection it is made to run (through its profiles listener): the memory its connections hold,
// without the headroom the collector leaves for garbage (GOGC), which RSS includes.
func heldMemory(b *testing.B, url, debugURL string) int64 {
	resp, err := http.Get(debugURL + "/debug/pprof/heap?gc=1")
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return scrapeSum(b, url, "go_memstats_heap_alloc_bytes ", "go_memstats_stack_inuse_bytes ")
}

// scrapeSum adds up the named series of the server's /metrics.
func scrapeSum(b *testing.B, url string, names ...string) int64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var total int64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for _, name := range names {
			if v, ok := strings.CutPrefix(sc.Text(), name); ok {
				f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
				total += int64(f)
			}
		}
	}
	return total
}

// openAll opens n connections with 64 dialers at a time; open returns a closer.
func openAll(b *testing.B, n int, open func() (func(), error)) []func() {
	closers := make([]func(), n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	errs := make(chan error, 1)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := open()
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			closers[i] = c
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatalf("opening connections: %v", err)
	default:
	}
	return closers
}

var benchTransport = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: -1, DisableKeepAlives: false}

// openSSE opens a stream and returns once its retry: preamble arrived (the server has subscribed).
func openSSEConn(url string, onLine func(string)) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/stream", nil)
	resp, err := benchTransport.RoundTrip(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != 200 {
		cancel()
		return nil, fmt.Errorf("stream: %d", resp.StatusCode)
	}
	r := bufio.NewReaderSize(resp.Body, 4096)
	if _, err := r.ReadString('\n'); err != nil {
		cancel()
		return nil, err
	}
	if onLine != nil {
		go func() {
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				onLine(line)
			}
		}()
	}
	return func() { cancel(); resp.Body.Close() }, nil
}

// openWSConn opens a WebSocket connection that reads (and so answers pings) until closed,
// passing each message to onMessage when it is set.
func openWSConn(url string, onMessage func([]byte)) (func(), error) {
	d := websocket.Dialer{ReadBufferSize: 512, WriteBufferSize: 512}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(url, "http")+"/api/v1/ws", nil)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				return
			}
			if onMessage != nil {
				onMessage(msg)
			}
		}
	}()
	return func() { conn.Close() }, nil
}

// BenchmarkIdleConnections reports the server's memory per idle connection: resident (bytes/conn,
// the headline: what the machine gives the process), Go heap and stacks in use (go-bytes/conn),
// and held after a collection (held-bytes/conn: without the collector's GOGC headroom).
func BenchmarkIdleConnections(b *testing.B) {
	for _, tr := range []string{"sse", "websocket"} {
		b.Run(tr, func(b *testing.B) {
			n := benchConns()
			for b.Loop() {
				// Heartbeats run (every EVENTGATE_BENCH_HEARTBEAT, default 1s), so that the
				// figures include every connection's pings and pongs and the timers and goroutines
				// they take; the settling below lasts two of them.
				hb := time.Second
				if d, err := time.ParseDuration(os.Getenv("EVENTGATE_BENCH_HEARTBEAT")); err == nil && d >= time.Second {
					hb = d
				}
				url, debugURL, pid := benchServer(b, hb)
				heldBefore := heldMemory(b, url, debugURL)
				before, goBefore := rssBytes(b, pid), goMemory(b, url)
				closers := openAll(b, n, func() (func(), error) {
					if tr == "sse" {
						return openSSEConn(url, nil)
					}
					return openWSConn(url, nil)
				})
				time.Sleep(2*hb + time.Second) // settle: every connection pinged and ponged twice
				after, goAfter := rssBytes(b, pid), goMemory(b, url)
				heldAfter := heldMemory(b, url, debugURL)
				b.ReportMetric(float64(after-before)/float64(n), "bytes/conn")
				b.ReportMetric(float64(goAfter-goBefore)/float64(n), "go-bytes/conn")
				b.ReportMetric(float64(heldAfter-heldBefore)/float64(n), "held-bytes/conn")
				b.ReportMetric(float64(n), "conns")
				for _, c := range closers {
					c()
				}
			}
		})
	}
}

// BenchmarkBroadcast connects N subscribers (SSE, then WebSocket), publishes one event every
// 10ms for EVENTGATE_BENCH_SECONDS (default 5), and reports delivery completeness and the
// publish-to-delivery latency (append time in the id → arrival at the client).
func BenchmarkBroadcast(b *testing.B) {
	for _, tr := range []string{"sse", "websocket"} {
		b.Run(tr, func(b *testing.B) {
			for b.Loop() {
				broadcast(b, tr)
			}
		})
	}
}

func broadcast(b *testing.B, transport string) {
	n := benchConns()
	seconds := 5
	if s, err := strconv.Atoi(os.Getenv("EVENTGATE_BENCH_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	url, _, _ := benchServer(b, 15*time.Second) // the default: heartbeats are not what this measures
	var mu sync.Mutex
	var lat []time.Duration
	received := 0
	arrived := func(id string) {
		ms, _ := strconv.ParseInt(strings.SplitN(strings.TrimSpace(id), "-", 2)[0], 10, 64)
		d := time.Since(time.UnixMilli(ms))
		mu.Lock()
		lat = append(lat, d)
		received++
		mu.Unlock()
	}
	closers := openAll(b, n, func() (func(), error) {
		if transport == "websocket" {
			return openWSConn(url, func(msg []byte) {
				if _, rest, ok := strings.Cut(string(msg), `"id":"`); ok { // events; not subscribed frames
					arrived(rest[:strings.IndexByte(rest, '"')])
				}
			})
		}
		var lastID string // the id: of the frame being read; owned by this connection's reader
		return openSSEConn(url, func(line string) {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				lastID = v
				return
			}
			if strings.HasPrefix(line, "event: ") { // id-only blocks (the join position) are no events
				arrived(lastID)
			}
		})
	})
	events := seconds * 100
	tick := time.NewTicker(10 * time.Millisecond)
	body := `{"type":"queue.status","data":{"pending":1,"active":2}}`
	for range events {
		<-tick.C
		resp, err := http.Post(url+"/api/v1/events", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	tick.Stop()
	want := events * n
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		mu.Lock()
		done := received >= want
		mu.Unlock()
		if done {
			break
		}
	}
	mu.Lock()
	slices.Sort(lat)
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	b.ReportMetric(float64(received)/float64(want)*100, "%delivered")
	b.ReportMetric(float64(n), "subscribers")
	mu.Unlock()
	for _, c := range closers {
		c()
	}
}
