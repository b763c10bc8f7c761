package handlers

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/eventgate/eventgate/auth"
	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/telemetry"
)

// testCatalogue has one custom type beside the built-ins.
const testCatalogue = `types:
  order.shipped:
    topic: "orders/{order_id}"
    description: An order left the warehouse.
    schema:
      type: object
      required: [order_id]
      additionalProperties: false
      properties:
        order_id: {type: string, format: uuid}
`

func mustTestCatalogue(t *testing.T) *event.Catalogue {
	t.Helper()
	c, err := event.ParseCatalogue([]byte(testCatalogue))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newCatalogueServer is a server listing c, with auth on (testSecret) when authOn.
func newCatalogueServer(t *testing.T, c *event.Catalogue, authOn bool) *Server {
	t.Helper()
	var cfg Config
	if authOn {
		cfg.Auth = mustVerifier(t, auth.Config{Secret: testSecret})
	}
	log := store.NewMemory(10)
	hub := streams.NewHub(log, streams.HubOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	s, err := New(cfg, Deps{Hub: hub, Log: log, Receipts: store.NewMemoryReceipts(), Leases: store.NewMemoryLeases(),
		Jobs: store.NewMemoryJobs(time.Hour), Store: log, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Catalogue: func() *event.Catalogue { return c }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCatalogueRoute(t *testing.T) {
	t.Parallel()
	c := mustTestCatalogue(t)
	s := newCatalogueServer(t, c, false)
	rec := do(s, "GET", "/api/v1/catalogue", "", nil)
	body, etag := c.Listing()
	if rec.Code != http.StatusOK || rec.Body.String() != string(body) {
		t.Fatalf("GET /api/v1/catalogue: %d %s, want 200 with the listing", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" || rec.Header().Get("ETag") != etag ||
		rec.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("headers %v, want JSON, ETag %s, no-cache", rec.Header(), etag)
	}
	var l struct{ Types []event.ListingEntry }
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil || len(l.Types) != len(c.Types()) {
		t.Fatalf("listing %s (%v): want %d types", rec.Body, err, len(c.Types()))
	}

	tests := []struct {
		name, ifNoneMatch string
		want              int
	}{
		{"same etag", etag, http.StatusNotModified},
		{"weak form", "W/" + etag, http.StatusNotModified},
		{"in a list", `"x", ` + etag, http.StatusNotModified},
		{"any", "*", http.StatusNotModified},
		{"other etag", `"x"`, http.StatusOK},
		{"the built-ins' etag", func() string { _, e := event.Builtin().Listing(); return e }(), http.StatusOK},
	}
	for _, tt := range tests {
		rec := do(s, "GET", "/api/v1/catalogue", "", http.Header{"If-None-Match": {tt.ifNoneMatch}})
		if rec.Code != tt.want || (tt.want == http.StatusNotModified && rec.Body.Len() != 0) {
			t.Errorf("%s: %d (%d bytes), want %d", tt.name, rec.Code, rec.Body.Len(), tt.want)
		}
	}
}

// TestCatalogueRouteFollowsInstalled: without Deps.Catalogue the route lists event.Current.
func TestCatalogueRouteFollowsInstalled(t *testing.T) {
	t.Parallel()
	s, _ := newTestServer(t, Config{})
	rec := do(s, "GET", "/api/v1/catalogue", "", nil)
	if body, _ := event.Current().Listing(); rec.Code != http.StatusOK || rec.Body.String() != string(body) {
		t.Fatalf("GET /api/v1/catalogue: %d %s, want the installed catalogue", rec.Code, rec.Body)
	}
}

// TestCatalogueRouteAuth: any valid token may read the catalogue, whatever its scopes; no token
// or a bad one gets 401 in the SPEC shape.
func TestCatalogueRouteAuth(t *testing.T) {
	t.Parallel()
	s := newCatalogueServer(t, mustTestCatalogue(t), true)
	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"no token", nil, http.StatusUnauthorized},
		{"forged token", bearer(noneToken(t)), http.StatusUnauthorized},
		{"subscribe", bearer(hsToken(t, claimsFor("s", "subscribe"))), http.StatusOK},
		{"publish", bearer(hsToken(t, claimsFor("p", "publish"))), http.StatusOK},
		{"admin", bearer(hsToken(t, claimsFor("a", "admin"))), http.StatusOK},
		{"no scope at all", bearer(hsToken(t, claimsFor("n", ""))), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := do(s, "GET", "/api/v1/catalogue", "", tt.header)
			if rec.Code != tt.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tt.want)
			}
			if tt.want == http.StatusUnauthorized {
				if code, _ := errorCode(t, rec); code != "unauthorized" || rec.Header().Get("WWW-Authenticate") == "" {
					t.Fatalf("code %q, WWW-Authenticate %q", code, rec.Header().Get("WWW-Authenticate"))
				}
			}
		})
	}
	// The other routes still require their scope: "" only means "any" for the catalogue.
	if rec := do(s, "GET", "/api/v1/events", "", bearer(hsToken(t, claimsFor("p", "publish")))); rec.Code != http.StatusForbidden {
		t.Fatalf("history with a publish-only token: %d, want 403", rec.Code)
	}
}

// TestMetricsCatalogueTypes: custom types get published-events series at zero when their
// catalogue is announced, and are counted when published.
func TestMetricsCatalogueTypes(t *testing.T) {
	t.Parallel()
	c := mustTestCatalogue(t)
	m := telemetry.NewMetrics()
	if got := metricValue(t, m, "eventgate_events_published_total", "type", "order.shipped"); got != -1 {
		t.Fatalf("a custom series exists before its catalogue: %v", got)
	}
	m.CatalogueTypes(c.Types())
	if got := metricValue(t, m, "eventgate_events_published_total", "type", "order.shipped"); got != 0 {
		t.Fatalf("order.shipped series = %v, want 0", got)
	}
	d, err := c.ParseDraft([]byte(`{"type":"order.shipped","data":{"order_id":"` + jobID + `"}}`))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := c.ParseDraft([]byte(`{"type":"queue.status","data":{"pending":1,"active":0}}`))
	m.Published([]event.Draft{d, d, q})
	if got := metricValue(t, m, "eventgate_events_published_total", "type", "order.shipped"); got != 2 {
		t.Fatalf("order.shipped published = %v, want 2", got)
	}
	if got := metricValue(t, m, "eventgate_events_published_total", "type", "queue.status"); got != 1 {
		t.Fatalf("queue.status published = %v, want 1", got)
	}
}
