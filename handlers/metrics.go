package handlers

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// Metrics is eventgate's Prometheus metric set, on a registry of its own (never the global
// default), with the Go runtime and process collectors. Every label has a bounded set of values:
// transports, close reasons, event types of the catalogue, route templates, outcomes; never ids,
// paths, IPs or subjects. Its methods are safe for concurrent use. The README's Telemetry section
// lists every series.
//
// *Metrics implements streams.Observer (pass it as streams.HubOptions.Observer), and its
// InvalidEntry method fits store.RedisOptions.OnInvalid.
type Metrics struct {
	reg *prometheus.Registry

	transports map[string]*transportMetrics
	published  map[string]prometheus.Counter // by catalogue type
	dispatched prometheus.Counter
	catchups   prometheus.Counter
	resyncs    *prometheus.CounterVec
	rejections *prometheus.CounterVec
	limiterErr *prometheus.CounterVec
	invalid    prometheus.Counter
	storeErrs  *prometheus.CounterVec
	httpDur    *prometheus.HistogramVec

	// publishedByType counts the types added by a catalogue reload (metrics_catalogue.go).
	publishedByType *prometheus.CounterVec

	invalidMu   sync.Mutex
	invalidLast event.ID // highest invalid entry counted; see InvalidEntry
}

var _ streams.Observer = (*Metrics)(nil)

// Transports, the values of the transport label.
const (
	transportSSE = "sse"
	transportWS  = "websocket"
)

// closeReasons are the values of the reason label of eventgate_connections_closed_total; any
// other reason is counted as "other" so the label stays bounded.
var closeReasons = []string{
	"client_closed", "write_failed", "write_timeout", "read_failed", "ping_timeout",
	"frame_too_large", "shutdown", "auth_expired", "other",
}

// Resume outcomes, the values of the outcome label of eventgate_resumes_total.
const (
	resumeLive    = "live"    // the connection asked for no position
	resumeResumed = "resumed" // the log vouched for the position: delivery continued after it
	resumeResync  = "resync"  // the log could not vouch for it: the client got resync first
)

// Rejection reasons, the values of the reason label of eventgate_rejections_total. Rate limiters
// pass their own constant reason to RateLimited.
const (
	// RejectMaxConnections: the instance holds EVENTGATE_MAX_CONNECTIONS (503).
	RejectMaxConnections = "max_connections"
	// RejectMaxConnectionsPerIP: the client holds EVENTGATE_MAX_CONNECTIONS_PER_IP (429).
	RejectMaxConnectionsPerIP = "max_connections_per_ip"
	// RejectDraining: the server is shutting down (SSE: 200 + shutdown; WebSocket: 503).
	RejectDraining = "draining"
	// RejectStoreUnavailable: the log is not readable yet (SSE: 200 + retry; WebSocket: 503).
	RejectStoreUnavailable = "store_unavailable"
)

// Sources of store errors, the values of the source label of eventgate_store_errors_total.
const (
	storeErrRequest = "request" // a request failed with 503 store_unavailable or timeout
	storeErrReader  = "reader"  // the hub's log reader failed (it retries)
	storeErrCatchUp = "catchup" // a subscription's read from the log failed (it retries)
	storeErrLeases  = "leases"  // the per-IP connection lease store failed (admitted anyway)
)

// latencyBuckets span a local delivery (a millisecond) to a slow subscriber catching up (a minute).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// httpBuckets cover plain requests and, for the streaming routes (observed once, at their end),
// connections of up to an hour.
var httpBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}

// transportMetrics are one transport's series, resolved once so that delivery does no label
// lookup and no allocation.
type transportMetrics struct {
	active    prometheus.Gauge
	opened    prometheus.Counter
	delivered prometheus.Counter
	latency   prometheus.Observer
	closed    map[string]prometheus.Counter // by close reason
	resumes   map[string]prometheus.Counter // by outcome
}

// NewMetrics returns a metric set on a new registry. Every series with a known label set starts
// at zero, so that dashboards and rate() see it before the first event.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "eventgate_" + name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	single := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: "eventgate_" + name, Help: help})
		reg.MustRegister(c)
		return c
	}
	active := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "eventgate_connections_active",
		Help: "Streaming connections (SSE and WebSocket) open now, by transport."}, []string{"transport"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "eventgate_delivery_latency_seconds",
		Help:    "Time from an event's append to the log (its ID's milliseconds) to its write to a subscriber, for events appended while the connection was open, by transport.",
		Buckets: latencyBuckets}, []string{"transport"})
	httpDur := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "eventgate_http_request_duration_seconds",
		Help:    "HTTP request duration by method, route template and status code; streaming routes are observed once, when the connection ends.",
		Buckets: httpBuckets}, []string{"method", "route", "code"})
	reg.MustRegister(active, latency, httpDur)
	opened := counter("connections_opened_total", "Streaming connections opened, by transport.", "transport")
	closed := counter("connections_closed_total", "Streaming connections closed, by transport and close reason.", "transport", "reason")
	delivered := counter("events_delivered_total", "Events written to subscribers (control events excluded), by transport.", "transport")
	resumes := counter("resumes_total", "Streaming connections by how they started: live (no position), resumed (the log vouched for the position) or resync (it could not), by transport.", "transport", "outcome")
	published := counter("events_published_total", "Events appended to the log through POST /api/v1/events on this instance, by type.", "type")

	m := &Metrics{
		reg:        reg,
		transports: make(map[string]*transportMetrics, 2),
		published:  make(map[string]prometheus.Counter),
		dispatched: single("events_dispatched_total", "Events this instance's log reader read and fanned out to its subscriptions (from any producer)."),
		catchups:   single("catchups_total", "Times a subscription's live buffer filled and it continued from the log at its own pace."),
		resyncs:    counter("resyncs_total", "Resync control events sent because the log could not vouch for a position, by reason.", "reason"),
		rejections: counter("rejections_total", "Streaming or publish requests refused by a connection cap, rate limit, drain or unreadable log, by route template and reason.", "route", "reason"),
		limiterErr: counter("limiter_errors_total", "Rate-limiter store failures, by route template.", "route"),
		invalid:    single("invalid_entries_total", "Invalid producer entries (direct XADD) skipped in the log, counted once each by this instance."),
		storeErrs:  counter("store_errors_total", "Store failures, by source: request (a 503 answer), reader (the log reader), catchup (a subscription's log read), leases (the per-IP lease store).", "source"),
		httpDur:    httpDur,
	}
	m.publishedByType = published
	for _, t := range []string{transportSSE, transportWS} {
		tm := &transportMetrics{
			active: active.WithLabelValues(t), opened: opened.WithLabelValues(t),
			delivered: delivered.WithLabelValues(t), latency: latency.WithLabelValues(t),
			closed: make(map[string]prometheus.Counter, len(closeReasons)), resumes: make(map[string]prometheus.Counter, 3),
		}
		for _, r := range closeReasons {
			tm.closed[r] = closed.WithLabelValues(t, r)
		}
		for _, o := range []string{resumeLive, resumeResumed, resumeResync} {
			tm.resumes[o] = resumes.WithLabelValues(t, o)
		}
		m.transports[t] = tm
	}
	for _, typ := range event.Types() {
		m.published[typ] = published.WithLabelValues(typ)
	}
	for _, r := range []string{streams.ReasonTruncated, streams.ReasonUnknown} {
		m.resyncs.WithLabelValues(r)
	}
	for _, s := range []string{storeErrRequest, storeErrReader, storeErrCatchUp, storeErrLeases} {
		m.storeErrs.WithLabelValues(s)
	}
	return m
}

// Registry returns the registry holding the set, for collectors of other components.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the set in the Prometheus text format (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

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
func (m *Metrics) ReaderError(error) { m.storeErr(storeErrReader) }

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

// RateLimited counts a request refused by a limit. route is the route template (c.FullPath()),
// reason one of the Reject constants or the limiter's own constant (e.g. "connect_rate"); never
// pass request data.
func (m *Metrics) RateLimited(route, reason string) {
	m.rejections.WithLabelValues(routeLabel(route), reason).Inc()
}

// LimiterError counts a failure of a rate limiter's store on route (a route template).
func (m *Metrics) LimiterError(route string) { m.limiterErr.WithLabelValues(routeLabel(route)).Inc() }

// storeErr counts a store failure from source (one of the storeErr constants).
func (m *Metrics) storeErr(source string) { m.storeErrs.WithLabelValues(source).Inc() }

// publishedEvents counts events appended through the publish route.
func (m *Metrics) publishedEvents(drafts []event.Draft) {
	for _, d := range drafts {
		if c, ok := m.published[d.Type]; ok {
			c.Inc()
		} else {
			m.publishedByType.WithLabelValues(d.Type).Inc() // a catalogue type: bounded
		}
	}
}

// transport returns the series of transport t.
func (m *Metrics) transport(t string) *transportMetrics { return m.transports[t] }

// Keys of the values the HTTP middleware shares with the streaming handlers.
const (
	ctxStarted      = "eventgate.started"       // time.Time the request began
	ctxObserveLater = "eventgate.observe_later" // the WebSocket connection observes at its end
)

// observeHTTP is the middleware that records eventgate_http_request_duration_seconds by route
// template ("unmatched" for no route). A streaming route is observed once, when it ends: SSE when
// the handler returns, WebSocket (whose handler returns after the upgrade) when the connection
// closes (see connInfo.close).
func (m *Metrics) observeHTTP(c *gin.Context) {
	start := time.Now()
	c.Set(ctxStarted, start)
	defer func() {
		if c.GetBool(ctxObserveLater) {
			return
		}
		m.observeRequest(c.Request.Method, c.FullPath(), c.Writer.Status(), time.Since(start))
	}()
	c.Next()
}

// observeRequest records one request's duration.
func (m *Metrics) observeRequest(method, route string, status int, d time.Duration) {
	m.httpDur.WithLabelValues(methodLabel(method), routeLabel(route), strconv.Itoa(status)).Observe(d.Seconds())
}

// routeLabel is the route template, or "unmatched" when no route matched.
func routeLabel(route string) string {
	if route == "" {
		return "unmatched"
	}
	return route
}

// methodLabel keeps the method label bounded: clients can send any token as a method.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}

// reject counts a refusal of the request in c (see the Reject constants).
func (s *Server) reject(c *gin.Context, reason string) { s.metrics.RateLimited(c.FullPath(), reason) }
