package telemetry

import (
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

var _ streams.Observer = (*Metrics)(nil)

// Dispatched counts a batch the hub's reader fanned out (streams.Observer).
func (m *Metrics) Dispatched(events []*event.Event) { m.dispatched.Add(float64(len(events))) }

// CatchUp counts a subscription that fell back to reading the log (streams.Observer).
func (m *Metrics) CatchUp() { m.catchups.Inc() }

// Resync counts a resync control event by reason (streams.Observer).
func (m *Metrics) Resync(reason string) {
	if reason != streams.ReasonTruncated && reason != streams.ReasonUnknown {
		reason = "other"
	}
	m.resyncs.WithLabelValues(reason).Inc()
}

// ReaderError counts a failure of the hub's log reader (streams.Observer).
func (m *Metrics) ReaderError(error) { m.StoreError(StoreReader) }

// InvalidEntry counts an invalid producer entry skipped by the store; it has the signature of
// store.RedisOptions.OnInvalid. The store reports an entry each time a read examines it (the
// reader, and every subscription catching up over it), so only entries after the highest one
// counted so far are counted: each entry once, give or take a report that arrives out of order.
func (m *Metrics) InvalidEntry(id event.ID, _ error) {
	m.invalidMu.Lock()
	fresh := m.invalidLast.Less(id)
	if fresh {
		m.invalidLast = id
	}
	m.invalidMu.Unlock()
	if fresh {
		m.invalid.Inc()
	}
}
