package streams_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/streams"
)

// failingLog fails every append with err, after recording that it was asked.
type failingLog struct {
	streams.Log
	err     error
	appends int
}

func (l *failingLog) Append(context.Context, []event.Draft) ([]event.ID, error) {
	l.appends++
	return nil, l.err
}

// TestPublisherOncePerKey: a key appends once; a repeat replays the first answer; without a key
// every publish appends.
func TestPublisherOncePerKey(t *testing.T) {
	t.Parallel()
	log := store.NewMemory(100)
	p := streams.NewPublisher(log, store.NewMemoryReceipts(), streams.PublisherOptions{})
	ctx := t.Context()
	ids, prior, err := p.Publish(ctx, "k1", []event.Draft{progress(t, 1), progress(t, 2)})
	if err != nil || prior != nil || len(ids) != 2 {
		t.Fatalf("first: %v %s %v", ids, prior, err)
	}
	again, prior, err := p.Publish(ctx, "k1", []event.Draft{progress(t, 1), progress(t, 2)})
	if err != nil || again != nil || string(prior) != string(streams.ReceiptBody(ids)) {
		t.Fatalf("repeat: %v %s %v, want the first receipt %s", again, prior, err, streams.ReceiptBody(ids))
	}
	for range 2 {
		if _, prior, err := p.Publish(ctx, "", []event.Draft{progress(t, 3)}); err != nil || prior != nil {
			t.Fatalf("keyless: %s %v", prior, err)
		}
	}
	if b, _ := log.Bounds(ctx); b.Last.Less(ids[1]) {
		t.Fatalf("bounds %+v", b)
	}
	if p, _ := log.Read(ctx, event.ID{}, 10); len(p.Events) != 4 {
		t.Fatalf("the log holds %d events, want 4 (2 keyed once, 2 keyless)", len(p.Events))
	}
}

// TestPublisherFailures: an append whose outcome is unknown keeps the key claimed (a retry is
// refused, never appended twice); a failure that certainly appended nothing frees the key.
func TestPublisherFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name        string
		err         error
		wantUnknown bool
	}{
		{"store unavailable", fmt.Errorf("append: %w", streams.ErrUnavailable), true},
		{"deadline", context.DeadlineExceeded, true},
		{"refused before the store", errors.New("invalid batch"), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			log := &failingLog{Log: store.NewMemory(10), err: tt.err}
			p := streams.NewPublisher(log, store.NewMemoryReceipts(), streams.PublisherOptions{})
			_, _, err := p.Publish(t.Context(), "k", []event.Draft{progress(t, 1)})
			if got := errors.Is(err, streams.ErrOutcomeUnknown); got != tt.wantUnknown {
				t.Fatalf("err %v: outcome unknown %v, want %v", err, got, tt.wantUnknown)
			}
			_, _, err = p.Publish(t.Context(), "k", []event.Draft{progress(t, 1)})
			if tt.wantUnknown && (!errors.Is(err, streams.ErrKeyInFlight) || log.appends != 1) {
				t.Fatalf("retry: %v after %d appends, want the key held (in flight) and no second append", err, log.appends)
			}
			if !tt.wantUnknown && log.appends != 2 {
				t.Fatalf("retry: %v after %d appends, want the key freed and a second attempt", err, log.appends)
			}
		})
	}
}

// cancelAfterAppend: the client leaves just after the append succeeded.
type cancelAfterAppend struct {
	streams.Log
	cancel func()
}

func (l cancelAfterAppend) Append(ctx context.Context, d []event.Draft) ([]event.ID, error) {
	ids, err := l.Log.Append(ctx, d)
	l.cancel()
	return ids, err
}

// TestPublisherStoresReceiptAfterClientLeft: a client that leaves right after its append must
// not keep the receipt from being stored; else, once the claim lapsed, a retry with the same key
// would append a second copy.
func TestPublisherStoresReceiptAfterClientLeft(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		mem := store.NewMemory(100)
		ctx, cancel := context.WithCancel(context.Background())
		p := streams.NewPublisher(cancelAfterAppend{mem, cancel}, store.NewMemoryReceipts(),
			streams.PublisherOptions{InFlight: 20 * time.Millisecond})
		if _, _, err := p.Publish(ctx, "k", []event.Draft{progress(t, 1)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Millisecond) // the claim lapses (fake time in the bubble)
		ids, prior, err := p.Publish(context.Background(), "k", []event.Draft{progress(t, 1)})
		if prior == nil {
			t.Fatalf("retry appended again: ids %v err %v", ids, err)
		}
	})
}
