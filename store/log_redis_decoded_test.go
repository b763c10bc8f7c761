package store

import (
	"testing"

	"github.com/eventgate/eventgate/event"
)

// TestDecodedCache: an entry read again is the same decoded event (decoded once, shared); another
// payload under the same id (a log reset reusing ids) is decoded afresh; invalid entries fail
// every time.
func TestDecodedCache(t *testing.T) {
	t.Parallel()
	var c decodedCache
	id := event.ID{MS: 1732650000000, Seq: 3}
	raw := `{"type":"queue.status","data":{"pending":1,"active":2}}`
	first, err := c.decode(id, raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.decode(id, raw)
	if err != nil || again != first {
		t.Fatalf("second read: %p, %v; want the first decode %p (decoded once)", again, err, first)
	}
	other := `{"type":"queue.status","data":{"pending":5,"active":0}}`
	reused, err := c.decode(id, other)
	if err != nil || reused == first || string(reused.JSON) == string(first.JSON) {
		t.Fatalf("a reused id with another entry gave %s, %v; want its own event", reused.JSON, err)
	}
	for range 2 {
		if _, err := c.decode(event.ID{MS: 9}, `{"type":"nope"}`); err == nil {
			t.Fatal("an invalid entry decoded")
		}
	}
	var none *decodedCache // a Redis made without a cache decodes directly
	if ev, err := none.decode(id, raw); err != nil || ev == first {
		t.Fatalf("nil cache: %v, shared %v", err, ev == first)
	}
}
