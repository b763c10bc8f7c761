package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Transport is a streaming transport: the transport label, and the connection log lines' field.
type Transport string

// Transports.
const (
	SSE       Transport = "sse"
	WebSocket Transport = "websocket"
)

// CloseReason is why a streaming connection ended: the reason label of
// eventgate_connections_closed_total and the reason field of the "connection closed" log line (a
// WebSocket also sends it as its close frame's text unless it has one of its own).
type CloseReason string

// Close reasons. Closed counts any other value as CloseOther, so the label stays bounded.
const (
	CloseClient        CloseReason = "client_closed"   // the client left or sent a close frame
	CloseWriteFailed   CloseReason = "write_failed"    // a write to the client failed
	CloseWriteTimeout  CloseReason = "write_timeout"   // the client stopped reading (write timeout)
	CloseReadFailed    CloseReason = "read_failed"     // reading the client's frames failed
	ClosePingTimeout   CloseReason = "ping_timeout"    // no pong for two heartbeats (WebSocket)
	CloseFrameTooLarge CloseReason = "frame_too_large" // a client frame over the read limit
	CloseShutdown      CloseReason = "shutdown"        // the server drained
	CloseAuthExpired   CloseReason = "auth_expired"    // the connection's token expired
	CloseOther         CloseReason = "other"           // any reason not above
)

// closeReasons are the values of the reason label, each with its series from the start.
var closeReasons = []CloseReason{
	CloseClient, CloseWriteFailed, CloseWriteTimeout, CloseReadFailed, ClosePingTimeout,
	CloseFrameTooLarge, CloseShutdown, CloseAuthExpired, CloseOther,
}

// Resume outcomes, the values of the outcome label of eventgate_resumes_total.
const (
	resumeLive    = "live"    // the connection asked for no position
	resumeResumed = "resumed" // the log vouched for the position: delivery continued after it
	resumeResync  = "resync"  // the log could not vouch for it: the client got resync first
)

// Connections are one transport's connection series, resolved once so that delivery does no
// label lookup and no allocation. Safe for concurrent use; a connection reports Opened first and
// Closed once, last.
type Connections struct {
	active    prometheus.Gauge
	opened    prometheus.Counter
	delivered prometheus.Counter
	latency   *latencyHistogram
	closed    map[CloseReason]prometheus.Counter
	resumes   map[string]prometheus.Counter // by outcome
}

func newConnections(t string, active *prometheus.GaugeVec, opened, closed, delivered *prometheus.CounterVec,
	latency *latencyCollector, resumes *prometheus.CounterVec) *Connections {
	c := &Connections{
		active: active.WithLabelValues(t), opened: opened.WithLabelValues(t),
		delivered: delivered.WithLabelValues(t), latency: latency.byTransport[t],
		closed: make(map[CloseReason]prometheus.Counter, len(closeReasons)), resumes: make(map[string]prometheus.Counter, 3),
	}
	for _, r := range closeReasons {
		c.closed[r] = closed.WithLabelValues(t, string(r))
	}
	for _, o := range []string{resumeLive, resumeResumed, resumeResync} {
		c.resumes[o] = resumes.WithLabelValues(t, o)
	}
	return c
}

// Connections returns the series of transport t (SSE or WebSocket; nil for any other).
func (m *Metrics) Connections(t Transport) *Connections { return m.conns[t] }

// Opened counts a connection that started; live means it asked for no position (its resume
// outcome is live; otherwise report Resumed once the log has answered).
func (c *Connections) Opened(live bool) {
	c.opened.Inc()
	c.active.Inc()
	if live {
		c.resumes[resumeLive].Inc()
	}
}

// Resumed counts how a connection that asked for a position started: resumed, or resync when the
// log could not vouch for the position.
func (c *Connections) Resumed(resync bool) {
	outcome := resumeResumed
	if resync {
		outcome = resumeResync
	}
	c.resumes[outcome].Inc()
}

// Delivered counts n events written to a subscriber (control events excluded).
func (c *Connections) Delivered(n int) { c.delivered.Add(float64(n)) }

// Latencies records the publish-to-delivery times of one delivery's live events.
func (c *Connections) Latencies(l *Latencies) {
	if l.n > 0 {
		c.latency.add(l)
	}
}

// Closed counts a connection's end by reason.
func (c *Connections) Closed(reason CloseReason) {
	c.active.Dec()
	closed, ok := c.closed[reason]
	if !ok {
		closed = c.closed[CloseOther]
	}
	closed.Inc()
}
