package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/store"
	"github.com/eventgate/eventgate/store/redistest"
	"github.com/eventgate/eventgate/store/storetest"
	"github.com/eventgate/eventgate/streams"
)

// testBlock keeps Tail timeouts short in tests.
const testBlock = 200 * time.Millisecond

// newRedisLog returns a log on a fresh key of the test server, with a tail client of its own, and
// the main client for direct commands.
func newRedisLog(t *testing.T, retention int, opts store.RedisOptions) (*store.Redis, *redis.Client) {
	t.Helper()
	client, url, prefix := redistest.Client(t)
	o, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	tail := redis.NewClient(o)
	t.Cleanup(func() { _ = tail.Close() })
	if opts.Block == 0 {
		opts.Block = testBlock
	}
	return store.NewRedis(client, tail, prefix+"events", int64(retention), opts), client
}

func TestRedisLog(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, retention int) streams.Log {
		l, _ := newRedisLog(t, retention, store.RedisOptions{})
		return l
	})
}

// invalidCounter records OnInvalid calls; safe for concurrent use.
type invalidCounter struct {
	mu  sync.Mutex
	ids []event.ID
}

func (c *invalidCounter) add(id event.ID, err error) {
	if !errors.Is(err, event.ErrInvalidEvent) {
		panic("OnInvalid error does not wrap ErrInvalidEvent: " + err.Error())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids = append(c.ids, id)
}

func (c *invalidCounter) take() []event.ID {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := c.ids
	c.ids = nil
	return ids
}

// TestRedisProducerEntries: entries a producer XADDs directly are validated when read: valid ones
// are delivered, invalid ones skipped and reported, and Next moves past them.
func TestRedisProducerEntries(t *testing.T) {
	t.Parallel()
	var bad invalidCounter
	log, client := newRedisLog(t, 1000, store.RedisOptions{OnInvalid: bad.add})
	ctx := t.Context()
	entries := []struct {
		name   string
		values []any
		valid  bool
	}{
		{"valid job", []any{"event", storetest.Job}, true},
		{"not JSON", []any{"event", "{not json"}, false},
		{"valid queue", []any{"event", storetest.Queue}, true},
		{"unknown type", []any{"event", `{"type":"job.exploded","data":{"job_id":"` + storetest.JobID + `"}}`}, false},
		{"unknown field", []any{"event", `{"type":"queue.status","data":{"pending":1,"active":2,"x":1}}`}, false},
		{"no event field", []any{"payload", storetest.Queue}, false},
	}
	var ids, valid, invalid []event.ID
	for _, e := range entries {
		s, err := client.XAdd(ctx, &redis.XAddArgs{Stream: log.Key(), Values: e.values}).Result()
		if err != nil {
			t.Fatalf("XADD %s: %v", e.name, err)
		}
		id, err := event.ParseID(s)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if e.valid {
			valid = append(valid, id)
		} else {
			invalid = append(invalid, id)
		}
	}
	last := ids[len(ids)-1]
	tests := []struct {
		name  string
		call  func(context.Context, event.ID, int) (streams.Page, error)
		after event.ID
		want  []event.ID
		bad   []event.ID
	}{
		{"Read all", log.Read, event.ID{}, valid, invalid},
		{"Tail all", log.Tail, event.ID{}, valid, invalid},
		{"Read after last valid", log.Read, valid[1], nil, invalid[1:]},
		{"Tail after last valid", log.Tail, valid[1], nil, invalid[1:]},
	}
	for _, tc := range tests {
		p, err := tc.call(ctx, tc.after, 100)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []event.ID
		for _, e := range p.Events {
			got = append(got, e.ID)
		}
		if !slices.Equal(got, tc.want) || p.Next != last {
			t.Errorf("%s: events %v, Next %s; want %v, Next %s", tc.name, got, p.Next, tc.want, last)
		}
		if b := bad.take(); !slices.Equal(b, tc.bad) {
			t.Errorf("%s: OnInvalid for %v, want %v", tc.name, b, tc.bad)
		}
	}
	// A page of only invalid entries still moves Next, so a reader never loops on them.
	p, err := log.Read(ctx, valid[1], 1)
	if err != nil || len(p.Events) != 0 || p.Next != invalid[1] {
		t.Errorf("Read(last valid, 1) = %d events, Next %s, %v; want 0, %s", len(p.Events), p.Next, err, invalid[1])
	}
}

// TestRedisUnavailable: with no server, every call fails fast with streams.ErrUnavailable.
func TestRedisUnavailable(t *testing.T) {
	t.Parallel()
	// 127.0.0.1:1 (tcpmux) is not served on loopback here: connections are refused at once.
	client := redis.NewClient(&redis.Options{
		Addr:          "127.0.0.1:1",
		DialTimeout:   200 * time.Millisecond,
		DialerRetries: 1,
		MaxRetries:    -1,
	})
	t.Cleanup(func() { _ = client.Close() })
	log := store.NewRedis(client, client, "egtest:unreachable", 10, store.RedisOptions{Block: testBlock})
	draft := storetest.Draft(t, storetest.Job)
	tests := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Append", func(ctx context.Context) error { _, err := log.Append(ctx, []event.Draft{draft}); return err }},
		{"Read", func(ctx context.Context) error { _, err := log.Read(ctx, event.ID{}, 10); return err }},
		{"Tail", func(ctx context.Context) error { _, err := log.Tail(ctx, event.ID{}, 10); return err }},
		{"Bounds", func(ctx context.Context) error { _, err := log.Bounds(ctx); return err }},
		{"Ping", log.Ping},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := tc.call(ctx)
			if !errors.Is(err, streams.ErrUnavailable) {
				t.Fatalf("err = %v, want one wrapping streams.ErrUnavailable", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

// TestRedisTailHonoursDeadline: a context deadline shorter than the block ends Tail in time,
// with a clean timeout page.
func TestRedisTailHonoursDeadline(t *testing.T) {
	t.Parallel()
	log, _ := newRedisLog(t, 100, store.RedisOptions{Block: 30 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	p, err := log.Tail(ctx, event.ID{}, 10)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Tail took %v with a 400ms deadline and a 30s block", d)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Tail: %v", err)
	}
	if len(p.Events) != 0 || !p.Next.IsZero() {
		t.Fatalf("Tail = %d events, Next %s", len(p.Events), p.Next)
	}
}

// TestRedisBoundsAfterDeletes: the bounds follow what producers or operators do to the stream
// directly: trimming, XDEL, a lost stream.
func TestRedisBoundsAfterDeletes(t *testing.T) {
	t.Parallel()
	log, client := newRedisLog(t, 1000, store.RedisOptions{})
	ctx := t.Context()
	bounds := func() streams.Bounds {
		t.Helper()
		b, err := log.Bounds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := log.Read(ctx, event.ID{}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if p.Bounds != b {
			t.Fatalf("Read bounds %+v != Bounds() %+v", p.Bounds, b)
		}
		return b
	}
	ids, err := log.Append(ctx, storetest.Drafts(t, 10))
	if err != nil {
		t.Fatal(err)
	}
	// XDEL of a middle entry: Redis records it exactly.
	if err := client.XDel(ctx, log.Key(), ids[5].String()).Err(); err != nil {
		t.Fatal(err)
	}
	if b := bounds(); b.MaxDeleted != ids[5] || b.First != ids[0] || b.Last != ids[9] {
		t.Fatalf("after XDEL %s: %+v", ids[5], b)
	}
	// An exact trim by someone else: the last trimmed id is at most MaxDeleted, and First is after.
	if err := client.XTrimMaxLen(ctx, log.Key(), 2).Err(); err != nil {
		t.Fatal(err)
	}
	if b := bounds(); b.First != ids[8] || b.MaxDeleted.Less(ids[7]) || !b.MaxDeleted.Less(ids[8]) {
		t.Fatalf("after XTRIM MAXLEN 2: %+v", b)
	}
	// Trimmed to nothing: everything up to Last is gone.
	if err := client.XTrimMaxLen(ctx, log.Key(), 0).Err(); err != nil {
		t.Fatal(err)
	}
	if b := bounds(); b != (streams.Bounds{Last: ids[9], MaxDeleted: ids[9], Trimmed: true}) {
		t.Fatalf("after XTRIM MAXLEN 0: %+v", b)
	}
	// The stream lost: zero bounds, so a reader at ids[9] sees that the log never reached it.
	if err := client.Del(ctx, log.Key()).Err(); err != nil {
		t.Fatal(err)
	}
	if b := bounds(); b != (streams.Bounds{}) {
		t.Fatalf("after DEL: %+v", b)
	}
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	p, err := log.Tail(tctx, ids[9], 10)
	if (err != nil && !errors.Is(err, context.DeadlineExceeded)) || len(p.Events) != 0 || p.Next != ids[9] {
		t.Fatalf("Tail after DEL = %d events, Next %s, %v", len(p.Events), p.Next, err)
	}
}
