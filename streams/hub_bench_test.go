package streams

import (
	"context"
	"testing"

	"github.com/eventgate/eventgate/event"
)

// nopLog is a Log that holds nothing; the fan-out benchmark drives dispatch directly.
type nopLog struct{}

func (nopLog) Append(context.Context, []event.Draft) ([]event.ID, error) { return nil, nil }
func (nopLog) Read(context.Context, event.ID, int) (Page, error)         { return Page{}, nil }
func (nopLog) Bounds(context.Context) (Bounds, error)                    { return Bounds{}, nil }
func (nopLog) Tail(context.Context, event.ID, int) (Page, error)         { return Page{}, nil }

// BenchmarkFanOut measures one event dispatched to 10,000 live subscriptions and drained by each:
// the per-delivery cost of the core. Allocations are per event (b.N events), shared by all.
func BenchmarkFanOut(b *testing.B) {
	const subs = 10000
	h := NewHub(nopLog{}, HubOptions{Buffer: 64})
	close(h.started)
	all := make([]*Subscription, subs)
	ctx := context.Background()
	for i := range all {
		s, err := h.Subscribe(ctx, event.Filter{}, Live)
		if err != nil {
			b.Fatal(err)
		}
		all[i] = s
	}
	ev := event.NewEvent(event.ID{MS: 1}, event.Draft{Type: event.TypeQueueStatus, Topic: "queue", Data: []byte(`{"pending":1,"active":0}`)})
	batch := []*event.Event{ev}
	dst := make([]*event.Event, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev.ID = event.ID{MS: uint64(i + 1)}
		h.dispatch(batch, ev.ID, uint64(i+1))
		for _, s := range all {
			<-s.ready
			dst, _ = s.Next(ctx, dst[:0])
			if len(dst) != 1 {
				b.Fatalf("got %d events", len(dst))
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*subs), "ns/delivery")
}
