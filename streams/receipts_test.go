package streams_test

import (
	"encoding/json"
	"testing"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

func TestReceiptBody(t *testing.T) {
	t.Parallel()
	ids := []event.ID{{MS: 1, Seq: 2}, {MS: 30, Seq: 0}}
	want, _ := json.Marshal(map[string][]string{"ids": {"1-2", "30-0"}})
	if got := streams.ReceiptBody(ids); string(got) != string(want) {
		t.Fatalf("%s, want %s", got, want)
	}
}
