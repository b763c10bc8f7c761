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
)

const (
	// publishRetryFor is --retry-for's default: how long a batch is retried. It outlasts the
	// minute for which the server answers 409 to a key whose first request's outcome is unknown.
	publishRetryFor = 2 * time.Minute
	// publishBackoff and publishMaxBackoff: the first wait before a retry, doubled each time up to
	// the maximum; a longer Retry-After wins (up to publishMaxWait).
	publishBackoff    = time.Second
	publishMaxBackoff = 15 * time.Second
	publishMaxWait    = 30 * time.Second
)

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
	backoff  time.Duration // the next wait unless Retry-After asks for more
	notes    io.Writer     // each retry is announced here
	sent     int           // events published before this batch, for the message of an interrupt
}

// wait announces the retry (why: the failed attempt) and sleeps before it: retryAfter or the
// backoff, whichever is longer (the backoff then doubles, up to publishMaxBackoff). retry is
// false, without waiting, when the attempt would start after the deadline; err is set when ctx
// ended during the wait.
func (r *retrier) wait(ctx context.Context, retryAfter time.Duration, why string) (retry bool, err error) {
	d := min(max(retryAfter, r.backoff), publishMaxWait)
	if time.Now().Add(d).After(r.deadline) {
		return false, nil
	}
	r.backoff = min(2*r.backoff, publishMaxBackoff)
	fmt.Fprintf(r.notes, "eventgate publish: %s; retrying in %s\n", strings.TrimSuffix(why, "."), d)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, fmt.Errorf("interrupted after %d events were published", r.sent)
	case <-t.C:
		return true, nil
	}
}

// newIdempotencyKey is a run's default key: random, so that two runs never share one.
func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return "publish-" + hex.EncodeToString(b[:])
}
