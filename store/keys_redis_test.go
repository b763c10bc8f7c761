package store_test

import (
	"testing"

	"github.com/eventgate/eventgate/store"
)

func TestNewRedisKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		stream  string
		cluster bool
		want    store.RedisKeys
	}{
		// One Redis or Sentinel: the names every deployment had.
		{"eventgate:events", false, store.RedisKeys{Log: "eventgate:events", LogPrefix: "eventgate:events:", Prefix: "eventgate:events:"}},
		{"{eg}:events", false, store.RedisKeys{Log: "{eg}:events", LogPrefix: "{eg}:events:", Prefix: "{eg}:events:"}},
		// Cluster: the log and its receipts in the tag's slot; the rest untagged, spread out.
		{"eventgate:events", true, store.RedisKeys{Log: "{eventgate:events}", LogPrefix: "{eventgate:events}:", Prefix: "eventgate:events:"}},
		{"{eg}:events", true, store.RedisKeys{Log: "{eg}:events", LogPrefix: "{eg}:events:", Prefix: "eg:events:"}},
		{"app:{eg}", true, store.RedisKeys{Log: "app:{eg}", LogPrefix: "app:{eg}:", Prefix: "app:eg:"}},
		// An empty {} is no tag (Redis hashes the whole name): tag the whole key.
		{"a{}b", true, store.RedisKeys{Log: "{a{}b}", LogPrefix: "{a{}b}:", Prefix: "ab:"}},
	}
	for _, tc := range tests {
		if got := store.NewRedisKeys(tc.stream, tc.cluster); got != tc.want {
			t.Errorf("NewRedisKeys(%q, %v) = %+v, want %+v", tc.stream, tc.cluster, got, tc.want)
		}
	}
}
