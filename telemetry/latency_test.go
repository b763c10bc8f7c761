package telemetry

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The batched histogram must expose what a client_golang histogram with the same buckets would,
// observation by observation, including latencies on a bucket's bound and beyond the last one.
func TestLatenciesMatchPrometheusHistogram(t *testing.T) {
	t.Parallel()
	want := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: latencyBuckets[:]})
	c := newLatencyCollector(SSE)
	h := c.byTransport[string(SSE)]
	rng := rand.New(rand.NewPCG(1, 2))
	edges := []uint64{0, 1, 2, 3, 5, 10, 25, 2500, 60000, 60001, 1 << 40}
	for batch := 0; batch < 500; batch++ {
		var l Latencies
		for range rng.IntN(20) {
			ms := uint64(rng.IntN(3000))
			if rng.IntN(4) == 0 {
				ms = edges[rng.IntN(len(edges))]
			}
			l.Add(ms)
			want.Observe(float64(ms) / 1000)
		}
		h.add(&l)
	}
	got := collectOne(t, c)
	exp := collectOneMetric(t, want)
	if g, w := got.GetSampleCount(), exp.GetSampleCount(); g != w {
		t.Fatalf("count %d, want %d", g, w)
	}
	if g, w := got.GetSampleSum(), exp.GetSampleSum(); math.Abs(g-w) > 1e-9*w { // the reference sums floats
		t.Fatalf("sum %v, want %v", g, w)
	}
	gb, wb := got.GetBucket(), exp.GetBucket()
	if len(gb) != len(wb) {
		t.Fatalf("%d buckets, want %d", len(gb), len(wb))
	}
	for i := range wb {
		if gb[i].GetUpperBound() != wb[i].GetUpperBound() || gb[i].GetCumulativeCount() != wb[i].GetCumulativeCount() {
			t.Errorf("bucket le=%v: %d, want le=%v: %d", gb[i].GetUpperBound(), gb[i].GetCumulativeCount(),
				wb[i].GetUpperBound(), wb[i].GetCumulativeCount())
		}
	}
}

func collectOne(t *testing.T, c prometheus.Collector) *dto.Histogram {
	t.Helper()
	ch := make(chan prometheus.Metric, 4)
	c.Collect(ch)
	close(ch)
	var out *dto.Histogram
	for m := range ch {
		if out != nil {
			t.Fatal("more than one series")
		}
		out = write(t, m).GetHistogram()
	}
	return out
}

func collectOneMetric(t *testing.T, m prometheus.Metric) *dto.Histogram {
	t.Helper()
	return write(t, m).GetHistogram()
}

func write(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// A delivery's latencies cost no allocation.
func TestLatenciesDoNotAllocate(t *testing.T) {
	c := newLatencyCollector(SSE)
	conns := &Connections{latency: c.byTransport[string(SSE)]}
	allocs := testing.AllocsPerRun(100, func() {
		var l Latencies
		for ms := range uint64(20) {
			l.Add(ms)
		}
		conns.Latencies(&l)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per delivery", allocs)
	}
}

func BenchmarkLatencies(b *testing.B) {
	c := newLatencyCollector(SSE)
	conns := &Connections{latency: c.byTransport[string(SSE)]}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var l Latencies
			for ms := range uint64(13) {
				l.Add(ms % 4)
			}
			conns.Latencies(&l)
		}
	})
}

// The histogram observed per event, as it was before Latencies, for comparison.
func BenchmarkLatenciesPerEventHistogram(b *testing.B) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: latencyBuckets[:]})
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			for ms := range uint64(13) {
				h.Observe(float64(ms%4) / 1000)
			}
		}
	})
}
