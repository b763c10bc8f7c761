package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkLoad is the fan-out load benchmark of issue #15 (docs/performance.md#fan-out-under-load),
// opt-in with EVENTGATE_BENCH_LOAD=1 (.ci/bench.sh): the subscribers run in a process of their own
// (bench/loadclient), the server is eventgate on Redis with its limits lifted, or the floor
// program (bench/floor) serving the same bytes, and one publisher posts events over HTTP at a
// fixed rate. It reports loss, deliveries/s, publish-to-arrival p50/p90/p99, the server's CPU
// seconds per million deliveries and its resident memory per connection under load.
//
// EVENTGATE_BENCH_LOAD_CASES picks loads ("2000x200,2000x500,10000x20": subscribers × events/s),
// EVENTGATE_BENCH_LOAD_TARGETS the servers ("floor,sse,websocket"; "floor-shards" is the floor
// without a goroutine per connection), EVENTGATE_BENCH_SECONDS
// the publishing time (default 10), EVENTGATE_BENCH_LOAD_BIN another eventgate binary to
// measure (a build of an earlier commit, for before and after), EVENTGATE_BENCH_LOAD_CLIENT the
// load client's -mode and any further flags of its ("goroutine", "epoll -workers 1"; the default
// is epoll: a few threads, no goroutine per connection). The machine's 1-minute load is reported beside the
// figures: on a shared machine they are only comparable at a similar load.
func BenchmarkLoad(b *testing.B) {
	if os.Getenv("EVENTGATE_BENCH_LOAD") != "1" {
		b.Skip("EVENTGATE_BENCH_LOAD=1 runs the load benchmark")
	}
	if os.Getenv("EVENTGATE_TEST_REDIS_URL") == "" {
		b.Skip("EVENTGATE_TEST_REDIS_URL not set (run through .ci/bench.sh)")
	}
	tools := buildBenchTools(b)
	cases := envList("EVENTGATE_BENCH_LOAD_CASES", "2000x200,2000x500,10000x20")
	targets := envList("EVENTGATE_BENCH_LOAD_TARGETS", "floor,sse,websocket")
	seconds := 10
	if s, err := strconv.Atoi(os.Getenv("EVENTGATE_BENCH_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	for _, c := range cases {
		var n, rate int
		if _, err := fmt.Sscanf(c, "%dx%d", &n, &rate); err != nil {
			b.Fatalf("EVENTGATE_BENCH_LOAD_CASES: %q is not subscribers x rate", c)
		}
		for _, target := range targets {
			b.Run(fmt.Sprintf("%s/%dx%d", target, n, rate), func(b *testing.B) {
				for b.Loop() {
					loadRun(b, tools, target, n, rate, seconds)
				}
			})
		}
	}
}

func envList(name, def string) []string {
	v := os.Getenv(name)
	if v == "" {
		v = def
	}
	return strings.Split(v, ",")
}

var benchTools struct {
	once sync.Once
	err  error
}

// buildBenchTools builds bench/loadclient and bench/floor once per run, beside the eventgate
// binary (TestMain removes that folder), without -race: they are load, not subjects.
func buildBenchTools(b *testing.B) string {
	dir := filepath.Dir(binPath)
	benchTools.once.Do(func() {
		cmd := exec.Command("go", "build", "-o", dir+"/", "../../bench/loadclient", "../../bench/floor")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		benchTools.err = cmd.Run()
	})
	if benchTools.err != nil {
		b.Fatalf("building bench tools: %v", benchTools.err)
	}
	return dir
}

// loadServer starts the target server and returns its URL and pid.
func loadServer(b *testing.B, tools, target string) (string, int) {
	addr := benchAddr(b)
	var cmd *exec.Cmd
	switch target {
	case "floor":
		cmd = exec.Command(filepath.Join(tools, "floor"), "-addr", addr)
		cmd.Env = processEnv(nil)
	case "floor-shards": // no goroutine per connection: one writer per core
		cmd = exec.Command(filepath.Join(tools, "floor"), "-addr", addr, "-shards", strconv.Itoa(runtime.NumCPU()))
		cmd.Env = processEnv(nil)
	default:
		env := map[string]string{
			"EVENTGATE_ADDR": addr, "EVENTGATE_LOG_LEVEL": "error", "EVENTGATE_AUTH": "none",
			"EVENTGATE_REDIS_URL":       os.Getenv("EVENTGATE_TEST_REDIS_URL"),
			"EVENTGATE_STREAM_KEY":      fmt.Sprintf("eventgate-bench:%d:events", time.Now().UnixNano()),
			"EVENTGATE_MAX_CONNECTIONS": "100000", "EVENTGATE_MAX_CONNECTIONS_PER_IP": "100000",
			"EVENTGATE_CONNECT_RATE": "1000000-S", "EVENTGATE_PUBLISH_RATE": "1000000-S",
			"EVENTGATE_RETENTION": "100000",
		}
		if v := os.Getenv("EVENTGATE_BENCH_GOGC"); v != "" {
			env["GOGC"] = v
		}
		cmd = benchCommand(env)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	waitBenchHealthy(b, url, 20*time.Millisecond) // the floor serves /healthz too
	return url, cmd.Process.Pid
}

// loadResult is bench/loadclient's Result.
type loadResult struct {
	Conns              int
	Expected, Received int64
	OutOfOrder         int64
	Dropped            int
	P50, P90, P99, Max float64
	CPUSeconds         float64
	Reads              int64 // epoll mode only
}

func loadRun(b *testing.B, tools, target string, n, rate, seconds int) {
	url, pid := loadServer(b, tools, target)
	transport := "sse"
	if target == "websocket" {
		transport = "websocket"
	}
	events := rate * seconds
	rssBase := rssBytes(b, pid)
	args := []string{"-url", url, "-n", strconv.Itoa(n), "-transport", transport, "-events", strconv.Itoa(events)}
	if f := strings.Fields(os.Getenv("EVENTGATE_BENCH_LOAD_CLIENT")); len(f) > 0 {
		args = append(append(args, "-mode", f[0]), f[1:]...)
	}
	client := exec.Command(filepath.Join(tools, "loadclient"), args...)
	client.Stderr = os.Stderr
	stdin, err := client.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := client.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := client.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Process.Kill(); _ = client.Wait() })
	out := bufio.NewReader(stdout)
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "ready" {
		b.Fatalf("loadclient: %q, %v", line, err)
	}
	load1 := loadAverage(b)
	cpu0, start := cpuSeconds(b, pid), time.Now()
	publishAt(b, url, rate, events)
	// The client ends when every connection has every event; closing its stdin after a grace
	// period ends it anyway, and what is missing then is loss.
	grace := time.AfterFunc(30*time.Second, func() { stdin.Close() })
	var res loadResult
	if err := json.NewDecoder(out).Decode(&res); err != nil {
		b.Fatalf("loadclient result: %v", err)
	}
	grace.Stop()
	elapsed := time.Since(start)
	cpu := cpuSeconds(b, pid) - cpu0
	rss := rssBytes(b, pid)
	stdin.Close()
	_ = client.Wait()

	b.ReportMetric(float64(res.Received)/float64(res.Expected)*100, "%delivered")
	b.ReportMetric(float64(res.Received)/max(elapsed.Seconds(), float64(seconds)), "deliveries/s")
	b.ReportMetric(res.P50, "p50-ms")
	b.ReportMetric(res.P90, "p90-ms")
	b.ReportMetric(res.P99, "p99-ms")
	b.ReportMetric(res.Max, "max-ms")
	if res.Received > 0 {
		b.ReportMetric(cpu/float64(res.Received)*1e6, "cpu-s/Mdeliv")
		b.ReportMetric(res.CPUSeconds/float64(res.Received)*1e6, "client-cpu-s/Mdeliv")
	}
	if res.Reads > 0 { // how many events the server's writes brought per client read
		b.ReportMetric(float64(res.Received)/float64(res.Reads), "client-deliv/read")
	}
	b.ReportMetric(float64(rss-rssBase)/float64(n)/1024, "rss-KiB/conn")
	b.ReportMetric(float64(res.OutOfOrder), "out-of-order")
	b.ReportMetric(float64(res.Dropped), "dropped-conns")
	b.ReportMetric(load1, "load1")
}

// publishAt posts events one at a time on a fixed schedule of rate per second, with a few
// requests in flight so one slow answer does not hold up the schedule. Each event carries its
// send time (bench/loadclient measures arrival against it).
func publishAt(b *testing.B, url string, rate, events int) {
	client := &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}
	interval := time.Second / time.Duration(rate)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	var failed sync.Once
	start := time.Now()
	for i := range events {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the publisher, not synchronisation
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			body := fmt.Sprintf(`{"type":"job.progress","data":{"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f","percent":%d,"message":"t=%d"}}`,
				i%101, time.Now().UnixNano())
			resp, err := client.Post(url+"/api/v1/events", "application/json", strings.NewReader(body))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			if err != nil {
				failed.Do(func() { b.Errorf("publish: %v", err) })
			}
		}()
	}
	wg.Wait()
	client.CloseIdleConnections()
}

// cpuSeconds is a process's user and system CPU time so far (/proc/<pid>/stat, in clock ticks of
// 1/100 s, Linux's USER_HZ).
func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are the 14th and 15th.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// loadAverage is the machine's 1-minute load average.
func loadAverage(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		b.Fatal(err)
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(raw))[0], 64)
	return v
}

// benchCommand is the eventgate process of a benchmark with env: the binary under test, or
// EVENTGATE_BENCH_LOAD_BIN (another build to compare, e.g. of an earlier commit), with
// EVENTGATE_BENCH_DEBUG_ADDR, when set, as its profiling address (go tool pprof
// http://$addr/debug/pprof/profile during a run).
func benchCommand(env map[string]string) *exec.Cmd {
	bin := binPath
	if v := os.Getenv("EVENTGATE_BENCH_LOAD_BIN"); v != "" {
		bin = v
	}
	if v := os.Getenv("EVENTGATE_BENCH_DEBUG_ADDR"); v != "" {
		env["EVENTGATE_DEBUG_ADDR"] = v
	}
	cmd := exec.Command(bin)
	cmd.Env = processEnv(env)
	return cmd
}
