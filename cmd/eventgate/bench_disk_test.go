package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/storetest"
)

// Loopback benchmarks of the on-disk store through the real binary (go tool task bench). They
// report figures rather than assert them.

// diskBenchServer starts eventgate on the data folder dir and returns its URL, its pid, how long
// it took from exec to a healthy /healthz, and a function that kills it and waits until it is
// gone (also called at cleanup).
func diskBenchServer(b *testing.B, dir string) (string, int, time.Duration, func()) {
	b.Helper()
	addr := benchAddr(b)
	cmd := benchCommand(map[string]string{
		"EVENTGATE_ADDR": addr, "EVENTGATE_LOG_LEVEL": "error", "EVENTGATE_AUTH": "none",
		"EVENTGATE_PUBLISH_RATE": "off", "EVENTGATE_MAX_REQUESTS_PER_IP": "1024",
		"EVENTGATE_RETENTION": "100000", "EVENTGATE_DATA_DIR": dir,
	})
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }) }
	b.Cleanup(stop)
	url := "http://" + addr
	waitBenchHealthy(b, url, 2*time.Millisecond)
	return url, cmd.Process.Pid, time.Since(start), stop
}

// BenchmarkDiskPublish16 sends single-event publishes from 16 concurrent clients to eventgate on
// a data folder and reports acknowledged events per second: every 201 means the event is on disk
// (fsync'd), so this is group commit at work. The in-process store's figure (no data folder) is
// the HTTP path's own ceiling on the same machine.
//
// Two clients: "raw" writes pre-encoded requests on 16 keep-alive connections and reads the
// answers with a minimal parser, as load generators such as wrk do, so that the 2 cores the
// client shares with the server go mostly to the server; "nethttp" is Go's http.Client, which
// takes about half a core of its own at these rates.
func BenchmarkDiskPublish16(b *testing.B) {
	for _, client := range []string{"raw", "nethttp"} {
		for _, st := range []string{"disk", "memory"} {
			b.Run(client+"/"+st, func(b *testing.B) {
				dir := ""
				if st == "disk" {
					dir = b.TempDir()
				}
				publish16(b, dir, client == "raw")
			})
		}
	}
}

func publish16(b *testing.B, dir string, raw bool) {
	const clients = 16
	url, pid, _, _ := diskBenchServer(b, dir)
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
	body := jobProgress(jobA, 40)
	var next atomic.Int64
	cpu0 := cpuSeconds(b, pid)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			if raw {
				rawPublisher(b, strings.TrimPrefix(url, "http://"), body, &next)
				return
			}
			for next.Add(1) <= int64(b.N) {
				req, _ := http.NewRequest(http.MethodPost, url+"/api/v1/events", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					b.Errorf("publish: %d", resp.StatusCode)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acked/s")
	b.ReportMetric((cpuSeconds(b, pid)-cpu0)*1e6/float64(b.N), "server-cpu-µs/ack")
	if dir != "" {
		sum, count := scrapeFloat(b, url, "eventgate_disk_commit_seconds_sum "), scrapeFloat(b, url, "eventgate_disk_commit_seconds_count ")
		if count > 0 {
			b.ReportMetric(sum/count*1000, "ms/fsync")
			b.ReportMetric(float64(b.N)/count, "events/fsync")
		}
	}
}

// scrapeFloat returns the value of the series named (with its trailing space) in /metrics.
func scrapeFloat(b *testing.B, url, name string) float64 {
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// BenchmarkDiskStartup starts eventgate on a data folder holding 0, 100,000 and 1,000,000 events
// (the retention is 100,000: the larger log is one whose retention was lowered) and reports the
// time to a healthy /healthz and the resident memory then: neither grows with the log.
func BenchmarkDiskStartup(b *testing.B) {
	for _, n := range []int{0, 100000, 1000000} {
		b.Run(fmt.Sprint(n, "events"), func(b *testing.B) {
			dir := b.TempDir()
			fillDataDir(b, dir, n)
			var took time.Duration
			var rss int64
			for b.Loop() {
				_, pid, d, stop := diskBenchServer(b, dir)
				took += d
				rss = max(rss, rssBytes(b, pid))
				stop()
			}
			b.ReportMetric(took.Seconds()*1000/float64(b.N), "ms/start")
			b.ReportMetric(float64(rss)/(1<<20), "MiB-rss")
		})
	}
}

// fillDataDir appends n events to a new store in dir, in batches of 1000, without trimming.
func fillDataDir(b *testing.B, dir string, n int) {
	b.Helper()
	d, err := store.OpenDisk(dir, store.DiskOptions{})
	if err != nil {
		b.Fatal(err)
	}
	storetest.FillAndClose(b, d, n)
}

// rawPublisher publishes body on one keep-alive connection to addr until next passes b.N: the
// request is encoded once, and the answer is read with just enough parsing to find its status
// and length.
func rawPublisher(b *testing.B, addr, body string, next *atomic.Int64) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Error(err)
		return
	}
	defer conn.Close()
	req := []byte(fmt.Sprintf("POST /api/v1/events HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body))
	r := bufio.NewReader(conn)
	for next.Add(1) <= int64(b.N) {
		if _, err := conn.Write(req); err != nil {
			b.Error(err)
			return
		}
		status, err := r.ReadSlice('\n')
		if err != nil {
			b.Error(err)
			return
		}
		if !bytes.HasPrefix(status, []byte("HTTP/1.1 201 ")) {
			b.Errorf("publish: %q", status)
			return
		}
		length := -1
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				b.Error(err)
				return
			}
			if len(line) <= 2 {
				break
			}
			if v, ok := bytes.CutPrefix(bytes.ToLower(line), []byte("content-length:")); ok {
				length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			}
		}
		if length < 0 {
			b.Error("publish: an answer without Content-Length")
			return
		}
		if _, err := r.Discard(length); err != nil {
			b.Error(err)
			return
		}
	}
}
