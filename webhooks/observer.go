package webhooks

import "time"

// Delivery outcomes, as recorded in the delivery log and reported to the Observer.
const (
	OutcomeSuccess = "success"  // 2xx
	OutcomeHTTP3xx = "http_3xx" // redirects are not followed: a failure
	OutcomeHTTP4xx = "http_4xx"
	OutcomeHTTP5xx = "http_5xx"
	OutcomeTimeout = "timeout"
	OutcomeBlocked = "blocked" // the destination is on the deny list (checked at dial time)
	OutcomeNetwork = "network" // connection refused, reset, TLS or DNS failure
	// OutcomeNote marks a delivery-log entry that is not an attempt (a resync of the log).
	OutcomeNote = "note"
)

// Observer receives the dispatcher's figures for metrics. Implementations must be safe for
// concurrent use and fast. Hook it to Prometheus with, e.g., a counter vector by outcome, a
// histogram of durations and a gauge:
//
//	Delivery(outcome, d) → deliveries_total{outcome}.Inc(); delivery_seconds.Observe(d.Seconds())
//	Pending(n)           → pending.Set(float64(n))
type Observer interface {
	// Delivery is called once per attempt with its outcome (Outcome* constants) and duration.
	Delivery(outcome string, elapsed time.Duration)
	// Pending is called with the number of retries queued for the endpoints this instance owns,
	// whenever it is recounted (about once per second).
	Pending(n int)
}

type nopObserver struct{}

func (nopObserver) Delivery(string, time.Duration) {}
func (nopObserver) Pending(int)                    {}
