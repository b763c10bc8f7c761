package main

// End-to-end tests of operator-defined event types (EVENTGATE_CATALOGUE) with the real binary and
// the repository's example catalogue: custom events are validated on publish and on read (direct
// XADD), carried unchanged by SSE, WebSocket, history, webhooks and the CLI (publish, tail),
// listed by GET /api/v1/catalogue, and a SIGHUP reload adds a type while a stream stays connected.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/eventgate/eventgate/event"
)

// catalogueFile copies the example catalogue (plus extra) into a file of the test's own.
func catalogueFile(t *testing.T, extra string) string {
	t.Helper()
	src, err := os.ReadFile(exampleCatalogue)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "catalogue.yaml")
	if err := os.WriteFile(path, append(src, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func orderShipped(order, carrier string) string {
	return fmt.Sprintf(`{"type":"order.shipped","data":{"order_id":%q,"carrier":%q}}`, order, carrier)
}

func TestE2ECatalogue(t *testing.T) {
	t.Parallel()
	client, key, env := redisSetup(t, hookEnv(map[string]string{"EVENTGATE_CATALOGUE": catalogueFile(t, "")}))
	s := startServer(t, env)
	receiver := newHookReceiver(t, nil)
	hook := registerHook(t, s.URL(), `{"url":"`+receiver.URL()+`","topics":["orders/*"],"types":["order.shipped"]}`)
	receiver.setSecret(hook.Secret)
	st := openStream(t, s.URL()+"/api/v1/stream?topic=orders/*", nil)
	ws := dialWS(t, s, "?topic=orders/*")

	// Valid events: one in orders/*, one elsewhere (a two-placeholder topic), then one from the CLI.
	order := newUUID()
	payment := newUUID()
	ids := mustPublish(t, s.URL(), batch(
		`{"type":"order.shipped","data":{"order_id":"`+strings.ToUpper(order)+`","carrier":"ups","note":"left dock 4\n  at /srv/wms/ship.py:88","items":[{"sku":"A-1","quantity":2}]}}`,
		`{"type":"payment.declined","data":{"account":"acme","payment_id":"`+payment+`","amount":12.5,"currency":"EUR"}}`), 2)
	code, out, errs := runCLI(t, map[string]string{"EVENTGATE_URL": s.URL()}, "", "publish", orderShipped(order, "dhl"))
	if code != 0 {
		t.Fatalf("eventgate publish of a custom type: exit %d, stderr %s", code, errs)
	}
	cliID := strings.TrimSpace(out)

	// Invalid ones: 400 invalid_event naming the field; nothing appended.
	for _, tt := range []struct{ name, body, inMessage string }{
		{"unknown field", `{"type":"order.shipped","data":{"order_id":"` + order + `","carrier":"ups","colour":"red"}}`, "data.colour: unknown field"},
		{"missing field", `{"type":"order.shipped","data":{"order_id":"` + order + `"}}`, "data.carrier: is required"},
		{"bad format", `{"type":"order.shipped","data":{"order_id":"` + order + `","carrier":"ups","shipped_on":"26/11/2026"}}`, "data.shipped_on: must be a valid date"},
		{"too long", orderShipped(order, strings.Repeat("c", 65)), "data.carrier: must be at most 64 characters (got 65)"},
		{"unknown type", `{"type":"order.lost","data":{}}`, `unknown event type "order.lost"`},
	} {
		status, _, raw := publish(t, s.URL(), tt.body, nil)
		if msg := expectError(t, status, raw, http.StatusBadRequest, "invalid_event"); !strings.Contains(msg, tt.inMessage) {
			t.Errorf("%s: message %q, want it to contain %q", tt.name, msg, tt.inMessage)
		}
	}

	// Direct XADD: a valid custom entry is delivered (normalized like a publish), an invalid one
	// skipped.
	xadd(t, client, key, "event", `{"type":"order.shipped","data":{"order_id":"`+order+`"}}`)
	xaddID := xadd(t, client, key, "event", `{"type":"order.shipped","data":{"carrier":"fedex","order_id":"`+strings.ToUpper(order)+`"}}`)

	want := []string{ids[0], cliID, xaddID}
	wantData := []string{
		`{"carrier":"ups","items":[{"quantity":2,"sku":"A-1"}],"note":"left dock 4","order_id":"` + order + `"}`,
		`{"carrier":"dhl","order_id":"` + order + `"}`,
		`{"carrier":"fedex","order_id":"` + order + `"}`,
	}
	check := func(via string, i int, name, raw string) {
		t.Helper()
		e := decodeEnvelope(t, raw)
		if e.ID != want[i] || e.Type != "order.shipped" || name != "order.shipped" || e.Topic != "orders/"+order || string(e.Data) != wantData[i] {
			t.Fatalf("%s event %d: %s (name %q), want order.shipped %s on orders/%s with data %s", via, i, raw, name, want[i], order, wantData[i])
		}
	}
	for i, f := range st.events(t, 3, frameTimeout) {
		check("SSE", i, f.Event, f.Data)
	}
	for i := range want {
		m := readFrame(t, ws)
		raw, _ := json.Marshal(m)
		check("WebSocket", i, m["type"].(string), string(raw))
	}
	page := history(t, s.URL(), "after=0&topic=orders/*")
	requireIDs(t, "history orders/*", historyIDs(t, page), want)
	requireIDs(t, "history type=payment.declined", historyIDs(t, history(t, s.URL(), "after=0&type=payment.declined")), ids[1:2])
	if e := decodeEnvelope(t, string(history(t, s.URL(), "after=0&type=payment.declined").Events[0])); e.Topic != "payments/acme/"+payment {
		t.Fatalf("payment.declined topic %q, want payments/acme/%s", e.Topic, payment)
	}
	tail := startTailCLI(t, map[string]string{"EVENTGATE_URL": s.URL()}, "--since", "0", "--type", "order.shipped")
	requireIDs(t, "eventgate tail --type order.shipped", lineIDs(t, tail.next(t, 3, frameTimeout)), want)
	tail.stop(t)
	receiver.waitDelivered(t, want, hookWait)
	for _, q := range receiver.requests() {
		if i := slices.Index(want, q.id); i < 0 || !strings.Contains(string(q.body), `"data":`+wantData[i]) {
			t.Fatalf("webhook delivery %s: %s, want the envelope of one of %v", q.id, q.body, want)
		}
	}

	// The catalogue lists every type, built-in and custom, with its contract.
	status, hdr, raw := doRequest(t, http.MethodGet, s.URL()+"/api/v1/catalogue", "", nil)
	var listing struct{ Types []event.ListingEntry }
	if status != http.StatusOK || json.Unmarshal(raw, &listing) != nil || hdr.Get("ETag") == "" {
		t.Fatalf("GET /api/v1/catalogue: %d %s", status, raw)
	}
	var names []string
	for _, e := range listing.Types {
		names = append(names, e.Type)
		if e.Type == "order.shipped" && (e.Builtin || e.Topic != "orders/{order_id}" || e.Sanitize["note"] != 200 || !json.Valid(e.Schema)) {
			t.Fatalf("order.shipped listed as %+v", e)
		}
	}
	if !slices.Contains(names, "order.shipped") || !slices.Contains(names, "payment.declined") || !slices.Contains(names, "job.progress") {
		t.Fatalf("catalogue lists %v, want the built-in and the custom types", names)
	}
	_, _, metrics := doRequest(t, http.MethodGet, s.URL()+"/metrics", "", nil)
	for _, line := range []string{`eventgate_events_published_total{type="order.shipped"} 2`, `eventgate_events_published_total{type="payment.declined"} 1`} {
		if !strings.Contains(string(metrics), line) {
			t.Errorf("/metrics lacks %s", line)
		}
	}
}

// TestE2ECatalogueReload: SIGHUP with an invalid file keeps the catalogue; with a valid one it
// adds a type, which an SSE stream opened before receives on the same connection.
func TestE2ECatalogueReload(t *testing.T) {
	t.Parallel()
	path := catalogueFile(t, "")
	s := startServer(t, map[string]string{"EVENTGATE_CATALOGUE": path})
	st := openStream(t, s.URL()+"/api/v1/stream", nil)
	order := newUUID()
	delivered := `{"type":"order.delivered","data":{"order_id":"` + order + `"}}`
	status, _, raw := publish(t, s.URL(), delivered, nil)
	expectError(t, status, raw, http.StatusBadRequest, "invalid_event")
	_, _, before := doRequest(t, http.MethodGet, s.URL()+"/api/v1/catalogue", "", nil)

	hup := func(msg string) {
		t.Helper()
		n := countLines(s, msg, nil)
		if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "log line "+msg, frameTimeout, func() bool { return countLines(s, msg, nil) > n })
	}
	if err := os.WriteFile(path, append(withExtraType(t), "  job.queued: {}\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("catalogue reload failed; keeping the previous catalogue")
	if status, _, raw := publish(t, s.URL(), delivered, nil); status != http.StatusBadRequest {
		t.Fatalf("after an invalid reload order.delivered got %d %s, want 400", status, raw)
	}
	kept := mustPublish(t, s.URL(), orderShipped(order, "ups"), 1)

	if err := os.WriteFile(path, []byte(strings.TrimSuffix(mustRead(t, path), "  job.queued: {}\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	hup("catalogue reloaded")
	added := mustPublish(t, s.URL(), delivered, 1)
	got := st.events(t, 2, frameTimeout)
	requireIDs(t, "the stream opened before the reloads", frameIDs(got), append(kept, added...))
	if got[1].Event != "order.delivered" {
		t.Fatalf("frame %+v, want event order.delivered", got[1])
	}
	if n := countLines(s, "connection opened", nil); n != 1 {
		t.Fatalf("%d connections opened, want the one stream, never reconnected", n)
	}
	_, _, after := doRequest(t, http.MethodGet, s.URL()+"/api/v1/catalogue", "", nil)
	if string(after) == string(before) || !strings.Contains(string(after), `"type":"order.delivered"`) {
		t.Fatalf("the catalogue after the reload does not list order.delivered: %s", after)
	}
	typed := openStream(t, s.URL()+"/api/v1/stream?since=0&type=order.delivered", nil)
	requireIDs(t, "a stream filtered on the new type", frameIDs(typed.events(t, 1, frameTimeout)), added)
}

// TestE2ECatalogueInvalidAtStart: an invalid file stops start-up with one line naming
// EVENTGATE_CATALOGUE, the type and the problem.
func TestE2ECatalogueInvalidAtStart(t *testing.T) {
	t.Parallel()
	path := catalogueFile(t, "  order.lost:\n    topic: \"lost/{order_id}\"\n    schema: {type: object, additionalProperties: false, properties: {order_id: {type: string, maxLength: 36}}}\n")
	code, _, errs := runCLI(t, map[string]string{"EVENTGATE_CATALOGUE": path, "EVENTGATE_ADDR": freeAddr(t), "EVENTGATE_AUTH": "none"}, "")
	want := `eventgate: invalid configuration: EVENTGATE_CATALOGUE: ` + path + `: invalid catalogue: type "order.lost": topic: placeholder {order_id} names a property that is not required`
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if code != 2 || lines[len(lines)-1] != want || strings.Contains(errs, "eventgate listening") {
		t.Fatalf("exit %d, stderr %q; want exit 2 before listening, ending with the line %q", code, errs, want)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
