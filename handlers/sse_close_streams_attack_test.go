package handlers

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSSECloseStreamsAttack: an SSE client that stops reading, whose stream is stuck in a long
// write (a 20 s write timeout against a 10 s grace, say), is still released when the drain's grace
// runs out, and logged as ended by the shutdown: CloseStreams closes its socket and the write
// ends at once. net/http does not track the hijacked connection, so without this the process
// would exit first, with no close line (CloseStreams once handled WebSockets alone).
func TestSSECloseStreamsAttack(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	s, log := newLoggedServer(t, Config{Heartbeat: time.Hour, WriteTimeout: 20 * time.Second}, slog.New(slog.NewJSONHandler(logs, nil)))
	ts := smallBufferServer(t, s)
	bigNotes(t, log, 60, 20000) // ~1.2 MB, far past every buffer
	conn := dialSmallWindow(t, ts)
	if _, err := fmt.Fprintf(conn, "GET /api/v1/stream?since=0 HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	} // and reads nothing: the stream's write blocks
	waitUntil(t, "the stream is open", func() bool { return s.Active() == 1 })
	s.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.CloseStreams(ctx)
	if ctx.Err() != nil || s.Active() != 0 {
		t.Fatalf("CloseStreams waited its whole second: %d streams still active", s.Active())
	}
	if out := logs.String(); !strings.Contains(out, `"transport":"sse"`) || !strings.Contains(out, `"reason":"shutdown"`) {
		t.Fatalf("no close line with reason shutdown:\n%s", out)
	}
}
