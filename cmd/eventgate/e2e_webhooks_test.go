package main

// End-to-end tests of webhook delivery through the real binary: loopback receivers (allowed with
// EVENTGATE_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8) verify every signature with the Standard Webhooks
// reference library; registration refusals run on a server with the default policy; durability
// and multi-instance delivery run on Redis. Retry schedules are short (100ms…) to keep them fast.

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

const hookWait = 20 * time.Second // for expected deliveries

// hookEnv is the environment of a server whose webhooks may reach loopback receivers.
func hookEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"EVENTGATE_AUTH":                   "none",
		"EVENTGATE_WEBHOOK_ALLOW_CIDRS":    "127.0.0.0/8",
		"EVENTGATE_WEBHOOK_ALLOW_PORTS":    "*",
		"EVENTGATE_WEBHOOK_RETRY_SCHEDULE": "100ms,200ms",
		"EVENTGATE_SHUTDOWN_GRACE":         "2s",
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// hookRequest is one delivery a receiver got.
type hookRequest struct {
	id       string // webhook-id
	body     []byte
	status   int  // what the receiver answered
	verified bool // the reference library accepted the signature
	at       time.Time
}

// hookReceiver is a loopback webhook endpoint that can go down and come back on the same port.
// answer picks the status for the n-th request (from 1) carrying an id; nil answers 204.
type hookReceiver struct {
	t      *testing.T
	addr   string
	answer func(id string, n int) int

	mu     sync.Mutex
	secret string
	reqs   []hookRequest
	srv    *http.Server
	got    chan struct{}
}

func newHookReceiver(t *testing.T, answer func(id string, n int) int) *hookReceiver {
	t.Helper()
	r := &hookReceiver{t: t, answer: answer, got: make(chan struct{}, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *hookReceiver) URL() string { return "http://" + r.addr + "/hook" }

func (r *hookReceiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (r *hookReceiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	id := req.Header.Get("webhook-id")
	r.mu.Lock()
	verified := false
	if wh, err := standardwebhooks.NewWebhook(r.secret); err == nil && r.secret != "" {
		verified = wh.Verify(body, req.Header) == nil && req.Header.Get("Content-Type") == "application/json"
	}
	n := 1
	for _, q := range r.reqs {
		if q.id == id {
			n++
		}
	}
	status := http.StatusNoContent
	if r.answer != nil {
		status = r.answer(id, n)
	}
	r.reqs = append(r.reqs, hookRequest{id: id, body: body, status: status, verified: verified, at: time.Now()})
	r.mu.Unlock()
	select {
	case r.got <- struct{}{}:
	default:
	}
	if status == 0 { // black hole: accept, never answer
		<-req.Context().Done()
		return
	}
	w.WriteHeader(status)
}

// down stops the receiver (connections are then refused). Idempotent.
func (r *hookReceiver) down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up serves again on the same address.
func (r *hookReceiver) up() {
	r.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		if ln, err = net.Listen("tcp", r.addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("receiver: listening on %s again: %v", r.addr, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	r.serve(ln)
}

func (r *hookReceiver) setSecret(s string) { r.mu.Lock(); r.secret = s; r.mu.Unlock() }

func (r *hookReceiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRequest(nil), r.reqs...)
}

// delivered returns how many 2xx deliveries each webhook-id got.
func (r *hookReceiver) delivered() map[string]int {
	out := map[string]int{}
	for _, q := range r.requests() {
		if q.status >= 200 && q.status < 300 {
			out[q.id]++
		}
	}
	return out
}

// waitDelivered waits until every id got a 2xx delivery; it fails on an unverified signature.
func (r *hookReceiver) waitDelivered(t *testing.T, ids []string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		got, missing := r.delivered(), []string(nil)
		for _, id := range ids {
			if got[id] == 0 {
				missing = append(missing, id)
			}
		}
		for _, q := range r.requests() {
			if !q.verified {
				t.Fatalf("receiver: delivery of %s has a signature the reference library rejects", q.id)
			}
		}
		if len(missing) == 0 {
			return
		}
		select {
		case <-r.got:
		case <-deadline:
			t.Fatalf("receiver: %d of %d events not delivered within %s: %v", len(missing), len(ids), timeout, missing)
		}
	}
}

// publishAlternately publishes rounds batches of n progress events, alternately on instance a
// and b (a first), and returns their ids.
func publishAlternately(t *testing.T, a, b string, rounds, n int) []string {
	t.Helper()
	var ids []string
	for i := range rounds {
		base := a
		if i%2 == 1 {
			base = b
		}
		ids = append(ids, mustPublish(t, base, progressBatch(jobA, n), n)...)
	}
	return ids
}

// waitDeliveredOnce waits until each receiver got every id (waitDelivered, within hookWait), and
// fails when one got more requests than ids: with two instances, each event is delivered once per
// endpoint, by one of them.
func waitDeliveredOnce(t *testing.T, ids []string, receivers ...*hookReceiver) {
	t.Helper()
	for _, r := range receivers {
		r.waitDelivered(t, ids, hookWait)
	}
	for _, r := range receivers {
		if n := len(r.requests()); n != len(ids) {
			t.Fatalf("endpoint got %d requests for %d events: each must be delivered once by one instance", n, len(ids))
		}
	}
}

// webhookView is the API's endpoint object.
type webhookView struct {
	ID, URL, Secret, Description string
	Enabled                      bool
	DisabledReason               string `json:"disabled_reason"`
}

// registerHook registers url and returns the endpoint (with its secret).
func registerHook(t *testing.T, base, body string) webhookView {
	t.Helper()
	status, _, raw := doRequest(t, http.MethodPost, base+"/api/v1/webhooks", body, nil)
	var w webhookView
	if status != http.StatusCreated || json.Unmarshal(raw, &w) != nil || !strings.HasPrefix(w.Secret, "whsec_") {
		t.Fatalf("register %s: %d %s", body, status, raw)
	}
	return w
}

func getHook(t *testing.T, base, id string) webhookView {
	t.Helper()
	status, _, raw := doRequest(t, http.MethodGet, base+"/api/v1/webhooks/"+id, "", nil)
	var w webhookView
	if status != http.StatusOK || json.Unmarshal(raw, &w) != nil {
		t.Fatalf("GET webhook %s: %d %s", id, status, raw)
	}
	return w
}

type deliveryView struct {
	EventID     string     `json:"event_id"`
	Attempt     int        `json:"attempt"`
	Outcome     string     `json:"outcome"`
	Status      int        `json:"status"`
	Final       bool       `json:"final"`
	NextAttempt *time.Time `json:"next_attempt"`
}

func hookDeliveries(t *testing.T, base, id string) []deliveryView {
	t.Helper()
	status, _, raw := doRequest(t, http.MethodGet, base+"/api/v1/webhooks/"+id+"/deliveries", "", nil)
	var body struct{ Deliveries []deliveryView }
	if status != http.StatusOK || json.Unmarshal(raw, &body) != nil {
		t.Fatalf("GET deliveries %s: %d %s", id, status, raw)
	}
	return body.Deliveries
}

// pollUntil polls cond until it holds or timeout passes.
func pollUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// TestE2EWebhooks: signed delivery with retries (500, 500, then 200), a 410 that disables its
// endpoint, and a black-hole endpoint that does not delay a healthy one.
func TestE2EWebhooks(t *testing.T) {
	t.Parallel()
	// The black hole's attempts hang for the whole timeout, longer than the test waits for the
	// healthy endpoint: if it held up the others, the healthy endpoint's wait would fail.
	s := startServer(t, hookEnv(map[string]string{"EVENTGATE_WEBHOOK_TIMEOUT": "2m", "EVENTGATE_WEBHOOK_CONCURRENCY": "2"}))
	flaky := newHookReceiver(t, func(_ string, n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	gone := newHookReceiver(t, func(string, int) int { return http.StatusGone })
	hole := newHookReceiver(t, func(string, int) int { return 0 })
	healthy := newHookReceiver(t, nil)
	hooks := map[*hookReceiver]webhookView{}
	for _, r := range []*hookReceiver{flaky, gone, hole, healthy} {
		w := registerHook(t, s.URL(), `{"url":"`+r.URL()+`","topics":["jobs/*"]}`)
		r.setSecret(w.Secret)
		hooks[r] = w
	}
	mustPublish(t, s.URL(), queueStatus(1, 0), 1) // not on jobs/*: no endpoint gets it
	ids := mustPublish(t, s.URL(), progressBatch(jobA, 20), 20)

	healthy.waitDelivered(t, ids, hookWait)
	flaky.waitDelivered(t, ids, hookWait)
	for _, r := range []*hookReceiver{flaky, healthy} {
		for _, q := range r.requests() {
			e := decodeEnvelope(t, string(q.body))
			if e.ID != q.id || e.Type != "job.progress" {
				t.Fatalf("delivery %s carries %s %s", q.id, e.Type, e.ID)
			}
		}
	}
	// Every event reached the flaky endpoint on its third attempt, with the same webhook-id.
	for _, id := range ids {
		n := 0
		for _, q := range flaky.requests() {
			if q.id == id {
				n++
			}
		}
		if n != 3 {
			t.Fatalf("flaky endpoint got %s %d times, want 3 (500, 500, 200)", id, n)
		}
	}
	pollUntil(t, "flaky endpoint's delivery log shows third-attempt successes", hookWait, func() bool {
		for _, d := range hookDeliveries(t, s.URL(), hooks[flaky].ID) {
			if d.Outcome == "success" && d.Attempt == 3 {
				return true
			}
		}
		return false
	})
	pollUntil(t, "410 endpoint disabled", hookWait, func() bool {
		w := getHook(t, s.URL(), hooks[gone].ID)
		return !w.Enabled && strings.Contains(w.DisabledReason, "410")
	})
	if n := len(gone.requests()); n > 2 {
		t.Errorf("the 410 endpoint got %d requests; delivery should stop at once (≤ concurrency 2)", n)
	}
	if got := healthy.delivered(); len(got) != 20 {
		t.Errorf("healthy endpoint got %d distinct events, want 20", len(got))
	}
	s.Stop() // within the grace although the black hole still holds attempts
}

// TestE2EWebhookRegistrationPolicy: with the default policy, no loopback or private destination
// in any encoding, no other scheme, no userinfo, no unlisted port.
func TestE2EWebhookRegistrationPolicy(t *testing.T) {
	t.Parallel()
	s := startServer(t, map[string]string{"EVENTGATE_AUTH": "none"})
	for _, u := range []string{
		"http://127.0.0.1/", "http://127.1/", "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/",
		"http://[::ffff:127.0.0.1]/", "http://[::1]/", "http://0.0.0.0/", "http://169.254.169.254/latest/meta-data/",
		"http://10.0.0.1/", "http://192.168.0.1/", "http://100.64.0.1/", "http://localhost/", "http://[64:ff9b::7f00:1]/",
		"file:///etc/passwd", "gopher://93.184.215.14/", "https://user:pass@93.184.215.14/", "https://93.184.215.14:25/",
		"http://" + s.addr + "/", // eventgate itself
	} {
		status, _, raw := doRequest(t, http.MethodPost, s.URL()+"/api/v1/webhooks", `{"url":"`+u+`"}`, nil)
		if msg := expectError(t, status, raw, http.StatusBadRequest, "invalid_webhook_url"); msg == "" {
			t.Fatalf("%s: no reason given", u)
		}
	}
}

// TestE2EWebhooksSurviveRestart: the receiver is down while eventgate restarts; once both are
// back, every event is delivered — those that were retrying, one appended directly to Redis while
// eventgate was down, and new ones.
func TestE2EWebhooksSurviveRestart(t *testing.T) {
	t.Parallel()
	client, key, env := redisSetup(t, hookEnv(map[string]string{"EVENTGATE_WEBHOOK_RETRY_SCHEDULE": "200ms,500ms,1s,1s,1s,1s,1s,1s,1s,1s"}))
	r := newHookReceiver(t, nil)
	s1 := startServer(t, env)
	w := registerHook(t, s1.URL(), `{"url":"`+r.URL()+`"}`)
	r.setSecret(w.Secret)
	r.down()
	ids := mustPublish(t, s1.URL(), batch(jobQueued(jobA), jobProgress(jobA, 10), jobProgress(jobA, 20)), 3)
	pollUntil(t, "first attempts failed and were queued", hookWait, func() bool {
		return len(hookDeliveries(t, s1.URL(), w.ID)) >= 3
	})
	s1.Stop()
	ids = append(ids, xadd(t, client, key, "event", jobProgress(jobA, 30))) // while eventgate is down
	r.up()
	s2 := startServer(t, env)
	ids = append(ids, mustPublish(t, s2.URL(), jobProgress(jobA, 40), 1)...)
	r.waitDelivered(t, ids, hookWait)
	if got := getHook(t, s2.URL(), w.ID); !got.Enabled || got.URL != r.URL() {
		t.Fatalf("endpoint after restart: %+v", got)
	}
}

// TestE2EWebhooksTwoInstances: two instances on one Redis deliver every event once per endpoint;
// when the owning instance is killed, the other takes its endpoints over (lease TTL 3s) and
// nothing is lost.
func TestE2EWebhooksTwoInstances(t *testing.T) {
	t.Parallel()
	_, _, env := redisSetup(t, hookEnv(map[string]string{"EVENTGATE_WEBHOOK_LEASE_TTL": "3s"}))
	a, b := startServer(t, env), startServer(t, env)
	r1, r2 := newHookReceiver(t, nil), newHookReceiver(t, nil)
	h1 := registerHook(t, a.URL(), `{"url":"`+r1.URL()+`"}`)
	h2 := registerHook(t, b.URL(), `{"url":"`+r2.URL()+`","types":["job.progress"]}`)
	r1.setSecret(h1.Secret)
	r2.setSecret(h2.Secret)
	ids := publishAlternately(t, a.URL(), b.URL(), 10, 4)
	waitDeliveredOnce(t, ids, r1, r2)

	a.Kill() // no lease release: b takes over once a's leases lapse
	more := mustPublish(t, b.URL(), progressBatch(jobA, 5), 5)
	r1.waitDelivered(t, more, hookWait)
	r2.waitDelivered(t, more, hookWait)
}
