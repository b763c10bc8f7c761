package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventgate/eventgate/streams"
)

// NewReceipts makes empty receipts owned by t (the factory registers its own cleanup).
type NewReceipts func(t *testing.T) streams.Receipts

// RunReceipts runs the Receipts contract suite. Every subtest is parallel and makes its own
// receipts.
func RunReceipts(t *testing.T, newReceipts NewReceipts) {
	tests := []struct {
		name string
		run  func(t *testing.T, r streams.Receipts)
	}{
		{"ClaimCompleteReplay", testClaimComplete},
		{"InFlight", testInFlight},
		{"Release", testRelease},
		{"KeysAreIndependent", testIndependentKeys},
		{"ClaimExpires", testClaimExpires},
		{"ResponseExpires", testResponseExpires},
		{"ConcurrentClaims", testConcurrentClaims},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newReceipts(t))
		})
	}
}

const receiptTTL = time.Minute

func claim(t *testing.T, r streams.Receipts, key string, ttl time.Duration) ([]byte, bool) {
	t.Helper()
	prior, claimed, err := r.Claim(ctxFor(t), key, ttl)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	return prior, claimed
}

func wantClaim(t *testing.T, r streams.Receipts, key string, ttl time.Duration, wantPrior string, wantClaimed bool) {
	t.Helper()
	prior, claimed := claim(t, r, key, ttl)
	if claimed != wantClaimed || string(prior) != wantPrior || (wantPrior == "" && prior != nil) {
		t.Fatalf("Claim(%q) = %q, %v; want %q, %v", key, prior, claimed, wantPrior, wantClaimed)
	}
}

func complete(t *testing.T, r streams.Receipts, key, response string, ttl time.Duration) {
	t.Helper()
	if err := r.Complete(ctxFor(t), key, []byte(response), ttl); err != nil {
		t.Fatalf("Complete(%q): %v", key, err)
	}
}

func testClaimComplete(t *testing.T, r streams.Receipts) {
	const resp = `{"ids":["1-0","1-1"]}`
	wantClaim(t, r, "k", receiptTTL, "", true)
	complete(t, r, "k", resp, receiptTTL)
	for range 2 {
		wantClaim(t, r, "k", receiptTTL, resp, false)
	}
	// The returned bytes are the caller's: changing them changes nothing stored.
	prior, _ := claim(t, r, "k", receiptTTL)
	prior[0] = 'X'
	wantClaim(t, r, "k", receiptTTL, resp, false)
}

func testInFlight(t *testing.T, r streams.Receipts) {
	wantClaim(t, r, "k", receiptTTL, "", true)
	wantClaim(t, r, "k", receiptTTL, "", false)
}

func testRelease(t *testing.T, r streams.Receipts) {
	wantClaim(t, r, "k", receiptTTL, "", true)
	if err := r.Release(ctxFor(t), "k"); err != nil {
		t.Fatalf("Release: %v", err)
	}
	wantClaim(t, r, "k", receiptTTL, "", true)
	// Releasing an unknown key is not an error.
	if err := r.Release(ctxFor(t), "never-claimed"); err != nil {
		t.Fatalf("Release(unknown): %v", err)
	}
}

func testIndependentKeys(t *testing.T, r streams.Receipts) {
	wantClaim(t, r, "a", receiptTTL, "", true)
	complete(t, r, "a", `{"ids":["1-0"]}`, receiptTTL)
	wantClaim(t, r, "b", receiptTTL, "", true)
	wantClaim(t, r, "a", receiptTTL, `{"ids":["1-0"]}`, false)
	wantClaim(t, r, "b", receiptTTL, "", false)
}

// eventually polls cond until it holds or waitFor passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitFor)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not synchronisation
	}
}

func testClaimExpires(t *testing.T, r streams.Receipts) {
	wantClaim(t, r, "k", 50*time.Millisecond, "", true)
	eventually(t, "an expired claim is claimable again", func() bool {
		_, claimed := claim(t, r, "k", receiptTTL)
		return claimed
	})
	wantClaim(t, r, "k", receiptTTL, "", false)
}

func testResponseExpires(t *testing.T, r streams.Receipts) {
	wantClaim(t, r, "k", receiptTTL, "", true)
	complete(t, r, "k", `{"ids":["1-0"]}`, 50*time.Millisecond)
	eventually(t, "an expired response is forgotten", func() bool {
		prior, claimed := claim(t, r, "k", receiptTTL)
		if !claimed && prior == nil {
			t.Fatalf("Claim after Complete returned in flight")
		}
		return claimed
	})
}

func testConcurrentClaims(t *testing.T, r streams.Receipts) {
	const n = 16
	var (
		wins atomic.Int32
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	ctx := ctxFor(t)
	for i := range n {
		wg.Go(func() {
			prior, claimed, err := r.Claim(ctx, "k", receiptTTL)
			switch {
			case err != nil:
				err = fmt.Errorf("claimer %d: %w", i, err)
			case claimed:
				wins.Add(1)
			case prior != nil:
				err = fmt.Errorf("claimer %d: got a response %q, want in flight", i, prior)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if w := wins.Load(); w != 1 {
		t.Fatalf("%d of %d concurrent claims won, want exactly 1", w, n)
	}
}
