package telemetry

import (
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var errorf = fmt.Errorf

// scrape collects c's series as a registry would, by transport (no *testing.T: it runs off the
// test's goroutine).
func scrape(c prometheus.Collector) (map[string]*dto.Histogram, error) {
	ch := make(chan prometheus.Metric, 8)
	c.Collect(ch)
	close(ch)
	out := map[string]*dto.Histogram{}
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			return nil, err
		}
		if len(d.GetLabel()) != 1 {
			return nil, fmt.Errorf("labels %v", d.GetLabel())
		}
		out[d.GetLabel()[0].GetValue()] = d.GetHistogram()
	}
	return out, nil
}

// TestLatenciesConcurrentScrapesAttack: many connections add their batches while the histogram is
// scraped. Every scrape is a valid Prometheus histogram — cumulative buckets never decreasing,
// the count equal to the +Inf bucket — and never goes backwards from the previous scrape; once the
// adders are done, nothing was lost: the count and sum are exactly what was added, per transport.
//
// Fails when the histogram's update is not atomic (`h.counts[i].Store(h.counts[i].Load() +
// uint64(c))` in add): concurrent batches lose counts.
func TestLatenciesConcurrentScrapesAttack(t *testing.T) {
	t.Parallel()
	c := newLatencyCollector(SSE, WebSocket)
	conns := map[Transport]*Connections{
		SSE:       {latency: c.byTransport[string(SSE)]},
		WebSocket: {latency: c.byTransport[string(WebSocket)]},
	}
	const adders, batches = 16, 20000
	done := make(chan struct{})
	scrapes := make(chan error, 1)
	go func() {
		prev := map[string]uint64{}
		for n := 0; ; n++ {
			select {
			case <-done:
				scrapes <- nil
				return
			default:
			}
			hs, err := scrape(c)
			if err != nil || len(hs) != 2 {
				scrapes <- errorf("scrape %d: %d series, %v", n, len(hs), err)
				return
			}
			for tr, h := range hs {
				var last uint64
				for _, b := range h.GetBucket() {
					if b.GetCumulativeCount() < last {
						scrapes <- errorf("scrape %d: bucket le=%v holds %d, below the one before (%d)", n, b.GetUpperBound(), b.GetCumulativeCount(), last)
						return
					}
					last = b.GetCumulativeCount()
				}
				if h.GetSampleCount() < last {
					scrapes <- errorf("scrape %d: count %d below the last bucket's %d", n, h.GetSampleCount(), last)
					return
				}
				if v := h.GetSampleCount(); v < prev[tr] {
					scrapes <- errorf("scrape %d: %s count went back from %d to %d", n, tr, prev[tr], v)
					return
				}
				prev[tr] = h.GetSampleCount()
			}
		}
	}()
	var wg sync.WaitGroup
	for a := range adders {
		tr := SSE
		if a%2 == 1 {
			tr = WebSocket
		}
		wg.Go(func() {
			for b := range batches {
				var l Latencies
				for k := range 1 + b%5 {
					l.Add(uint64((a*7 + b*13 + k*101) % 70000)) // every bucket, +Inf included
				}
				conns[tr].Latencies(&l)
				var empty Latencies
				conns[tr].Latencies(&empty) // a batch of control events only
			}
		})
	}
	wg.Wait()
	close(done)
	if err := <-scrapes; err != nil {
		t.Fatal(err)
	}
	wantCount, wantSum := map[string]uint64{}, map[string]uint64{}
	for a := range adders {
		tr := string(SSE)
		if a%2 == 1 {
			tr = string(WebSocket)
		}
		for b := range batches {
			for k := range 1 + b%5 {
				wantCount[tr]++
				wantSum[tr] += uint64((a*7 + b*13 + k*101) % 70000)
			}
		}
	}
	for tr, h := range c.byTransport {
		var count uint64
		for i := range h.counts {
			count += h.counts[i].Load()
		}
		if count != wantCount[tr] || h.sumMS.Load() != wantSum[tr] {
			t.Errorf("%s: count %d, sum %d ms; want %d and %d ms", tr, count, h.sumMS.Load(), wantCount[tr], wantSum[tr])
		}
	}
}
