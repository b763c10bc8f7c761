package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/telemetry"
)

// exampleCatalogue is the repository's example file, which the end-to-end tests use too.
const exampleCatalogue = "../../examples/catalogue.yaml"

// withExtraType is the example catalogue plus order.delivered (a reload adds it).
func withExtraType(t *testing.T) []byte {
	t.Helper()
	src, err := os.ReadFile(exampleCatalogue)
	if err != nil {
		t.Fatal(err)
	}
	return append(src, []byte(`
  order.delivered:
    description: The parcel reached the customer.
    topic: "orders/{order_id}"
    schema:
      type: object
      required: [order_id]
      additionalProperties: false
      properties:
        order_id: {type: string, format: uuid}
`)...)
}

// TestCatalogueStartAndReload installs the process-wide catalogue, so it is not parallel (the
// package's parallel tests run after it, with the built-ins restored).
func TestCatalogueStartAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "catalogue.yaml")
	src, err := os.ReadFile(exampleCatalogue)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	var logs, stderr bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	stop, ok := startCatalogue(path, logger, telemetry.NewMetrics(), &stderr)
	if !ok {
		t.Fatalf("the example catalogue was refused: %s", stderr.String())
	}
	t.Cleanup(func() { stop(); event.Install(nil) })
	if !event.KnownType("order.shipped") || !strings.Contains(logs.String(), `"custom_types":["order.shipped","payment.declined"]`) {
		t.Fatalf("after start-up: KnownType(order.shipped) = %v, log %s", event.KnownType("order.shipped"), logs.String())
	}
	installed := event.Current()

	// An invalid file is refused whole; the catalogue in use stays.
	if err := os.WriteFile(path, append(withExtraType(t), "  job.queued: {}\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reloadCatalogue(path, logger, telemetry.NewMetrics()); err == nil {
		t.Fatal("an invalid file was installed")
	}
	if event.Current() != installed || event.KnownType("order.delivered") {
		t.Fatal("a failed reload changed the installed catalogue")
	}
	if !strings.Contains(logs.String(), "keeping the previous catalogue") || !strings.Contains(logs.String(), `type \"job.queued\": is a built-in type`) {
		t.Fatalf("the failed reload was not logged with its cause: %s", logs.String())
	}

	// A valid file replaces it; the change is logged.
	if err := os.WriteFile(path, withExtraType(t), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reloadCatalogue(path, logger, telemetry.NewMetrics()); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !event.KnownType("order.delivered") || !strings.Contains(logs.String(), `"added":["order.delivered"],"removed":[]`) {
		t.Fatalf("after the reload: KnownType(order.delivered) = %v, log %s", event.KnownType("order.delivered"), logs.String())
	}
}

func TestCatalogueStartInvalid(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "catalogue.yaml")
	if err := os.WriteFile(path, []byte("types:\n  order.shipped:\n    topic: orders\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if _, ok := startCatalogue(path, slog.New(slog.DiscardHandler), telemetry.NewMetrics(), &stderr); ok {
		t.Fatal("an invalid catalogue was accepted at start-up")
	}
	want := "eventgate: invalid configuration: EVENTGATE_CATALOGUE: " + path + `: invalid catalogue: type "order.shipped": schema is required`
	if got := stderr.String(); !strings.HasPrefix(got, want) || strings.Count(got, "\n") != 1 {
		t.Fatalf("stderr %q, want one line starting %q", got, want)
	}
}
