package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

func TestRedisReceipts(t *testing.T) {
	t.Parallel()
	storetest.RunReceipts(t, func(t *testing.T) streams.Receipts {
		client, _, prefix := redistest.Client(t)
		return store.NewRedisReceipts(client, prefix)
	})
}

// TestRedisReceiptsKeys: receipts live under <prefix>idem:<key>, with the TTL given.
func TestRedisReceiptsKeys(t *testing.T) {
	t.Parallel()
	client, _, prefix := redistest.Client(t)
	r := store.NewRedisReceipts(client, prefix)
	ctx := t.Context()
	if _, claimed, err := r.Claim(ctx, "abc", time.Hour); err != nil || !claimed {
		t.Fatalf("Claim = %v, %v", claimed, err)
	}
	key := prefix + "idem:abc"
	if v, err := client.Get(ctx, key).Result(); err != nil || v != "" {
		t.Fatalf("GET %s = %q, %v; want empty (in flight)", key, v, err)
	}
	if err := r.Complete(ctx, "abc", []byte(`{"ids":["1-0"]}`), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	ttl, err := client.PTTL(ctx, key).Result()
	if err != nil || ttl <= 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("PTTL %s = %v, %v; want about 24h", key, ttl, err)
	}
	if err := r.Complete(ctx, "abc", nil, time.Hour); err == nil {
		t.Fatal("Complete with an empty response succeeded")
	}
}

func TestRedisReceiptsUnavailable(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, DialerRetries: 1, MaxRetries: -1})
	t.Cleanup(func() { _ = client.Close() })
	r := store.NewRedisReceipts(client, "egtest:unreachable:")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name string
		call func() error
	}{
		{"Claim", func() error { _, _, err := r.Claim(ctx, "k", time.Minute); return err }},
		{"Complete", func() error { return r.Complete(ctx, "k", []byte("{}"), time.Minute) }},
		{"Release", func() error { return r.Release(ctx, "k") }},
	}
	for _, tc := range tests {
		if err := tc.call(); !errors.Is(err, streams.ErrUnavailable) {
			t.Errorf("%s: err = %v, want one wrapping streams.ErrUnavailable", tc.name, err)
		}
	}
}
