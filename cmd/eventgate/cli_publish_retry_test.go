package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestPublishRetriesWithOneKey: every batch carries an Idempotency-Key by default (random per
// run), and each retry of a batch — after a 503, a 409 idempotency_key_in_use, a lost answer or a
// 429 — sends the same key again, so the server can replay instead of appending twice. Without a
// key only what appended nothing (429) is retried.
func TestPublishRetriesWithOneKey(t *testing.T) {
	t.Parallel()
	answer := func(status int, code string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":"try again"}}`, code)
		}
	}
	lost := func(w http.ResponseWriter) { // the request arrived; its answer never does
		c, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			c.Close()
		}
	}
	for _, tc := range []struct {
		name    string
		answers []func(w http.ResponseWriter)
		args    []string
		keys    []string // "K" stands for the run's generated key
		code    int
		stderr  []string
	}{
		{name: "503 then 409 then accepted", answers: []func(http.ResponseWriter){answer(503, "store_unavailable"), answer(409, "idempotency_key_in_use")},
			args: []string{"--batch-size", "1", ev(1), ev(2)}, keys: []string{"K", "K", "K", "K/1"}, code: exitOK,
			stderr: []string{"input event 1: 503 store_unavailable: try again; retrying in 1s", "409 idempotency_key_in_use: try again; retrying in 2s"}},
		{name: "lost answer then accepted", answers: []func(http.ResponseWriter){lost},
			args: []string{ev(1)}, keys: []string{"K", "K"}, code: exitOK, stderr: []string{"retrying in 1s"}},
		{name: "explicit key", answers: []func(http.ResponseWriter){answer(502, "bad_gateway")},
			args: []string{"--idempotency-key", "run-7", ev(1)}, keys: []string{"run-7", "run-7"}, code: exitOK},
		{name: "gives up after retry-for", answers: []func(http.ResponseWriter){answer(503, "timeout")},
			args: []string{"--retry-for", "500ms", ev(1)}, keys: []string{"K"}, code: exitFailure,
			stderr: []string{"input event 1: 503 timeout: try again (they may or may not have been appended; rerun with --idempotency-key K and the same input"}},
		{name: "no key: 503 not retried", answers: []func(http.ResponseWriter){answer(503, "store_unavailable")},
			args: []string{"--no-idempotency-key", ev(1)}, keys: []string{""}, code: exitFailure, stderr: []string{"(they may or may not have been appended)"}},
		{name: "no key: lost answer not retried", answers: []func(http.ResponseWriter){lost},
			args: []string{"--no-idempotency-key", ev(1)}, keys: []string{""}, code: exitFailure, stderr: []string{"(they may or may not have been appended)"}},
		{name: "no key: 429 retried", answers: []func(http.ResponseWriter){answer(429, "rate_limited")},
			args: []string{"--no-idempotency-key", ev(1)}, keys: []string{"", ""}, code: exitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, srv := newPublishServer(t, tc.answers...)
			code, _, errs := runPublishTest(t, srv.URL, nil, nil, tc.args...)
			rec.mu.Lock()
			keys := slices.Clone(rec.keys)
			rec.mu.Unlock()
			if len(keys) == 0 {
				t.Fatalf("exit %d without a request; stderr %q", code, errs)
			}
			k := keys[0]
			if !slices.Contains(tc.args, "--idempotency-key") && !slices.Contains(tc.args, "--no-idempotency-key") &&
				(!strings.HasPrefix(k, "publish-") || len(k) < 30) {
				t.Fatalf("generated Idempotency-Key %q, want publish-<random>", k)
			}
			want := make([]string, len(tc.keys))
			for i, w := range tc.keys {
				want[i] = strings.Replace(w, "K", k, 1)
			}
			if code != tc.code || !slices.Equal(keys, want) {
				t.Fatalf("exit %d, keys %q; want exit %d, keys %q; stderr %q", code, keys, tc.code, want, errs)
			}
			for _, s := range tc.stderr {
				if s = strings.Replace(s, "--idempotency-key K", "--idempotency-key "+k, 1); !strings.Contains(errs, s) {
					t.Errorf("stderr %q lacks %q", errs, s)
				}
			}
		})
	}
}

// TestPublishKeyPerRun: two runs never share a generated key (a rerun that should be recognised
// as the same must pass --idempotency-key).
func TestPublishKeyPerRun(t *testing.T) {
	t.Parallel()
	rec, srv := newPublishServer(t)
	for range 2 {
		if code, _, errs := runPublishTest(t, srv.URL, nil, nil, ev(1)); code != exitOK {
			t.Fatalf("exit %d: %s", code, errs)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.keys) != 2 || rec.keys[0] == "" || rec.keys[0] == rec.keys[1] {
		t.Fatalf("keys %q: want two different generated keys", rec.keys)
	}
}
