package store

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/eventgate/eventgate/streams"
)

// deadlineOnly is a context whose deadline has passed but whose timer has not fired yet: what a
// go-redis socket timeout (set to the context's deadline) can see for a moment.
type deadlineOnly struct{ context.Context }

func (deadlineOnly) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestRedisFail: the context's error wins; a timeout at the deadline is the deadline even before
// the context says so (so a request gets one answer for one cause); other failures are
// ErrUnavailable.
func TestRedisFail(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"cancelled", cancelled, context.Canceled},
		{"at the deadline", deadlineOnly{context.Background()}, context.DeadlineExceeded},
		{"live", context.Background(), streams.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := redisFail(tc.ctx, "op", os.ErrDeadlineExceeded); !errors.Is(err, tc.want) {
				t.Fatalf("redisFail: %v, want it to wrap %v", err, tc.want)
			}
		})
	}
}
