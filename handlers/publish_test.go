package handlers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// stallingLog is an in-process log whose Append and Ping behave like a Redis that stopped
// answering (or failed): with stall they wait for the context to end, as go-redis does with
// ContextTimeoutEnabled, and then fail with its error; else they return fail, if set.
type stallingLog struct {
	*store.Memory
	stall bool
	fail  error
}

func (l *stallingLog) Append(ctx context.Context, drafts []event.Draft) ([]event.ID, error) {
	if err := l.wait(ctx); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	return l.Memory.Append(ctx, drafts)
}

func (l *stallingLog) Ping(ctx context.Context) error { return l.wait(ctx) }

func (l *stallingLog) wait(ctx context.Context) error {
	if l.stall {
		return stall(ctx)
	}
	return l.fail
}

// stall waits for ctx to end and returns its error; a caller that gave no deadline is released
// after an hour (of the test's fake time) with an error of its own.
func stall(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Hour):
		return errors.New("no deadline: stalled for an hour")
	}
}

// stallingReceipts are in-process receipts whose Claim waits for the context to end when stall.
type stallingReceipts struct {
	*store.MemoryReceipts
	stall bool
}

func (r *stallingReceipts) Claim(ctx context.Context, key string, ttl time.Duration) ([]byte, bool, error) {
	if r.stall {
		return nil, false, fmt.Errorf("claim: %w", stall(ctx))
	}
	return r.MemoryReceipts.Claim(ctx, key, ttl)
}

// newStallingServer is newTestServer on a stallingLog and stallingReceipts.
func newStallingServer(t *testing.T, log *stallingLog, receipts *stallingReceipts) *Server {
	t.Helper()
	hub := streams.NewHub(log, streams.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s, err := New(Config{}, Deps{Hub: hub, Log: log, Receipts: receipts, Leases: store.NewMemoryLeases(),
		Jobs: store.NewMemoryJobs(time.Hour), Store: log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPublishStoreStalls: a publish whose store calls do not answer gets a 503 once its
// publishTimeout has passed (fake time), not a request that hangs; when the append's outcome is
// unknown the answer says so, and (with in-process receipts, which claim the key first) the
// Idempotency-Key stays claimed, so a retry cannot append a second copy of a batch the store may
// still apply: it gets 409 until the claim lapses.
func TestPublishStoreStalls(t *testing.T) {
	t.Parallel()
	const body = `{"type":"queue.status","data":{"pending":1,"active":0}}`
	for _, tc := range []struct {
		name          string
		log           stallingLog
		receipts      stallingReceipts
		code          string
		unknown       bool // the message says the outcome is unknown
		retryConflict bool // the retry gets 409 (the claim is kept)
	}{
		{name: "append stalls", log: stallingLog{stall: true}, code: "store_unavailable", unknown: true, retryConflict: true},
		{name: "append fails", log: stallingLog{fail: streams.ErrUnavailable}, code: "store_unavailable", unknown: true, retryConflict: true},
		{name: "claim stalls", receipts: stallingReceipts{stall: true}, code: "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tc.log.Memory, tc.receipts.MemoryReceipts = store.NewMemory(100), store.NewMemoryReceipts()
				s := newStallingServer(t, &tc.log, &tc.receipts)
				start := time.Now()
				rec := do(s, "POST", "/api/v1/events", body, http.Header{"Idempotency-Key": {"k"}})
				if took := time.Since(start); rec.Code != http.StatusServiceUnavailable || took > publishTimeout {
					t.Fatalf("publish: %d %s after %s, want 503 within %s", rec.Code, rec.Body, took, publishTimeout)
				}
				code, msg := errorCode(t, rec)
				if code != tc.code || strings.Contains(msg, "Idempotency-Key") != tc.unknown || rec.Header().Get("Retry-After") == "" {
					t.Fatalf("error %s %q (Retry-After %q), want %s, outcome unknown said: %v", code, msg, rec.Header().Get("Retry-After"), tc.code, tc.unknown)
				}
				if !tc.retryConflict {
					return
				}
				tc.log.stall, tc.log.fail = false, nil // the store answers again
				if rec := do(s, "POST", "/api/v1/events", body, http.Header{"Idempotency-Key": {"k"}}); rec.Code != http.StatusConflict {
					t.Fatalf("retry with the same key: %d %s, want 409 while the first's outcome is unknown", rec.Code, rec.Body)
				}
			})
		})
	}
}

// TestReadyzStoreStalls: /readyz answers 503 within 2 s (fake time) when the store does not answer.
func TestReadyzStoreStalls(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := newStallingServer(t, &stallingLog{Memory: store.NewMemory(10), stall: true}, &stallingReceipts{MemoryReceipts: store.NewMemoryReceipts()})
		start := time.Now()
		rec := do(s, "GET", "/readyz", "", nil)
		if took := time.Since(start); rec.Code != http.StatusServiceUnavailable || took >= 2*time.Second {
			t.Fatalf("/readyz: %d %s after %s, want 503 within 2s", rec.Code, rec.Body, took)
		}
	})
}
