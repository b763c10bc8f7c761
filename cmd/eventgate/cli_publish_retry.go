package main

// How `eventgate publish` retries a batch: which answers, how long, and the key that makes a
// retry safe.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/eventgate/eventgate/internal/backoff"
)

const (
	// publishRetryFor is --retry-for's default: how long a batch is retried. It outlasts the
	// minute for which the server answers 409 to a key whose first request's outcome is unknown.
	publishRetryFor = 2 * time.Minute
	// publishMaxWait caps one wait, a long Retry-After included.
	publishMaxWait = 30 * time.Second
)

// publishBackoff paces the retries of a batch: 1 s before the first, doubled each time up to 15 s;
// a longer Retry-After wins (up to publishMaxWait).
var publishBackoff = backoff.Policy{Base: time.Second, Max: 15 * time.Second}

// retryable reports whether an answer may be retried: a 429 always (nothing was appended); with
// an Idempotency-Key also what a retry with the same key resolves without appending twice: 502,
// 503, 504 (the outcome may be unknown) and 409 idempotency_key_in_use (the first attempt's
// outcome is still unknown to the server).
func retryable(se *serverError, keyed bool) bool {
	switch se.Status {
	case http.StatusTooManyRequests:
		return true
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return keyed
	case http.StatusConflict:
		return keyed && se.Code == "idempotency_key_in_use"
	}
	return false
}

// retrier paces the retries of one batch until its deadline.
type retrier struct {
	deadline time.Time
	backoff  backoff.Policy // the waits, unless Retry-After asks for more
	retries  int            // waits so far
	notes    io.Writer      // each retry is announced here
	sent     int            // events published before this batch, for the message of an interrupt
}

// wait announces the retry (why: the failed attempt) and sleeps before it: retryAfter or the
// backoff, whichever is longer (the backoff doubles with each retry, up to its Max). retry is
// false, without waiting, when the attempt would start after the deadline; err is set when ctx
// ended during the wait.
func (r *retrier) wait(ctx context.Context, retryAfter time.Duration, why string) (retry bool, err error) {
	d := min(max(retryAfter, r.backoff.Delay(r.retries)), publishMaxWait)
	if time.Now().Add(d).After(r.deadline) {
		return false, nil
	}
	r.retries++
	fmt.Fprintf(r.notes, "eventgate publish: %s; retrying in %s\n", strings.TrimSuffix(why, "."), d)
	if !backoff.Wait(ctx, d) {
		return false, fmt.Errorf("interrupted after %d events were published", r.sent)
	}
	return true, nil
}

// newIdempotencyKey is a run's default key: random, so that two runs never share one.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return "publish-" + hex.EncodeToString(b[:])
}
