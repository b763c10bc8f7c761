package main

import (
	"net/http"
	"net/http/pprof"

	"github.com/eventgate/eventgate/telemetry"
)

// debugHandler serves Go's profiles (net/http/pprof) for EVENTGATE_DEBUG_ADDR, a listener of its
// own: profiles reveal internals and a heap profile with gc=1 forces a collection, so they never
// share the public address. Bind it to loopback or a private network.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index) // also serves heap, goroutine, allocs, block, mutex
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

// metricsHandler serves /metrics alone, for EVENTGATE_METRICS_ADDR.
func metricsHandler(m *telemetry.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return mux
}
