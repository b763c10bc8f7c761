package main

// TestE2EFaultSchedule is the Hardening issue's fault-schedule test: two instances on one Redis
// with AOF on, a publisher retrying with Idempotency-Key, 50 SSE and 50 WebSocket subscribers
// resuming with their last id, and a bounded schedule of faults (SIGSTOP/SIGCONT Redis, Redis
// restarted from its AOF, Redis restarted empty, instances SIGKILLed and restarted). At the end
// every acknowledged event must have reached every subscriber exactly once, in order, or lie in a
// stretch a resync it received covers (see covers).

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	faultSSESubs        = 50
	faultWSSubs         = 50
	faultPublishEvery   = 15 * time.Millisecond // the publisher's pace: about 60 events/s at most
	faultAttemptTimeout = 5 * time.Second       // one publish attempt
	faultGiveUp         = 10 * time.Second      // one event's retries; then it is abandoned, never acked
	faultDialTimeout    = 5 * time.Second       // a subscriber's connect, until the response headers
	faultIdle           = 10 * time.Second      // a subscriber with no frame this long reconnects
	faultStepProgress   = 40                    // events acknowledged after a fault before the next
	faultWait           = 20 * time.Second      // for that progress, or for subscribers to catch up
	faultStopHold       = 6 * time.Second       // how long Redis stays SIGSTOPped (the fault's length)
)

// faultTimeline records the faults injected and when Redis restarted empty. Test goroutine only.
type faultTimeline struct {
	t0     time.Time
	faults []faultRecord
	// resets are Unix milliseconds taken after an emptied Redis was stopped and before it started
	// again: ids below a reset belong to the log that reset lost, ids above it to the new log.
	resets []uint64
}

type faultRecord struct {
	name        string
	at          time.Time
	ackedBefore int
}

func (tl *faultTimeline) begin(t *testing.T, name string, acked int) {
	tl.faults = append(tl.faults, faultRecord{name: name, at: time.Now(), ackedBefore: acked})
	t.Logf("fault #%d at +%.1fs (%d events acknowledged so far): %s", len(tl.faults), time.Since(tl.t0).Seconds(), acked, name)
}

// around names the faults just before and after t.
func (tl *faultTimeline) around(t time.Time) string {
	before, after := "the start", "the end"
	for i, f := range tl.faults {
		if !f.at.After(t) {
			before = fmt.Sprintf("fault #%d (%s)", i+1, f.name)
		} else {
			after = fmt.Sprintf("fault #%d (%s)", i+1, f.name)
			break
		}
	}
	return fmt.Sprintf("after %s, before %s", before, after)
}

// faultCluster is the two instances, each restarted on its own fixed address.
type faultCluster struct {
	t     *testing.T
	env   map[string]string
	addrs [2]string
	inst  [2]*server
}

func newFaultCluster(t *testing.T, r *privateRedis) *faultCluster {
	c := &faultCluster{t: t, env: map[string]string{"EVENTGATE_REDIS_URL": r.url(), "EVENTGATE_STREAM_KEY": "faults:events",
		"EVENTGATE_MAX_CONNECTIONS_PER_IP": "1000"}}
	for i := range c.addrs {
		c.addrs[i] = freeAddr(t)
		c.start(i)
	}
	return c
}

func (c *faultCluster) start(i int) {
	env := maps.Clone(c.env)
	env["EVENTGATE_ADDR"] = c.addrs[i]
	c.inst[i] = startServer(c.t, env)
}

func (c *faultCluster) urls() []string {
	return []string{"http://" + c.addrs[0], "http://" + c.addrs[1]}
}

// signal sends sig to the redis-server if it runs.
func (r *privateRedis) signal(sig syscall.Signal) {
	if r.cmd != nil {
		_ = r.cmd.Process.Signal(sig)
	}
}

// crash SIGKILLs the redis-server: what it acknowledged is in its AOF (appendfsync always).
func (r *privateRedis) crash() {
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// wipe deletes the stopped server's AOF and RDB files, so it starts again empty.
func (r *privateRedis) wipe() {
	r.t.Helper()
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	var removed []string
	for _, e := range entries {
		if e.Name() != "redis.log" {
			if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
				r.t.Fatal(err)
			}
			removed = append(removed, e.Name())
		}
	}
	if len(removed) == 0 {
		r.t.Fatalf("no AOF in %s to delete: was Redis persisting?", r.dir)
	}
}

// waitProgress waits until n more events than from were acknowledged; it reports (not fails)
// a publisher that makes no progress, so the rest of the schedule still runs and reports.
func waitProgress(t *testing.T, pub *faultPublisher, from, n int, after string) {
	t.Helper()
	for deadline := time.Now().Add(faultWait); pub.ackedCount() < from+n; {
		if time.Now().After(deadline) {
			pub.mu.Lock()
			defer pub.mu.Unlock()
			t.Errorf("%s: the publisher got %d acknowledgements within %s, want %d (last error: %s)",
				after, len(pub.acked)-from, faultWait, n, pub.lastErr)
			return
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// waitCaughtUp waits until every subscriber has received an event at or after id; it reports
// the ones that did not within faultWait.
func waitCaughtUp(t *testing.T, subs []*faultSub, id faultID, after string) {
	t.Helper()
	behind := func() (out []string) {
		for _, s := range subs {
			s.mu.Lock()
			if n := len(s.got); n == 0 || s.got[n-1].less(id) {
				out = append(out, fmt.Sprintf("%s (%d connections, %d failed, last error %q)", s.name, s.connects, s.failedConnects, s.lastErr))
			}
			s.mu.Unlock()
		}
		return out
	}
	for deadline := time.Now().Add(faultWait); ; {
		b := behind()
		if len(b) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %d subscribers received nothing at or after %s within %s: %s", after, len(b), id, faultWait,
				strings.Join(b[:min(len(b), 10)], "; "))
			return
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// faultLoad is the load a fault test runs under: subscribers resuming with their last id and a
// publisher retrying with Idempotency-Key, all stopped by cancel (ctx's).
type faultLoad struct {
	ctx              context.Context
	cancel           context.CancelFunc
	wg               sync.WaitGroup
	subs             []*faultSub
	pub              *faultPublisher
	stopPub, pubDone chan struct{}
}

// startFaultLoad runs subs (subscriber i first on urls[i%2]), waits until every one has joined,
// then starts a publisher on urls and waits for its first faultStepProgress acknowledgements
// (before names that moment in a report). Its cleanup stops the load: call it after the servers'
// cleanups are registered, so that it runs before they are killed.
func startFaultLoad(t *testing.T, urls []string, subs []*faultSub, before string) *faultLoad {
	t.Helper()
	l := &faultLoad{subs: subs, stopPub: make(chan struct{}), pubDone: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	t.Cleanup(func() { l.cancel(); l.wg.Wait() }) // before the servers are killed
	for i, s := range subs {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); s.run(l.ctx, i%2) }()
	}
	joinBy := time.After(faultWait)
	for _, s := range subs {
		select {
		case <-s.started:
		case <-joinBy:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("%s did not join within %s (last error %q)", s.name, faultWait, s.lastErr)
		}
	}
	l.pub = newFaultPublisher(urls, faultAttemptTimeout)
	l.wg.Add(1)
	go func() { defer l.wg.Done(); l.pub.run(l.ctx, l.stopPub, faultPublishEvery, faultGiveUp, l.pubDone) }()
	waitProgress(t, l.pub, 0, faultStepProgress, before)
	return l
}

// finish stops the publisher, publishes one marker event that every subscriber must receive,
// stops the subscribers and checks the run (checkFaultRun).
func (l *faultLoad) finish(t *testing.T, tl *faultTimeline) faultFigures {
	t.Helper()
	close(l.stopPub)
	<-l.pubDone
	marker, ok := l.pub.publish(l.ctx, 1, 2*faultWait)
	if !ok {
		t.Fatalf("the final marker was not acknowledged within %s (last error: %s)", 2*faultWait, l.pub.lastErr)
	}
	waitCaughtUp(t, l.subs, marker, "the final marker")
	l.cancel()
	l.wg.Wait()
	return checkFaultRun(t, l.subs, l.pub, tl)
}

func TestE2EFaultSchedule(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault schedule takes about half a minute; skipped with -short")
	}
	// Not parallel: it runs while the parallel e2e tests wait, so its timing is its own.
	r := startPrivateRedis(t)
	t.Cleanup(func() { r.signal(syscall.SIGCONT) }) // a stopped Redis would not stop
	c := newFaultCluster(t, r)
	urls := c.urls()
	tl := &faultTimeline{t0: time.Now()}
	gate := newFaultGate()

	var subs []*faultSub
	for i := range faultSSESubs {
		subs = append(subs, newFaultSub(fmt.Sprintf("sse-%02d", i), false, urls, gate, faultIdle))
	}
	for i := range faultWSSubs {
		subs = append(subs, newFaultSub(fmt.Sprintf("ws-%02d", i), true, urls, gate, faultIdle))
	}
	load := startFaultLoad(t, urls, subs, "before the first fault")
	pub := load.pub

	fault := func(name string) { tl.begin(t, name, pub.ackedCount()) }
	emptyRedis := func() {
		r.stop()
		r.wipe()
		tl.resets = append(tl.resets, uint64(time.Now().UnixMilli()))
		r.start()
	}
	steps := []func(){
		func() {
			fault(fmt.Sprintf("SIGSTOP Redis for %s, then SIGCONT", faultStopHold))
			r.signal(syscall.SIGSTOP)
			<-time.After(faultStopHold) // the length of the fault, not synchronisation
			r.signal(syscall.SIGCONT)
		},
		func() { fault("SIGKILL instance A, restart it"); c.inst[0].Kill(); c.start(0) },
		func() { fault("SIGKILL Redis, restart it from its AOF"); r.crash(); r.start() },
		func() { fault("restart Redis empty (AOF deleted) under live subscribers"); emptyRedis() },
		func() {
			// B's subscribers are kept away (a network outage on their side) while events are
			// acknowledged and then lost with the log: they come back with ids of the lost log.
			fault("SIGKILL instance B, its subscribers kept away")
			gate.shut()
			c.inst[1].Kill()
			waitProgress(t, pub, pub.ackedCount(), faultStepProgress, "while B is down")
			fault("restart Redis empty while B's subscribers are away; restart B; they resume")
			emptyRedis()
			waitProgress(t, pub, pub.ackedCount(), 10, "after the empty restart")
			c.start(1)
			gate.release()
		},
	}
	for _, step := range steps {
		step()
		n := len(tl.faults)
		waitProgress(t, pub, pub.ackedCount(), faultStepProgress, fmt.Sprintf("after fault #%d", n))
		pub.mu.Lock()
		latest := pub.acked[len(pub.acked)-1].id
		pub.mu.Unlock()
		waitCaughtUp(t, subs, latest, fmt.Sprintf("after fault #%d", n))
	}

	// Quiet end: Redis and both instances up; one marker event every subscriber must receive.
	for _, s := range c.inst {
		eventuallyStatus(t, s.URL()+"/readyz", 200)
	}
	f := load.finish(t, tl)
	t.Logf("figures: %d events acknowledged (%d publish attempts, %d events retried, %d abandoned), %d faults injected, "+
		"%d subscribers (%d SSE, %d WebSocket), %d reconnects, %d resyncs received, lost %d, duplicated %d, "+
		"%d missing but covered by a resync, %d events appended twice under one Idempotency-Key, in %s",
		len(pub.acked), pub.attempts, pub.retried, len(pub.abandoned), len(tl.faults), len(subs), faultSSESubs, faultWSSubs,
		f.reconnects, f.resyncs, f.lost, f.duplicated, f.covered, f.reappended, time.Since(tl.t0).Round(100*time.Millisecond))
	if len(pub.abandoned) > 0 {
		t.Logf("abandoned (not a failure: never acknowledged): %s", strings.Join(pub.abandoned, "; "))
	}
}
