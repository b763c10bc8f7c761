package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventgate/eventgate/store"
)

// diskMetrics are the on-disk store's series: its size, the latency of its synced commits (one
// fsync each, shared by every publish of a group) and the events trimmed by the retention.
type diskMetrics struct {
	disk   *store.Disk // set once the store is open, before the collectors are registered
	commit func(took time.Duration, events int)
	hist   prometheus.Histogram
}

func newDiskMetrics() *diskMetrics {
	m := &diskMetrics{hist: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eventgate_disk_commit_seconds",
		Help:    "Time to make a group of appends durable on disk (the write-ahead log's fsync), per group commit.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1},
	})}
	m.commit = func(took time.Duration, _ int) { m.hist.Observe(took.Seconds()) }
	return m
}

// collectors returns the series to register.
func (m *diskMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.hist,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventgate_disk_bytes",
			Help: "Size of the on-disk store's files in EVENTGATE_DATA_DIR.",
		}, func() float64 { return float64(m.disk.Stats().Bytes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "eventgate_disk_trimmed_events_total",
			Help: "Events trimmed from the on-disk log by EVENTGATE_RETENTION since start.",
		}, func() float64 { return float64(m.disk.Stats().Trimmed) }),
	}
}
