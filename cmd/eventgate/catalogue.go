package main

// EVENTGATE_CATALOGUE: operator-defined event types, installed at start-up and reloaded on
// SIGHUP (docs/catalogue.md).

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/telemetry"
)

// startCatalogue installs the catalogue of path (none when empty: the built-in types only) and
// reloads it on every SIGHUP until stop is called. SIGHUP is taken in either case, so a stray
// hang-up never ends the server. ok is false when the file is invalid: the one-line error naming
// EVENTGATE_CATALOGUE has been written to stderr and the caller exits with code 2.
func startCatalogue(path string, logger *slog.Logger, metrics *telemetry.Metrics, stderr io.Writer) (stop func(), ok bool) {
	if path != "" {
		c, err := event.LoadCatalogue(path)
		if err != nil {
			fmt.Fprintf(stderr, "eventgate: invalid configuration: EVENTGATE_CATALOGUE: %v\n", err)
			return nil, false
		}
		event.Install(c)
		logger.Info("catalogue loaded", "path", path, "custom_types", customTypes(c))
	}
	metrics.CatalogueTypes(event.Types())

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-hup:
				if path == "" {
					logger.Info("SIGHUP: no EVENTGATE_CATALOGUE to reload")
					continue
				}
				_ = reloadCatalogue(path, logger, metrics)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(hup); close(done); <-stopped }, true
}

// reloadCatalogue loads path and, only if the whole file is valid, installs it in one atomic
// swap: publishes, stream filters and stored-entry decoding use the new types from then on;
// connections stay open. An invalid file is logged and the installed catalogue kept.
func reloadCatalogue(path string, logger *slog.Logger, metrics *telemetry.Metrics) error {
	c, err := event.LoadCatalogue(path)
	if err != nil {
		logger.Error("catalogue reload failed; keeping the previous catalogue", "path", path, "err", err)
		return err
	}
	prev := event.Install(c)
	metrics.CatalogueTypes(c.Types())
	was, now := customTypes(prev), customTypes(c)
	added := slices.DeleteFunc(slices.Clone(now), func(t string) bool { return slices.Contains(was, t) })
	removed := slices.DeleteFunc(was, func(t string) bool { return slices.Contains(now, t) })
	logger.Info("catalogue reloaded", "path", path, "custom_types", now, "added", added, "removed", removed)
	return nil
}

// customTypes returns c's operator-defined types, sorted.
func customTypes(c *event.Catalogue) []string {
	return slices.DeleteFunc(c.Types(), func(t string) bool { return !c.Custom(t) })
}
