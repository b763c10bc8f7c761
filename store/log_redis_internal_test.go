package store

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

func TestBoundsOf(t *testing.T) {
	t.Parallel()
	id := func(ms, seq uint64) event.ID { return event.ID{MS: ms, Seq: seq} }
	const maxSeq = ^uint64(0)
	tests := []struct {
		name string
		info redis.XInfoStream
		want streams.Bounds
	}{
		{"new stream, nothing deleted",
			redis.XInfoStream{Length: 3, EntriesAdded: 3, FirstEntry: redis.XMessage{ID: "5-0"}, LastGeneratedID: "7-0", MaxDeletedEntryID: "0-0"},
			streams.Bounds{First: id(5, 0), Last: id(7, 0)}},
		{"trimmed, First has a sequence",
			redis.XInfoStream{Length: 3, EntriesAdded: 10, FirstEntry: redis.XMessage{ID: "5-4"}, LastGeneratedID: "7-0", MaxDeletedEntryID: "0-0"},
			streams.Bounds{First: id(5, 4), Last: id(7, 0), MaxDeleted: id(5, 3), Trimmed: true}},
		{"trimmed, First at sequence 0",
			redis.XInfoStream{Length: 3, EntriesAdded: 10, FirstEntry: redis.XMessage{ID: "5-0"}, LastGeneratedID: "7-0", MaxDeletedEntryID: "0-0"},
			streams.Bounds{First: id(5, 0), Last: id(7, 0), MaxDeleted: id(4, maxSeq), Trimmed: true}},
		{"XDEL after First wins",
			redis.XInfoStream{Length: 3, EntriesAdded: 10, FirstEntry: redis.XMessage{ID: "5-4"}, LastGeneratedID: "7-0", MaxDeletedEntryID: "6-0"},
			streams.Bounds{First: id(5, 4), Last: id(7, 0), MaxDeleted: id(6, 0), Trimmed: true}},
		{"emptied",
			redis.XInfoStream{Length: 0, EntriesAdded: 10, LastGeneratedID: "7-0", MaxDeletedEntryID: "0-0"},
			streams.Bounds{Last: id(7, 0), MaxDeleted: id(7, 0), Trimmed: true}},
		{"created empty (XGROUP MKSTREAM)",
			redis.XInfoStream{LastGeneratedID: "0-0", MaxDeletedEntryID: "0-0"},
			streams.Bounds{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := boundsOf(&tc.info)
			if err != nil || got != tc.want {
				t.Fatalf("boundsOf = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := boundsOf(&redis.XInfoStream{LastGeneratedID: "x"}); err == nil {
		t.Fatal("boundsOf accepted a malformed id")
	}
}
