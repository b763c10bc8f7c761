package telemetry

import (
	"errors"
	"testing"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry/telemetrytest"
)

// metricValue returns the value of the series name{labels} of m (telemetrytest.Value).
func metricValue(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	return telemetrytest.Value(t, m.Registry(), name, labels...)
}

func TestMetricsObserverAndLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		do     func(m *Metrics)
		metric string
		labels []string
		want   float64
	}{
		{"dispatched counts events", func(m *Metrics) { m.Dispatched(make([]*event.Event, 3)); m.Dispatched(nil) },
			"eventgate_events_dispatched_total", nil, 3},
		{"catch-up", func(m *Metrics) { m.CatchUp(); m.CatchUp() }, "eventgate_catchups_total", nil, 2},
		{"resync by reason", func(m *Metrics) { m.Resync(streams.ReasonTruncated) },
			"eventgate_resyncs_total", []string{"reason", "history_truncated"}, 1},
		{"resync reasons bounded", func(m *Metrics) { m.Resync("made up") },
			"eventgate_resyncs_total", []string{"reason", "other"}, 1},
		{"reader error is a store error", func(m *Metrics) { m.ReaderError(errors.New("down")) },
			"eventgate_store_errors_total", []string{"source", "reader"}, 1},
		{"invalid entries counted once each", func(m *Metrics) {
			for _, ms := range []uint64{5, 5, 3, 7, 6, 7} { // a re-read reports 5 and 7 again; 3 and 6 are behind
				m.InvalidEntry(event.ID{MS: ms}, event.ErrInvalidEvent)
			}
		}, "eventgate_invalid_entries_total", nil, 2},
		{"rate limited", func(m *Metrics) { m.RateLimited("/api/v1/events", "publish_rate") },
			"eventgate_rejections_total", []string{"route", "/api/v1/events", "reason", "publish_rate"}, 1},
		{"limiter error", func(m *Metrics) { m.LimiterError("") },
			"eventgate_limiter_errors_total", []string{"route", "unmatched"}, 1},
		{"series exist before the first event", func(*Metrics) {},
			"eventgate_connections_closed_total", []string{"transport", "websocket", "reason", "shutdown"}, 0},
		{"published series per catalogue type", func(*Metrics) {},
			"eventgate_events_published_total", []string{"type", "queue.status"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewMetrics()
			tt.do(m)
			if got := metricValue(t, m, tt.metric, tt.labels...); got != tt.want {
				t.Fatalf("%s%v = %v, want %v", tt.metric, tt.labels, got, tt.want)
			}
		})
	}
}
