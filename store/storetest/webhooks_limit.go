package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/webhooks"
)

// testHookLimit: CreateWebhook with a limit refuses (ErrTooMany, nothing stored) once that
// many endpoints exist; a deletion makes room; limit 0 means no limit.
func testHookLimit(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	for _, id := range []string{"a", "b"} {
		if err := s.CreateWebhook(ctx, newHook(id), event.ID{}, 2); err != nil {
			t.Fatalf("CreateWebhook(%s, limit 2): %v", id, err)
		}
	}
	err := s.CreateWebhook(ctx, newHook("c"), event.ID{}, 2)
	if !errors.Is(err, webhooks.ErrTooMany) {
		t.Fatalf("third CreateWebhook(limit 2) = %v, want ErrTooMany", err)
	}
	if _, err := s.Webhook(ctx, "c"); !errors.Is(err, webhooks.ErrNotFound) {
		t.Fatalf("the refused endpoint: Webhook(c) err = %v, want ErrNotFound", err)
	}
	if ok, err := s.AcquireWebhook(ctx, "c", "o", 0); ok || err != nil {
		t.Fatalf("the refused endpoint can be leased: %v, %v", ok, err)
	}
	if list, _ := s.Webhooks(ctx); len(list) != 2 {
		t.Fatalf("%d endpoints listed, want 2", len(list))
	}
	if err := s.DeleteWebhook(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateWebhook(ctx, newHook("c"), event.ID{}, 2); err != nil {
		t.Fatalf("CreateWebhook(c) after a deletion: %v", err)
	}
	if err := s.CreateWebhook(ctx, newHook("d"), event.ID{}, 0); err != nil {
		t.Fatalf("CreateWebhook(limit 0): %v", err)
	}
}

// testHookLimitConcurrent: many concurrent creations never exceed the limit (in Redis the count
// and the insert are one step, so this holds across instances).
func testHookLimitConcurrent(t *testing.T, s webhooks.Store) {
	ctx := ctxFor(t)
	const limit, tries = 3, 20
	var wg sync.WaitGroup
	errs := make(chan error, tries)
	for i := range tries {
		wg.Go(func() { errs <- s.CreateWebhook(ctx, newHook(fmt.Sprintf("h%d", i)), event.ID{}, limit) })
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, webhooks.ErrTooMany):
			t.Fatalf("CreateWebhook: %v", err)
		}
	}
	list, err := s.Webhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if created != limit || len(list) != limit {
		t.Fatalf("%d creations succeeded and %d endpoints are listed, want %d", created, len(list), limit)
	}
}
