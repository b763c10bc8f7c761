package client

// POST /api/v1/events with an Idempotency-Key, and the retries that the key makes safe.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/eventgate/eventgate/internal/backoff"
)

const (
	// MaxBatch is the most events one Publish may carry (the server's limit, docs/api.md#publishing).
	MaxBatch = 1000
	// DefaultRetryFor is how long Publish retries by default. It outlasts the minute for which the
	// server answers 409 to a key whose first request's outcome is still unknown.
	DefaultRetryFor = 2 * time.Minute

	// publishMaxWait caps one wait, a long Retry-After included.
	publishMaxWait = 30 * time.Second
)

// publishBackoff paces the retries of a batch: 1 s before the first, doubled each time up to 15 s;
// a longer Retry-After wins (up to publishMaxWait).
var publishBackoff = backoff.Policy{Base: time.Second, Max: 15 * time.Second}

// PublishOptions are one Publish call's settings; the zero value sends a random key and retries
// for DefaultRetryFor.
type PublishOptions struct {
	// IdempotencyKey is sent on every attempt, so the server appends the batch at most once
	// across retries, and across calls with the same key and batch (e.g. a rerun after a crash).
	// Empty: a new random key for this call (see NewIdempotencyKey).
	IdempotencyKey string
	// NoIdempotencyKey sends none. Then only what appended nothing is retried (a 429, a refused
	// connection): after a 5xx or a lost answer a retry could append the batch twice.
	NoIdempotencyKey bool
	// RetryFor bounds the retries: no attempt starts later than this after the call. Waits are
	// 1 s doubling to 15 s, or a longer Retry-After (up to 30 s). 0: DefaultRetryFor; negative:
	// one attempt only.
	RetryFor time.Duration
	// OnRetry, if set, is called on the calling goroutine before each wait: why the attempt
	// failed, and the wait.
	OnRetry func(err error, wait time.Duration)
}

// Outcome is what is known of a batch that Publish did not get ids for.
type Outcome int

const (
	// Failed: none of the others (e.g. a 201 whose ids could not be read, or a 409 conflict);
	// PublishError.Err says what happened.
	Failed Outcome = iota
	// NotSent: no connection could be made; nothing was appended.
	NotSent
	// Refused: the server refused the batch (a 4xx other than 409); nothing of it was appended.
	Refused
	// Unconfirmed: the answer was lost or was a 5xx: the batch may or may not have been appended.
	// Publishing it again with the same IdempotencyKey settles it without appending twice.
	Unconfirmed
)

// PublishError is a Publish that did not get ids: the last attempt's error (a *StatusError when
// the server answered, else the transport's error), what is known of the batch, and the key it
// was sent with ("" if none).
type PublishError struct {
	Outcome Outcome
	Key     string
	Err     error
}

// Error says what became of the batch, then why.
func (e *PublishError) Error() string {
	switch e.Outcome {
	case NotSent:
		return "not sent: " + e.Err.Error()
	case Refused:
		return "refused (not appended): " + e.Err.Error()
	case Unconfirmed:
		return e.Err.Error() + " (it may or may not have been appended)"
	}
	return e.Err.Error()
}

// Unwrap returns Err, so that errors.As finds a *StatusError.
func (e *PublishError) Unwrap() error { return e.Err }

// Publish appends events (1 to MaxBatch JSON objects {"type":...,"data":{...}}) atomically and
// returns their ids, in order. It retries (see PublishOptions) until RetryFor has passed or ctx
// ends. A failure is a *PublishError, except when ctx ends while Publish waits to retry: then
// ctx's error (the last attempt's error went to OnRetry; pass your own IdempotencyKey to be able
// to settle such a batch later). Publish is safe for concurrent use; events is only read.
func (c *Client) Publish(ctx context.Context, events []json.RawMessage, o PublishOptions) ([]string, error) {
	if len(events) == 0 || len(events) > MaxBatch {
		return nil, fmt.Errorf("client: Publish takes 1 to %d events, not %d", MaxBatch, len(events))
	}
	var body bytes.Buffer
	body.WriteByte('[')
	for i, e := range events {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(e)
	}
	body.WriteByte(']')
	key := o.IdempotencyKey
	switch {
	case o.NoIdempotencyKey:
		key = ""
	case key == "":
		key = NewIdempotencyKey()
	}
	retryFor := o.RetryFor
	if retryFor == 0 {
		retryFor = DefaultRetryFor
	}
	r := retrier{deadline: time.Now().Add(retryFor), notify: o.OnRetry}
	u := c.endpoint("/api/v1/events").String()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body.Bytes()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		c.authorize(req)
		resp, err := c.http.Do(req)
		if err != nil {
			var op *net.OpError
			notSent := errors.As(err, &op) && op.Op == "dial"
			err = transportError(err)
			// A retry sends the same key, so a batch whose answer was lost is appended at most once.
			if ctx.Err() == nil && (notSent || key != "") {
				retry, werr := r.wait(ctx, 0, err)
				if werr != nil {
					return nil, werr
				}
				if retry {
					continue
				}
			}
			if notSent {
				return nil, &PublishError{Outcome: NotSent, Key: key, Err: err}
			}
			return nil, &PublishError{Outcome: Unconfirmed, Key: key, Err: err}
		}
		if resp.StatusCode == http.StatusCreated {
			ids, err := readIDs(resp, len(events))
			resp.Body.Close()
			if err != nil {
				return nil, &PublishError{Outcome: Failed, Key: key, Err: err}
			}
			return ids, nil
		}
		se := readStatusError(resp)
		resp.Body.Close()
		if retryable(se, key != "") {
			retry, werr := r.wait(ctx, se.RetryAfter, se)
			if werr != nil {
				return nil, werr
			}
			if retry {
				continue
			}
		}
		outcome := Failed
		switch {
		case se.Status >= 400 && se.Status < 500 && se.Status != http.StatusConflict:
			outcome = Refused
		case se.Status >= 500:
			outcome = Unconfirmed
		}
		return nil, &PublishError{Outcome: outcome, Key: key, Err: se}
	}
}

// retryable reports whether an answer may be retried: a 429 always (nothing was appended); with
// an Idempotency-Key also what a retry with the same key resolves without appending twice: 502,
// 503, 504 (the outcome may be unknown) and 409 idempotency_key_in_use (the first attempt's
// outcome is still unknown to the server).
func retryable(se *StatusError, keyed bool) bool {
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
	retries  int                        // waits so far: the backoff grows with them
	notify   func(error, time.Duration) // told of each retry; may be nil
}

// wait announces the retry (why: the failed attempt) and sleeps before it: retryAfter or the
// backoff, whichever is longer (the backoff then doubles, up to 15 s). retry is
// false, without waiting, when the attempt would start after the deadline; err is ctx's error
// when ctx ended during the wait.
func (r *retrier) wait(ctx context.Context, retryAfter time.Duration, why error) (retry bool, err error) {
	d := min(max(retryAfter, publishBackoff.Delay(r.retries)), publishMaxWait)
	if time.Now().Add(d).After(r.deadline) {
		return false, nil
	}
	r.retries++
	if r.notify != nil {
		r.notify(why, d)
	}
	if err := sleep(ctx, d); err != nil {
		return false, err
	}
	return true, nil
}

// NewIdempotencyKey returns a random key, "publish-" and 32 hex digits, as Publish makes when
// given none. Derive the keys of a series of batches from one (e.g. K, K/1, K/2) so a rerun of
// the series can be recognised.
func NewIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it panics instead)
	return "publish-" + hex.EncodeToString(b[:])
}

// readIDs decodes a 201 {"ids":[...]} with exactly n ids.
func readIDs(resp *http.Response, n int) ([]string, error) {
	var r struct {
		IDs []string `json:"ids"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("unreadable answer: %w", err)
	}
	if len(r.IDs) != n {
		return nil, fmt.Errorf("the server answered %d ids for %d events", len(r.IDs), n)
	}
	return r.IDs, nil
}
