package webhooks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"code.dny.dev/ssrf"

	"github.com/eventgate/eventgate/event"
)

// maxResponseBytes caps how much of an endpoint's answer is read (then discarded), so that a
// connection can be reused without letting a receiver stream gigabytes at us.
const maxResponseBytes = 64 << 10

// maxRetryAfter caps an endpoint's Retry-After.
const maxRetryAfter = 24 * time.Hour

// result is what one attempt came to.
type result struct {
	outcome    string
	status     int
	errClass   string        // short error text for the delivery log ("" on success)
	retryAfter time.Duration // from a 429 or 503 answer
	elapsed    time.Duration
	// aborted: the dispatcher stopped mid-attempt; the event stays pending and nothing is recorded.
	aborted bool
}

func (r result) ok() bool   { return r.outcome == OutcomeSuccess }
func (r result) gone() bool { return r.status == http.StatusGone }

// attempt POSTs body, signed, to the endpoint once.
func (w *worker) attempt(ctx context.Context, id event.ID, body []byte) result {
	msgID := id.String()
	now := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.hook.URL, bytes.NewReader(body))
	if err != nil {
		return result{outcome: OutcomeNetwork, errClass: "bad request: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "eventgate-webhooks/1")
	req.Header.Set(HeaderID, msgID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, w.signer.Sign(msgID, now, body))
	resp, err := w.d.client.Do(req)
	r := result{}
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		r.status = resp.StatusCode
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			r.outcome = OutcomeSuccess
		case resp.StatusCode < 400:
			r.outcome, r.errClass = OutcomeHTTP3xx, "redirect not followed: HTTP "+strconv.Itoa(resp.StatusCode)
		case resp.StatusCode < 500:
			r.outcome, r.errClass = OutcomeHTTP4xx, "HTTP "+strconv.Itoa(resp.StatusCode)
		default:
			r.outcome, r.errClass = OutcomeHTTP5xx, "HTTP "+strconv.Itoa(resp.StatusCode)
		}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			r.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	} else {
		r.outcome, r.errClass = classify(err)
		r.aborted = ctx.Err() != nil // stopped by the dispatcher, not the endpoint's fault
	}
	r.elapsed = time.Since(now)
	return r
}

// classify maps a transport error to an outcome and a short class.
func classify(err error) (string, string) {
	var ne net.Error
	switch {
	case errors.Is(err, ErrBlocked):
		return OutcomeBlocked, "blocked: " + blockedReason(err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return OutcomeTimeout, "timeout"
	case errors.Is(err, context.Canceled):
		return OutcomeNetwork, "canceled"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return OutcomeNetwork, "dns: " + dnsErr.Err
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Err != nil {
		return OutcomeNetwork, opErr.Op + ": " + opErr.Err.Error()
	}
	return OutcomeNetwork, "network error"
}

// blockedReason finds the deny list's message in a dial error.
func blockedReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ErrBlocked.Error()+": "); i >= 0 {
		return strings.TrimPrefix(msg[i+len(ErrBlocked.Error())+2:], ssrf.ErrProhibitedIP.Error()+": ")
	}
	return ErrBlocked.Error()
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}
