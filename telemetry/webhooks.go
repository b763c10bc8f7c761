package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventgate/eventgate/webhooks"
)

var _ webhooks.Observer = (*Webhooks)(nil)

// Webhooks counts webhook deliveries for the dispatcher (webhooks.Observer). Safe for concurrent
// use.
type Webhooks struct {
	outcomes map[string]prometheus.Counter
	other    prometheus.Counter
	duration prometheus.Histogram
	pending  prometheus.Gauge
}

// WebhookObserver registers the webhook delivery metrics on the set and returns the observer to
// give the dispatcher. Call it once: a second call panics on the duplicate registration.
func (m *Metrics) WebhookObserver() *Webhooks {
	outcomes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventgate_webhook_deliveries_total",
		Help: "Webhook delivery attempts by outcome: success, http_3xx, http_4xx, http_5xx, timeout, blocked (deny list at dial time), network."},
		[]string{"outcome"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "eventgate_webhook_delivery_duration_seconds",
		Help: "Duration of webhook delivery attempts, connect to response headers.", Buckets: httpBuckets})
	pending := prometheus.NewGauge(prometheus.GaugeOpts{Name: "eventgate_webhook_pending",
		Help: "Webhook retries queued for the endpoints this instance owns."})
	m.reg.MustRegister(outcomes, duration, pending)
	w := &Webhooks{outcomes: make(map[string]prometheus.Counter), duration: duration, pending: pending}
	for _, o := range []string{webhooks.OutcomeSuccess, webhooks.OutcomeHTTP3xx, webhooks.OutcomeHTTP4xx,
		webhooks.OutcomeHTTP5xx, webhooks.OutcomeTimeout, webhooks.OutcomeBlocked, webhooks.OutcomeNetwork} {
		w.outcomes[o] = outcomes.WithLabelValues(o)
	}
	w.other = outcomes.WithLabelValues("other")
	return w
}

// Delivery counts one attempt (webhooks.Observer).
func (w *Webhooks) Delivery(outcome string, elapsed time.Duration) {
	c, ok := w.outcomes[outcome]
	if !ok {
		c = w.other
	}
	c.Inc()
	w.duration.Observe(elapsed.Seconds())
}

// Pending sets the queued retry count (webhooks.Observer).
func (w *Webhooks) Pending(n int) { w.pending.Set(float64(n)) }
