package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestPublishRetries: the outcome of each answer sequence, the Idempotency-Key of every attempt
// and the waits, on the synctest bubble's fake clock.
func TestPublishRetries(t *testing.T) {
	t.Parallel()
	status := func(code int, errCode string) func() (*http.Response, error) {
		return answer(code, "application/json", fmt.Sprintf(`{"error":{"code":%q,"message":"x"}}`, errCode))
	}
	created := answer(http.StatusCreated, "application/json", `{"ids":["1-0","2-0"]}`)
	lost := func() (*http.Response, error) { return nil, errors.New("EOF") }
	refused := func() (*http.Response, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	}
	for _, tc := range []struct {
		name    string
		opts    PublishOptions
		answers []func() (*http.Response, error)
		keys    string // the key of each attempt, "K" for a generated one
		waits   string
		outcome Outcome // when it fails
		fails   bool
	}{
		{name: "503, 409 in use, lost, then 201", answers: []func() (*http.Response, error){status(503, "store_unavailable"), status(409, "idempotency_key_in_use"), lost, created},
			keys: "K K K K", waits: "1s 2s 4s"},
		{name: "explicit key", opts: PublishOptions{IdempotencyKey: "run-7"}, answers: []func() (*http.Response, error){status(502, ""), created},
			keys: "run-7 run-7", waits: "1s"},
		{name: "refused connection", opts: PublishOptions{NoIdempotencyKey: true}, answers: []func() (*http.Response, error){refused, created},
			keys: " ", waits: "1s"},
		{name: "no key: 503 not retried", opts: PublishOptions{NoIdempotencyKey: true}, answers: []func() (*http.Response, error){status(503, "x")},
			keys: "", fails: true, outcome: Unconfirmed},
		{name: "no key: lost answer not retried", opts: PublishOptions{NoIdempotencyKey: true}, answers: []func() (*http.Response, error){lost},
			keys: "", fails: true, outcome: Unconfirmed},
		{name: "400 refused", answers: []func() (*http.Response, error){status(400, "invalid_event")}, keys: "K", fails: true, outcome: Refused},
		{name: "409 reused", answers: []func() (*http.Response, error){status(409, "idempotency_key_reused")}, keys: "K", fails: true, outcome: Failed},
		{name: "no retries", opts: PublishOptions{RetryFor: -1}, answers: []func() (*http.Response, error){refused}, keys: "K", fails: true, outcome: NotSent},
		{name: "gives up after RetryFor", opts: PublishOptions{RetryFor: 2500 * time.Millisecond}, answers: []func() (*http.Response, error){status(504, "")},
			keys: "K K", waits: "1s", fails: true, outcome: Unconfirmed},
		{name: "wrong id count", answers: []func() (*http.Response, error){answer(201, "application/json", `{"ids":["1-0"]}`)}, keys: "K", fails: true, outcome: Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				do := &scripted{answers: tc.answers}
				var waits []string
				tc.opts.OnRetry = func(_ error, d time.Duration) { waits = append(waits, d.String()) }
				ids, err := newTestClient(t, do).Publish(context.Background(), []json.RawMessage{json.RawMessage(`{"type":"a"}`), json.RawMessage(`{"type":"b"}`)}, tc.opts)
				var keys []string
				for _, r := range do.requests() {
					keys = append(keys, r.Header.Get("Idempotency-Key"))
				}
				k := keys[0]
				if tc.keys != "" && strings.HasPrefix(tc.keys, "K") && (!strings.HasPrefix(k, "publish-") || len(k) != len("publish-")+32) {
					t.Fatalf("generated key %q, want publish-<32 hex digits>", k)
				}
				if got, want := strings.Join(keys, " "), strings.ReplaceAll(tc.keys, "K", k); got != want || strings.Join(waits, " ") != tc.waits {
					t.Fatalf("keys %q waits %q, want %q and %q", got, waits, want, tc.waits)
				}
				var pe *PublishError
				if !tc.fails {
					if err != nil || strings.Join(ids, ",") != "1-0,2-0" {
						t.Fatalf("ids %q err %v", ids, err)
					}
				} else if !errors.As(err, &pe) || pe.Outcome != tc.outcome || pe.Key != k {
					t.Fatalf("error %v (%#v), want outcome %d with key %q", err, pe, tc.outcome, k)
				}
			})
		})
	}
}

// TestPublishInterrupted: a context that ends while Publish waits returns the context's error.
func TestPublishInterrupted(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		do := &scripted{answers: []func() (*http.Response, error){answer(429, "application/json", `{}`)}}
		_, err := newTestClient(t, do).Publish(ctx, []json.RawMessage{json.RawMessage(`{}`)}, PublishOptions{OnRetry: func(error, time.Duration) { cancel() }})
		if !errors.Is(err, context.Canceled) || errors.As(err, new(*PublishError)) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if _, err := newTestClient(t, do).Publish(ctx, nil, PublishOptions{}); err == nil {
			t.Fatal("an empty batch was accepted")
		}
	})
}
