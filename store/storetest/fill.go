package storetest

import (
	"context"
	"testing"

	"github.com/eventgate/eventgate/streams"
)

// ClosingLog is a log that is closed when its owner is done with it, such as a store on disk.
type ClosingLog interface {
	streams.Log
	Close() error
}

// FillAndClose appends n events (Drafts' events, in batches of 1000) to log and closes it,
// failing t on any error: a benchmark's way to leave a full store behind.
func FillAndClose(t testing.TB, log ClosingLog, n int) {
	t.Helper()
	batch := Drafts(t, 1000)
	for i := 0; i < n; i += len(batch) {
		if _, err := log.Append(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
}
