// Package telemetry is eventgate's process-wide Prometheus metric set: the registry, every series
// and the observers that the hub (streams.Observer), the store (InvalidEntry), webhook delivery
// (webhooks.Observer) and the HTTP handlers report to. It knows nothing of HTTP routing or of
// stores: callers pass bounded label values (route templates, the constants declared here).
package telemetry

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// Metrics is eventgate's Prometheus metric set, on a registry of its own (never the global
// default), with the Go runtime and process collectors. Every label has a bounded set of values:
// transports, close reasons, event types of the catalogue, route templates, outcomes; never ids,
// paths, IPs or subjects. Its methods are safe for concurrent use. docs/operations.md#metrics
// lists every series.
//
// *Metrics implements streams.Observer (pass it as streams.HubOptions.Observer), and its
// InvalidEntry method fits store.RedisOptions.OnInvalid.
type Metrics struct {
	reg *prometheus.Registry

	conns     map[Transport]*Connections
	published map[string]prometheus.Counter // by built-in type, resolved once
	// publishedByType counts the types a catalogue file adds (CatalogueTypes).
	publishedByType *prometheus.CounterVec
	dispatched      prometheus.Counter
	catchups        prometheus.Counter
	resyncs         *prometheus.CounterVec
	rejections      *prometheus.CounterVec
	limiterErr      *prometheus.CounterVec
	invalid         prometheus.Counter
	storeErrs       *prometheus.CounterVec
	httpDur         *prometheus.HistogramVec

	invalidMu   sync.Mutex
	invalidLast event.ID // highest invalid entry counted; see InvalidEntry
}

// StoreSource is where a store failure was met: the source label of eventgate_store_errors_total.
type StoreSource string

// Sources of store errors.
const (
	StoreRequest StoreSource = "request" // a request failed with 503 store_unavailable or timeout
	StoreReader  StoreSource = "reader"  // the hub's log reader failed (it retries)
	StoreCatchUp StoreSource = "catchup" // a subscription's read from the log failed (it retries)
	StoreLeases  StoreSource = "leases"  // the per-IP connection lease store failed (admitted anyway)
)

// httpBuckets cover plain requests and, for the streaming routes (observed once, at their end),
// connections of up to an hour.
var httpBuckets = []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600}

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
	latency := newLatencyCollector(SSE, WebSocket)
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
		conns:      make(map[Transport]*Connections, 2),
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
	for _, t := range []Transport{SSE, WebSocket} {
		m.conns[t] = newConnections(string(t), active, opened, closed, delivered, latency, resumes)
	}
	for _, typ := range event.Types() {
		m.published[typ] = published.WithLabelValues(typ)
	}
	for _, r := range []string{streams.ReasonTruncated, streams.ReasonUnknown} {
		m.resyncs.WithLabelValues(r)
	}
	for _, s := range []StoreSource{StoreRequest, StoreReader, StoreCatchUp, StoreLeases} {
		m.storeErrs.WithLabelValues(string(s))
	}
	return m
}

// Registry returns the registry holding the set, for collectors of other components.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the set in the Prometheus text format (GET /metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, ErrorHandling: promhttp.ContinueOnError})
}

// RateLimited counts a request refused by a limit. route is the route template (c.FullPath()),
// reason a constant of the caller's (e.g. "max_connections", "connect_rate"); never pass request
// data.
func (m *Metrics) RateLimited(route, reason string) {
	m.rejections.WithLabelValues(routeLabel(route), reason).Inc()
}

// LimiterError counts a failure of a rate limiter's store on route (a route template).
func (m *Metrics) LimiterError(route string) { m.limiterErr.WithLabelValues(routeLabel(route)).Inc() }

// StoreError counts a store failure met at source.
func (m *Metrics) StoreError(source StoreSource) { m.storeErrs.WithLabelValues(string(source)).Inc() }

// Published counts events appended through the publish route. Only validated events reach it,
// so the type label holds catalogue types only: bounded.
func (m *Metrics) Published(drafts []event.Draft) {
	for _, d := range drafts {
		if c, ok := m.published[d.Type]; ok {
			c.Inc()
		} else {
			m.publishedByType.WithLabelValues(d.Type).Inc() // a type of the catalogue file
		}
	}
}

// CatalogueTypes starts the published-events series of types at zero, so that dashboards see
// the types of a catalogue (at start-up and after each reload) before their first event. Safe for
// concurrent use.
func (m *Metrics) CatalogueTypes(types []string) {
	for _, t := range types {
		m.publishedByType.WithLabelValues(t)
	}
}

// ObserveRequest records one HTTP request's duration. route is the route template ("" when no
// route matched); the method is bounded here, since clients can send any token as a method.
func (m *Metrics) ObserveRequest(method, route string, status int, d time.Duration) {
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
