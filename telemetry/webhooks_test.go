package telemetry

import (
	"testing"
	"time"

	"github.com/eventgate/eventgate/webhooks"
)

func TestWebhookObserver(t *testing.T) {
	t.Parallel()
	m := NewMetrics()
	w := m.WebhookObserver()
	w.Delivery(webhooks.OutcomeSuccess, 10*time.Millisecond)
	w.Delivery("made up", time.Millisecond) // the outcome label stays bounded
	w.Pending(3)
	for _, c := range []struct {
		metric string
		labels []string
		want   float64
	}{
		{"eventgate_webhook_deliveries_total", []string{"outcome", "success"}, 1},
		{"eventgate_webhook_deliveries_total", []string{"outcome", "other"}, 1},
		{"eventgate_webhook_deliveries_total", []string{"outcome", "blocked"}, 0},
		{"eventgate_webhook_delivery_duration_seconds", nil, 2},
		{"eventgate_webhook_pending", nil, 3},
	} {
		if got := metricValue(t, m, c.metric, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.metric, c.labels, got, c.want)
		}
	}
}
