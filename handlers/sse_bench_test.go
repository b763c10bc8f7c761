package handlers

import (
	"testing"

	"github.com/eventgate/eventgate/event"
)

// BenchmarkAppendFrame measures framing one event for one subscriber into its reused buffer.
func BenchmarkAppendFrame(b *testing.B) {
	ev := event.NewEvent(event.ID{MS: 1732650000000, Seq: 3}, event.Draft{
		Type: "job.progress", Topic: "jobs/6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f",
		Data: []byte(`{"job_id":"6f1c2a9e-1d4b-4c59-9d1e-6a2b3c4d5e6f","percent":40}`),
	})
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendFrame(buf[:0], ev)
	}
}
