package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

// NewAppendOnce makes an empty log keeping about retention events and receipts that combine
// with it (streams.AtomicReceipts), owned by t.
type NewAppendOnce func(t *testing.T, retention int) (streams.Log, streams.AtomicReceipts)

// RunAppendOnce is the contract suite of streams.AtomicReceipts: the key is looked up, the events
// appended and the receipt written in one step; a repeat of the key appends nothing and gets the
// receipt, without any Claim; a key claimed by a request in flight is left alone; the log's
// retention still applies; another log is not combined with.
func RunAppendOnce(t *testing.T, newStore NewAppendOnce) {
	t.Run("OnceThenReceipt", func(t *testing.T) {
		t.Parallel()
		log, r := newStore(t, 10)
		ctx := ctxFor(t)
		ids, prior, ok, err := r.AppendOnce(ctx, log, "k", Drafts(t, 3), time.Hour)
		if !ok || err != nil || len(ids) != 3 || prior != nil {
			t.Fatalf("AppendOnce: %v %q %v %v", ids, prior, ok, err)
		}
		page := mustRead(t, ctx, log, event.ID{}, 10)
		checkIDs(t, "log after AppendOnce", eventIDs(page.Events), ids)
		again, prior, ok, err := r.AppendOnce(ctx, log, "k", Drafts(t, 3), time.Hour)
		if !ok || err != nil || again != nil || string(prior) != string(streams.ReceiptBody(ids)) {
			t.Fatalf("repeat: ids %v prior %q ok %v err %v, want the receipt %s", again, prior, ok, err, streams.ReceiptBody(ids))
		}
		page = mustRead(t, ctx, log, event.ID{}, 10)
		checkIDs(t, "log after the repeat", eventIDs(page.Events), ids)
		// Claim sees the receipt too.
		prior, claimed, err := r.Claim(ctx, "k", time.Minute)
		if claimed || err != nil || string(prior) != string(streams.ReceiptBody(ids)) {
			t.Fatalf("claim: %q claimed %v err %v, want the receipt", prior, claimed, err)
		}
	})
	t.Run("InFlightKeyLeftAlone", func(t *testing.T) {
		t.Parallel()
		log, r := newStore(t, 10)
		ctx := ctxFor(t)
		if _, claimed, err := r.Claim(ctx, "busy", time.Minute); !claimed || err != nil {
			t.Fatalf("claim busy: %v %v", claimed, err)
		}
		ids, prior, ok, err := r.AppendOnce(ctx, log, "busy", Drafts(t, 1), time.Hour)
		if !ok || !errors.Is(err, streams.ErrKeyInFlight) || ids != nil || prior != nil {
			t.Fatalf("claimed key: ids %v prior %q ok %v err %v, want ErrKeyInFlight", ids, prior, ok, err)
		}
		if p := mustRead(t, ctx, log, event.ID{}, 10); len(p.Events) != 0 {
			t.Fatalf("log holds %d events, want none", len(p.Events))
		}
	})
	t.Run("ExpiredReceiptIsFree", func(t *testing.T) {
		t.Parallel()
		log, r := newStore(t, 10)
		ctx := ctxFor(t)
		first, _, _, err := r.AppendOnce(ctx, log, "k", Drafts(t, 1), 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "an expired receipt lets the key append again", func() bool {
			ids, _, _, err := r.AppendOnce(ctx, log, "k", Drafts(t, 1), time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			return ids != nil && first[0].Less(ids[0])
		})
	})
	t.Run("ConcurrentSameKey", func(t *testing.T) {
		t.Parallel()
		const n = 16
		log, r := newStore(t, 100)
		ctx := ctxFor(t)
		drafts := Drafts(t, 2)
		var (
			mu      sync.Mutex
			wg      sync.WaitGroup
			winners [][]event.ID
			bodies  []string
			errs    []error
		)
		for i := range n {
			wg.Go(func() {
				ids, prior, _, err := r.AppendOnce(ctx, log, "same", drafts, time.Hour)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case errors.Is(err, streams.ErrKeyInFlight):
				case err != nil:
					errs = append(errs, fmt.Errorf("caller %d: %w", i, err))
				case ids != nil:
					winners = append(winners, ids)
				default:
					bodies = append(bodies, string(prior))
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if len(winners) != 1 {
			t.Fatalf("%d callers appended, want exactly 1", len(winners))
		}
		for _, b := range bodies {
			if b != string(streams.ReceiptBody(winners[0])) {
				t.Fatalf("a repeat got %s, want the winner's receipt %s", b, streams.ReceiptBody(winners[0]))
			}
		}
		page := mustRead(t, ctx, log, event.ID{}, 100)
		checkIDs(t, "log after concurrent repeats", eventIDs(page.Events), winners[0])
	})
	t.Run("RetentionApplies", func(t *testing.T) {
		t.Parallel()
		log, r := newStore(t, 10)
		ctx := ctxFor(t)
		for i := range 5 {
			if _, _, _, err := r.AppendOnce(ctx, log, fmt.Sprint("k-", i), Drafts(t, 100), time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		if p := mustRead(t, ctx, log, event.ID{}, 1000); len(p.Events) > 200 || !p.Bounds.Trimmed {
			t.Fatalf("log holds %d events (bounds %+v), want it trimmed near 10", len(p.Events), p.Bounds)
		}
	})
}
