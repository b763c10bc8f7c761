package webhooks_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/webhooks"
)

const (
	jobID   = "6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f"
	waitMax = 10 * time.Second
)

// harness is an in-process log, hub, webhook store, service and dispatcher(s), with loopback
// receivers allowed.
type harness struct {
	t      *testing.T
	log    *store.Memory
	hub    *streams.Hub
	st     *store.MemoryWebhooks
	policy *webhooks.Policy
	svc    *webhooks.Service
	client *http.Client
}

func newHarness(t *testing.T, timeout time.Duration) *harness {
	t.Helper()
	h := &harness{t: t, log: store.NewMemory(10000), st: store.NewMemoryWebhooks()}
	hub := streams.NewHub(h.log, streams.HubOptions{})
	h.hub = hub
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	h.policy = webhooks.NewPolicy(webhooks.PolicyOptions{AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, AllowPorts: []uint16{}})
	h.client = webhooks.NewClient(h.policy, webhooks.ClientOptions{Timeout: timeout})
	h.svc = webhooks.NewService(h.st, h.log, h.policy, nil)
	return h
}

// dispatcher starts a dispatcher; it is shut down at cleanup unless the test did.
func (h *harness) dispatcher(opts webhooks.Options) *webhooks.Dispatcher {
	h.t.Helper()
	if opts.RetrySchedule == nil {
		opts.RetrySchedule = []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}
	}
	d := webhooks.NewDispatcher(h.hub, h.st, h.client, opts)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(context.Background()) }()
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
		<-done
	})
	return d
}

func (h *harness) register(url string, topics ...string) webhooks.Webhook {
	h.t.Helper()
	w, err := h.svc.Create(h.t.Context(), webhooks.CreateRequest{URL: url, Topics: topics})
	if err != nil {
		h.t.Fatalf("register %s: %v", url, err)
	}
	return w
}

func (h *harness) publish(bodies ...string) []event.ID {
	h.t.Helper()
	drafts := make([]event.Draft, len(bodies))
	for i, b := range bodies {
		d, err := event.ParseDraft([]byte(b))
		if err != nil {
			h.t.Fatal(err)
		}
		drafts[i] = d
	}
	ids, err := h.log.Append(h.t.Context(), drafts)
	if err != nil {
		h.t.Fatal(err)
	}
	return ids
}

func progress(pct int) string {
	return `{"type":"job.progress","data":{"job_id":"` + jobID + `","percent":` + strconv.Itoa(pct) + `}}`
}

const queueStatus = `{"type":"queue.status","data":{"pending":1,"active":0}}`

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a loopback endpoint answering with answer(n) for its n-th request (from 1).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
	got  chan struct{} // signalled on every request
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	rc := &receiver{got: make(chan struct{}, 1)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{header: r.Header.Clone(), body: body, at: time.Now()})
		n := len(rc.reqs)
		rc.mu.Unlock()
		select {
		case rc.got <- struct{}{}:
		default:
		}
		if answer == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		answer(n, w, r)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

// waitRequests waits until the receiver has had at least n requests.
func (rc *receiver) waitRequests(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(waitMax)
	for {
		if r := rc.requests(); len(r) >= n {
			return r
		}
		select {
		case <-rc.got:
		case <-deadline:
			t.Fatalf("receiver got %d requests within %s, want %d", len(rc.requests()), waitMax, n)
		}
	}
}

// eventually polls cond until it holds or waitMax passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitMax); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitMax)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func ids(rs []received) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.header.Get("webhook-id")
	}
	return out
}

func TestDeliverSigned(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	rc := newReceiver(t, nil)
	h.publish(progress(1)) // before registration: not delivered
	hook := h.register(rc.URL+"/in", "jobs/*")
	h.dispatcher(webhooks.Options{})
	evs := h.publish(queueStatus, progress(2), queueStatus, progress(3))
	got := rc.waitRequests(t, 2)
	ref, err := standardwebhooks.NewWebhook(hook.Secret)
	if err != nil {
		t.Fatal(err)
	}
	want := []event.ID{evs[1], evs[3]}
	// Attempts run concurrently (Concurrency 4): arrival order is not log order.
	slices.SortFunc(got, func(a, b received) int {
		x, _ := event.ParseID(a.header.Get("webhook-id"))
		y, _ := event.ParseID(b.header.Get("webhook-id"))
		return x.Compare(y)
	})
	for i, r := range got[:2] {
		page, _ := h.log.Read(t.Context(), event.ID{MS: want[i].MS, Seq: want[i].Seq - 1}, 1)
		if len(page.Events) == 0 || string(r.body) != string(page.Events[0].JSON) {
			t.Fatalf("request %d body %s, want the envelope of %s", i, r.body, want[i])
		}
		if id := r.header.Get("webhook-id"); id != want[i].String() {
			t.Fatalf("request %d webhook-id %q, want %s", i, id, want[i])
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if err := ref.Verify(r.body, r.header); err != nil {
			t.Fatalf("request %d: the reference library rejects the signature: %v", i, err)
		}
	}
	eventually(t, "two successes in the delivery log", func() bool {
		ds, _ := h.svc.Deliveries(t.Context(), hook.ID)
		return len(ds) == 2 && ds[0].Outcome == webhooks.OutcomeSuccess && ds[1].Outcome == webhooks.OutcomeSuccess &&
			ds[0].Status == 204 && ds[0].Attempt == 1 && (ds[0].EventID == evs[3] || ds[1].EventID == evs[3])
	})
	if n := len(rc.requests()); n != 2 {
		t.Fatalf("receiver got %d requests, want 2 (%v)", n, ids(rc.requests()))
	}
}

func TestRetriedUntilSuccess(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	hook := h.register(rc.URL)
	h.dispatcher(webhooks.Options{})
	ev := h.publish(queueStatus)[0]
	got := rc.waitRequests(t, 3)
	if i := ids(got); !slices.Equal(i, []string{ev.String(), ev.String(), ev.String()}) {
		t.Fatalf("webhook-ids %v, want %s three times (stable across retries)", i, ev)
	}
	if gap := got[1].at.Sub(got[0].at); gap < 40*time.Millisecond {
		t.Fatalf("first retry after %s, want about 50ms", gap)
	}
	eventually(t, "3 attempts recorded", func() bool {
		ds, _ := h.svc.Deliveries(t.Context(), hook.ID)
		return len(ds) == 3 && ds[0].Attempt == 3 && ds[0].Outcome == webhooks.OutcomeSuccess &&
			ds[1].Attempt == 2 && ds[1].Status == 500 && !ds[1].NextAttempt.IsZero() && ds[2].Attempt == 1
	})
	eventually(t, "retry queue empty", func() bool {
		n, _, _ := h.st.RetryStats(t.Context(), hook.ID)
		return n == 0
	})
}

func TestFailedAfterLastRetry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	hook := h.register(rc.URL)
	h.dispatcher(webhooks.Options{RetrySchedule: []time.Duration{20 * time.Millisecond}})
	h.publish(queueStatus)
	rc.waitRequests(t, 2)
	eventually(t, "final failure recorded", func() bool {
		ds, _ := h.svc.Deliveries(t.Context(), hook.ID)
		return len(ds) == 2 && ds[0].Final && ds[0].Attempt == 2 && ds[0].Outcome == webhooks.OutcomeHTTP5xx && ds[0].NextAttempt.IsZero()
	})
	if n, _, _ := h.st.RetryStats(t.Context(), hook.ID); n != 0 {
		t.Fatalf("%d retries still queued after the last attempt", n)
	}
	w, _ := h.svc.Get(t.Context(), hook.ID)
	if !w.Enabled {
		t.Fatal("a failing endpoint was disabled; only 410 disables")
	}
}

func TestGoneDisablesEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.WriteHeader(http.StatusGone)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	hook := h.register(rc.URL)
	h.dispatcher(webhooks.Options{})
	h.publish(queueStatus)
	rc.waitRequests(t, 1)
	eventually(t, "endpoint disabled", func() bool {
		w, _ := h.svc.Get(t.Context(), hook.ID)
		return !w.Enabled && w.DisabledReason == "endpoint answered 410 Gone"
	})
	ds, _ := h.svc.Deliveries(t.Context(), hook.ID)
	if len(ds) != 1 || !ds[0].Final || ds[0].Status != 410 {
		t.Fatalf("deliveries %+v, want one final 410", ds)
	}
	// Disabled, it gets nothing; re-enabled, it resumes after the event it answered 410 to.
	ev2 := h.publish(queueStatus)[0]
	if _, err := h.svc.SetEnabled(t.Context(), hook.ID, true); err != nil {
		t.Fatal(err)
	}
	got := rc.waitRequests(t, 2)
	if len(got) != 2 || got[1].header.Get("webhook-id") != ev2.String() {
		t.Fatalf("after re-enabling: requests %v, want the 410'd event then %s", ids(got), ev2)
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	h.register(rc.URL)
	h.dispatcher(webhooks.Options{RetrySchedule: []time.Duration{10 * time.Millisecond}})
	h.publish(queueStatus)
	got := rc.waitRequests(t, 2)
	if gap := got[1].at.Sub(got[0].at); gap < 950*time.Millisecond {
		t.Fatalf("retried after %s despite Retry-After: 1", gap)
	}
}

// TestBlackHoleDoesNotDelayOthers: an endpoint that accepts and never answers holds its own
// attempts only; a healthy endpoint gets every event meanwhile.
func TestBlackHoleDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	release := make(chan struct{})
	hole := newReceiver(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	healthy := newReceiver(t, nil)
	h.register(hole.URL)
	h.register(healthy.URL)
	h.dispatcher(webhooks.Options{Concurrency: 2})
	t.Cleanup(func() { close(release) }) // runs before the dispatcher's shutdown
	start := time.Now()
	const n = 30
	bodies := make([]string, n)
	for i := range bodies {
		bodies[i] = progress(i)
	}
	want := h.publish(bodies...)
	got := healthy.waitRequests(t, n)
	if el := time.Since(start); el > 4*time.Second {
		t.Fatalf("healthy endpoint took %s for %d events, want well under the black hole's 5s timeout", el, n)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.header.Get("webhook-id")] = true
	}
	for _, id := range want {
		if !seen[id.String()] {
			t.Fatalf("healthy endpoint missed %s", id)
		}
	}
	if k := len(hole.requests()); k > 2 {
		t.Fatalf("black hole has %d requests in flight, want at most the concurrency (2)", k)
	}
}

// TestShutdownLeavesInFlightPending: an attempt cut short by the grace period is not counted as
// handed off; the next dispatcher delivers it again.
func TestShutdownLeavesInFlightPending(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 10*time.Second)
	release := make(chan struct{})
	var once sync.Once
	rc := newReceiver(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select { // the first attempt hangs until shutdown aborts it
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	hook := h.register(rc.URL)
	d1 := webhooks.NewDispatcher(h.hub, h.st, h.client, webhooks.Options{})
	done := make(chan struct{})
	go func() { defer close(done); _ = d1.Run(context.Background()) }()
	ev := h.publish(queueStatus)[0]
	rc.waitRequests(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := d1.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown returned nil although an attempt was still in flight at the deadline")
	}
	<-done
	if c, _ := h.st.WebhookCursor(t.Context(), hook.ID); !c.Less(ev) {
		t.Fatalf("cursor %s moved past the aborted event %s", c, ev)
	}
	h.dispatcher(webhooks.Options{})
	got := rc.waitRequests(t, 2)
	if got[1].header.Get("webhook-id") != ev.String() {
		t.Fatalf("second request is %s, want the pending %s", got[1].header.Get("webhook-id"), ev)
	}
	eventually(t, "cursor past the event", func() bool {
		c, _ := h.st.WebhookCursor(t.Context(), hook.ID)
		return !c.Less(ev)
	})
}

// TestOneOwnerPerEndpoint: two dispatchers on one store deliver each event once.
func TestOneOwnerPerEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	rc := newReceiver(t, nil)
	h.register(rc.URL)
	h.dispatcher(webhooks.Options{Owner: "a"})
	h.dispatcher(webhooks.Options{Owner: "b"})
	const n = 50
	var want []string
	for range 5 {
		bodies := make([]string, n/5)
		for i := range bodies {
			bodies[i] = progress(i)
		}
		for _, id := range h.publish(bodies...) {
			want = append(want, id.String())
		}
	}
	got := rc.waitRequests(t, n)
	if g := ids(got); len(g) != n {
		t.Fatalf("got %d deliveries, want %d", len(g), n)
	}
	seen := map[string]int{}
	for _, id := range ids(got) {
		seen[id]++
	}
	for _, id := range want {
		if seen[id] != 1 {
			t.Fatalf("event %s delivered %d times, want once", id, seen[id])
		}
	}
}

// rebind answers a public address for the first lookup (registration), then 127.0.0.1.
type rebind struct {
	mu    sync.Mutex
	calls int
}

func (r *rebind) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if host != "rebind.example" {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	if r.calls == 1 {
		return []netip.Addr{netip.MustParseAddr("93.184.215.14")}, nil // never dialled
	}
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
}

// TestRebindingBlockedAndRecorded: a name that turns into 127.0.0.1 after registration is blocked
// at dial time; the receiver on 127.0.0.1 stays silent and the attempts are recorded as blocked.
func TestRebindingBlockedAndRecorded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 5*time.Second)
	h.policy = webhooks.NewPolicy(webhooks.PolicyOptions{Resolver: &rebind{}, AllowPorts: []uint16{}})
	h.client = webhooks.NewClient(h.policy, webhooks.ClientOptions{Timeout: 5 * time.Second})
	h.svc = webhooks.NewService(h.st, h.log, h.policy, nil)
	rc := newReceiver(t, nil)
	port := rc.URL[strings.LastIndex(rc.URL, ":")+1:]
	hook := h.register("http://rebind.example:" + port + "/in")
	h.dispatcher(webhooks.Options{RetrySchedule: []time.Duration{20 * time.Millisecond}})
	h.publish(queueStatus)
	eventually(t, "two blocked attempts recorded", func() bool {
		ds, _ := h.svc.Deliveries(t.Context(), hook.ID)
		return len(ds) == 2 && ds[0].Outcome == webhooks.OutcomeBlocked && ds[0].Final && ds[1].Outcome == webhooks.OutcomeBlocked &&
			strings.Contains(ds[0].Error, "127.0.0.1")
	})
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("the loopback receiver got %d requests through a rebound name", n)
	}
}
