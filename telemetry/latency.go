package telemetry

import (
	"sort"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets span a local delivery (a millisecond) to a slow subscriber catching up (a minute).
var latencyBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// latencyBucketsMS are latencyBuckets in milliseconds, the unit latencies are measured in.
var latencyBucketsMS = func() [len(latencyBuckets)]float64 {
	var ms [len(latencyBuckets)]float64
	for i, b := range latencyBuckets {
		ms[i] = b * 1000
	}
	return ms
}()

// Latencies gathers one delivery's latencies on the caller's stack, to be added to the histogram
// at once (Connections.Latencies): an observation per event per subscriber on a histogram every
// connection shares was 4–5 % of the server's CPU at 2,000 subscribers × 500 events/s, most of it
// atomic operations on the same few cache lines. Not safe for concurrent use; the zero value is
// empty.
type Latencies struct {
	counts [len(latencyBuckets) + 1]uint32 // by bucket, not cumulative; the last is +Inf
	sumMS  uint64
	n      int
}

// Add records one event's latency in milliseconds.
func (l *Latencies) Add(ms uint64) {
	v := float64(ms)
	i := 0
	for i < len(latencyBucketsMS) && v > latencyBucketsMS[i] { // most latencies fall in the first buckets
		i++
	}
	l.counts[i]++
	l.sumMS += ms
	l.n++
}

// latencyHistogram is eventgate_delivery_latency_seconds for one transport: a Prometheus histogram
// with the same buckets, updated a batch at a time. Latencies are whole milliseconds, so the sum
// is kept exactly, as an integer.
type latencyHistogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64 // by bucket, not cumulative
	sumMS  atomic.Uint64
}

func (h *latencyHistogram) add(l *Latencies) {
	for i, c := range l.counts {
		if c != 0 {
			h.counts[i].Add(uint64(c))
		}
	}
	h.sumMS.Add(l.sumMS)
}

// latencyCollector exposes the latency histograms of every transport.
type latencyCollector struct {
	desc        *prometheus.Desc
	byTransport map[string]*latencyHistogram // fixed at construction
}

func newLatencyCollector(transports ...Transport) *latencyCollector {
	c := &latencyCollector{
		desc: prometheus.NewDesc("eventgate_delivery_latency_seconds",
			"Time from an event's append to the log (its ID's milliseconds) to its write to a subscriber, for events appended while the connection was open, by transport.",
			[]string{"transport"}, nil),
		byTransport: make(map[string]*latencyHistogram, len(transports)),
	}
	for _, t := range transports {
		c.byTransport[string(t)] = &latencyHistogram{}
	}
	return c
}

func (c *latencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect reports each histogram. Its count is the sum of its buckets, read once, so the two
// always agree; the sum may include a batch whose counts were read just before it.
func (c *latencyCollector) Collect(ch chan<- prometheus.Metric) {
	names := make([]string, 0, len(c.byTransport))
	for t := range c.byTransport {
		names = append(names, t)
	}
	sort.Strings(names)
	for _, t := range names {
		h := c.byTransport[t]
		buckets := make(map[float64]uint64, len(latencyBuckets))
		var cum uint64
		for i := range h.counts {
			cum += h.counts[i].Load()
			if i < len(latencyBuckets) {
				buckets[latencyBuckets[i]] = cum
			}
		}
		ch <- prometheus.MustNewConstHistogram(c.desc, cum, float64(h.sumMS.Load())/1000, buckets, t)
	}
}
