package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/webhooks"
)

// NewWebhooks makes an empty webhook store owned by t (the factory registers its own cleanup).
type NewWebhooks func(t *testing.T) webhooks.Store

// RunWebhooks runs the webhooks.Store contract suite. Every subtest is parallel and makes its
// own store.
func RunWebhooks(t *testing.T, newStore NewWebhooks) {
	tests := []struct {
		name string
		run  func(t *testing.T, s webhooks.Store)
	}{
		{"CreateGetList", testHookCRUD},
		{"EnableDisable", testHookEnable},
		{"DeleteRemovesEverything", testHookDelete},
		{"LeaseIsExclusive", testHookLease},
		{"LeaseExpires", testHookLeaseExpiry},
		{"CursorFencedAndMonotonic", testHookCursor},
		{"RetryQueue", testHookRetries},
		{"DeliveryLogKeepsNewest", testHookLog},
		{"LimitRefusesAndFrees", testHookLimit},
		{"LimitHoldsUnderConcurrency", testHookLimitConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

var hookTime = time.UnixMilli(1764194400123).UTC()

func newHook(id string) webhooks.Webhook {
	return webhooks.Webhook{ID: id, URL: "https://hooks.example/" + id, Topics: []string{"jobs/*"}, Types: []string{"job.progress"},
		Description: "desc " + id, Secret: "whsec_" + id, Enabled: true, CreatedAt: hookTime}
}

func mustCreate(t *testing.T, s webhooks.Store, w webhooks.Webhook, cursor event.ID) {
	t.Helper()
	if err := s.CreateWebhook(ctxFor(t), w, cursor, 0); err != nil {
		t.Fatalf("CreateWebhook(%s): %v", w.ID, err)
	}
}

func mustAcquire(t *testing.T, s webhooks.Store, id, owner string, want bool) {
	t.Helper()
	ok, err := s.AcquireWebhook(ctxFor(t), id, owner, time.Minute)
	if err != nil || ok != want {
		t.Fatalf("AcquireWebhook(%s, %s) = %v, %v; want %v", id, owner, ok, err, want)
	}
}

func equalHook(a, b webhooks.Webhook) bool {
	return a.ID == b.ID && a.URL == b.URL && slices.Equal(a.Topics, b.Topics) && slices.Equal(a.Types, b.Types) &&
		a.Description == b.Description && a.Secret == b.Secret && a.Enabled == b.Enabled &&
		a.DisabledReason == b.DisabledReason && a.CreatedAt.Equal(b.CreatedAt)
}

func testHookCRUD(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	if _, err := s.Webhook(ctx, "nope"); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("Webhook(unknown) err = %v, want ErrNotFound", err)
	}
	a, b := newHook("a"), newHook("b")
	b.Topics, b.Types, b.CreatedAt = nil, nil, hookTime.Add(time.Second)
	mustCreate(t, s, a, event.ID{MS: 5})
	mustCreate(t, s, b, event.ID{})
	got, err := s.Webhook(ctx, "a")
	if err != nil || !equalHook(got, a) {
		t.Fatalf("Webhook(a) = %+v, %v; want %+v", got, err, a)
	}
	list, err := s.Webhooks(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" || len(list[1].Topics) != 0 {
		t.Fatalf("Webhooks = %+v, %v; want a then b", list, err)
	}
	if c, err := s.WebhookCursor(ctx, "a"); err != nil || c != (event.ID{MS: 5}) {
		t.Fatalf("WebhookCursor(a) = %v, %v; want 5-0", c, err)
	}
}

func testHookEnable(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, newHook("a"), event.ID{})
	w, err := s.SetWebhookEnabled(ctx, "a", false, "endpoint answered 410 Gone")
	if err != nil || w.Enabled || w.DisabledReason != "endpoint answered 410 Gone" {
		t.Fatalf("disable = %+v, %v", w, err)
	}
	w, err = s.SetWebhookEnabled(ctx, "a", true, "ignored")
	if err != nil || !w.Enabled || w.DisabledReason != "" {
		t.Fatalf("enable = %+v, %v", w, err)
	}
	if _, err := s.SetWebhookEnabled(ctx, "nope", true, ""); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("enable unknown: err %v", err)
	}
}

func testHookDelete(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, newHook("a"), event.ID{})
	mustAcquire(t, s, "a", "i1", true)
	if err := s.ScheduleRetry(ctx, "a", "i1", webhooks.Retry{EventID: event.ID{MS: 1}, Attempt: 2, Due: hookTime, Body: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDelivery(ctx, "a", webhooks.Delivery{EventID: event.ID{MS: 1}, Outcome: "http_5xx", Time: hookTime}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWebhook(ctx, "a"); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("second delete: err %v, want ErrNotFound", err)
	}
	if _, err := s.Deliveries(ctx, "a", 10); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("Deliveries after delete: err %v", err)
	}
	if err := s.AdvanceWebhookCursor(ctx, "a", "i1", event.ID{MS: 9}); !errors.Is(err, webhooks.ErrLeaseLost) {
		t.Fatalf("AdvanceWebhookCursor after delete: err %v, want ErrLeaseLost", err)
	}
	if ok, err := s.AcquireWebhook(ctx, "a", "i1", time.Minute); ok || err != nil {
		t.Fatalf("AcquireWebhook after delete = %v, %v; want false", ok, err)
	}
	// A new endpoint with the same id starts clean.
	mustCreate(t, s, newHook("a"), event.ID{})
	if n, _, err := s.RetryStats(ctx, "a"); err != nil || n != 0 {
		t.Fatalf("RetryStats of recreated = %d, %v; want 0", n, err)
	}
	if ds, err := s.Deliveries(ctx, "a", 10); err != nil || len(ds) != 0 {
		t.Fatalf("Deliveries of recreated = %v, %v; want none", ds, err)
	}
}

func testHookLease(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	mustAcquire(t, s, "a", "i1", false) // no such endpoint
	mustCreate(t, s, newHook("a"), event.ID{})
	mustAcquire(t, s, "a", "i1", true)
	mustAcquire(t, s, "a", "i1", true) // renew
	mustAcquire(t, s, "a", "i2", false)
	if err := s.ReleaseWebhook(ctx, "a", "i2"); err != nil { // not the owner: no effect
		t.Fatal(err)
	}
	mustAcquire(t, s, "a", "i2", false)
	if err := s.ReleaseWebhook(ctx, "a", "i1"); err != nil {
		t.Fatal(err)
	}
	mustAcquire(t, s, "a", "i2", true)
	if err := s.AdvanceWebhookCursor(ctx, "a", "i1", event.ID{MS: 3}); !errors.Is(err, webhooks.ErrLeaseLost) {
		t.Fatalf("advance by a former owner: err %v, want ErrLeaseLost", err)
	}
	if _, _, err := s.ClaimRetry(ctx, "a", "i1", hookTime, time.Second); !errors.Is(err, webhooks.ErrLeaseLost) {
		t.Fatalf("claim by a former owner: err %v, want ErrLeaseLost", err)
	}
}

func testHookLeaseExpiry(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, newHook("a"), event.ID{})
	if ok, err := s.AcquireWebhook(ctx, "a", "i1", 50*time.Millisecond); !ok || err != nil {
		t.Fatalf("acquire = %v, %v", ok, err)
	}
	for deadline := time.Now().Add(waitFor); ; {
		ok, err := s.AcquireWebhook(ctx, "a", "i2", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 50ms lease was not taken over within %s", waitFor)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if err := s.AdvanceWebhookCursor(ctx, "a", "i1", event.ID{MS: 3}); !errors.Is(err, webhooks.ErrLeaseLost) {
		t.Fatalf("advance after expiry: err %v, want ErrLeaseLost", err)
	}
}

func testHookCursor(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, newHook("a"), event.ID{MS: 9, Seq: 5})
	mustAcquire(t, s, "a", "i1", true)
	steps := []struct {
		to, want event.ID
	}{
		{event.ID{MS: 10, Seq: 0}, event.ID{MS: 10}},         // "10-0" > "9-5" numerically
		{event.ID{MS: 9, Seq: 99}, event.ID{MS: 10}},         // never back
		{event.ID{MS: 10, Seq: 2}, event.ID{MS: 10, Seq: 2}}, // seq compared
		{event.ID{MS: 100, Seq: 0}, event.ID{MS: 100}},
	}
	for _, st := range steps {
		if err := s.AdvanceWebhookCursor(ctx, "a", "i1", st.to); err != nil {
			t.Fatal(err)
		}
		if got, err := s.WebhookCursor(ctx, "a"); err != nil || got != st.want {
			t.Fatalf("after advancing to %s: cursor %s, %v; want %s", st.to, got, err, st.want)
		}
	}
	if err := s.AdvanceWebhookCursor(ctx, "a", "i2", event.ID{MS: 200}); !errors.Is(err, webhooks.ErrLeaseLost) {
		t.Fatalf("advance without the lease: err %v, want ErrLeaseLost", err)
	}
}

func testHookRetries(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, newHook("a"), event.ID{})
	mustAcquire(t, s, "a", "i1", true)
	now := time.Now().Truncate(time.Millisecond)
	for i, due := range []time.Duration{2 * time.Second, 0, time.Second} {
		r := webhooks.Retry{EventID: event.ID{MS: uint64(i + 1)}, Attempt: 2, Due: now.Add(due), Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}
		if err := s.ScheduleRetry(ctx, "a", "i1", r); err != nil {
			t.Fatal(err)
		}
	}
	if n, next, err := s.RetryStats(ctx, "a"); err != nil || n != 3 || !next.Equal(now) {
		t.Fatalf("RetryStats = %d, %v, %v; want 3, %v", n, next, err, now)
	}
	claim := func(at time.Time) (webhooks.Retry, bool) {
		t.Helper()
		r, ok, err := s.ClaimRetry(ctx, "a", "i1", at, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return r, ok
	}
	r, ok := claim(now)
	if !ok || r.EventID != (event.ID{MS: 2}) || r.Attempt != 2 || string(r.Body) != `{"n":1}` {
		t.Fatalf("first claim = %+v, %v; want event 2-0 attempt 2", r, ok)
	}
	if r, ok := claim(now); ok {
		t.Fatalf("second claim at the same time = %+v; want nothing (claimed one is held)", r)
	}
	r, ok = claim(now.Add(1500 * time.Millisecond))
	if !ok || r.EventID != (event.ID{MS: 3}) {
		t.Fatalf("claim at +1.5s = %+v, %v; want 3-0", r, ok)
	}
	// Reschedule 3-0 as attempt 3, complete 2-0: the held one is gone, the rescheduled one waits.
	if err := s.ScheduleRetry(ctx, "a", "i1", webhooks.Retry{EventID: r.EventID, Attempt: 3, Due: now.Add(5 * time.Second), Body: r.Body}); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteRetry(ctx, "a", "i1", event.ID{MS: 2}); err != nil {
		t.Fatal(err)
	}
	r, ok = claim(now.Add(11 * time.Second)) // 1-0 (due +2s) and 3-0 (due +5s) are due
	if !ok || r.EventID != (event.ID{MS: 1}) {
		t.Fatalf("claim at +11s = %+v, %v; want 1-0", r, ok)
	}
	r, ok = claim(now.Add(11 * time.Second))
	if !ok || r.EventID != (event.ID{MS: 3}) || r.Attempt != 3 {
		t.Fatalf("claim at +11s = %+v, %v; want 3-0 attempt 3", r, ok)
	}
	if n, _, err := s.RetryStats(ctx, "a"); err != nil || n != 2 {
		t.Fatalf("RetryStats = %d, %v; want 2", n, err)
	}
	// A claim that was held past its hold is claimable again (its holder died).
	if r, ok := claim(now.Add(22 * time.Second)); !ok || r.EventID != (event.ID{MS: 1}) {
		t.Fatalf("claim after the hold = %+v, %v; want 1-0 again", r, ok)
	}
}

func testHookLog(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	mustCreate(t, s, newHook("a"), event.ID{})
	const n = 130
	for i := range n {
		d := webhooks.Delivery{EventID: event.ID{MS: uint64(i + 1)}, Attempt: 1, Outcome: "success", Status: 200,
			Duration: 1500 * time.Microsecond, Time: hookTime.Add(time.Duration(i) * time.Millisecond)}
		if i == n-1 {
			d = webhooks.Delivery{EventID: event.ID{MS: uint64(i + 1)}, Attempt: 2, Outcome: "http_5xx", Status: 503,
				Error: "HTTP 503", Time: hookTime, NextAttempt: hookTime.Add(time.Minute)}
		}
		if err := s.RecordDelivery(ctx, "a", d); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Deliveries(ctx, "a", 1000)
	if err != nil || len(ds) != 100 {
		t.Fatalf("Deliveries = %d records, %v; want the newest 100", len(ds), err)
	}
	want := webhooks.Delivery{EventID: event.ID{MS: n}, Attempt: 2, Outcome: "http_5xx", Status: 503, Error: "HTTP 503",
		Time: hookTime, NextAttempt: hookTime.Add(time.Minute)}
	if d := ds[0]; d.EventID != want.EventID || d.Attempt != 2 || d.Outcome != want.Outcome || d.Status != 503 ||
		d.Error != want.Error || !d.Time.Equal(want.Time) || !d.NextAttempt.Equal(want.NextAttempt) {
		t.Fatalf("newest record = %+v, want %+v", d, want)
	}
	if d := ds[1]; d.EventID != (event.ID{MS: n - 1}) || d.Duration != 1500*time.Microsecond || !d.NextAttempt.IsZero() {
		t.Fatalf("second record = %+v", d)
	}
	if ds[99].EventID != (event.ID{MS: n - 99}) {
		t.Fatalf("oldest kept = %s, want %d-0", ds[99].EventID, n-99)
	}
	if ds, err := s.Deliveries(ctx, "a", 5); err != nil || len(ds) != 5 {
		t.Fatalf("Deliveries(limit 5) = %d, %v", len(ds), err)
	}
}
