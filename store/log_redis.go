package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

var _ streams.Log = (*Redis)(nil)

// DefaultTailBlock is how long Tail blocks in XREAD waiting for new entries when
// RedisOptions.Block is zero.
const DefaultTailBlock = 2 * time.Second

// entryField is the stream entry field that holds an event's payload {"type":...,"data":{...}}.
const entryField = "event"

// deadlineMargin is kept between the end of a blocking XREAD and the caller's context deadline,
// so that the server's timeout reply arrives before the socket deadline would break the
// connection.
const deadlineMargin = 50 * time.Millisecond

// RedisOptions are the optional settings of a Redis log. The zero value is usable.
type RedisOptions struct {
	// Block bounds how long one Tail call waits in XREAD (default DefaultTailBlock). It is always
	// finite: go-redis cannot interrupt a blocking command when the context ends.
	Block time.Duration
	// Logger receives a warning for every invalid stream entry skipped (nil: not logged).
	Logger *slog.Logger
	// OnInvalid is called for every invalid stream entry skipped (a producer's direct XADD of bad
	// JSON, an unknown type, or an entry without the "event" field). It is called from the
	// goroutine calling Read or Tail, possibly concurrently, and once per examination: a range read
	// twice reports its invalid entries twice. err wraps event.ErrInvalidEvent.
	OnInvalid func(id event.ID, err error)
	// WaitReplicas, when above zero, makes every append (and keyed append with its receipt) wait
	// with WAIT until that many replicas acknowledged it; fewer within WaitTimeout is an error
	// wrapping ErrNotReplicated and streams.ErrUnavailable (the write stays on the primary).
	WaitReplicas int
	// WaitTimeout bounds each WAIT (default DefaultWaitTimeout), and the caller's deadline does.
	WaitTimeout time.Duration
}

// Redis is a streams.Log on one Redis Stream used as a capped ring (XADD … MAXLEN ~ retention).
// It is safe for concurrent use. It does not own its clients: the caller creates them and closes
// them after the last call.
//
// Errors from the server or the network wrap streams.ErrUnavailable (and the underlying error);
// when the caller's context ended, they wrap the context's error instead. An ErrUnavailable from
// Append means the outcome is unknown: the transaction may or may not have been applied.
type Redis struct {
	client    redis.UniversalClient
	tail      redis.UniversalClient
	key       string
	retention int64
	block     time.Duration
	logger    *slog.Logger
	onInvalid func(event.ID, error)
	decoded   *decodedCache // entries read recently, decoded once (nil: none)

	waitReplicas int
	waitTimeout  time.Duration
}

// NewRedis returns a log on the stream key. client serves Append, Read and Ping; tail serves the
// blocking XREAD of Tail, so that a blocked reader never holds a connection of the main pool (nil
// tail: client is used). Appends trim the stream to about retention entries (at least retention are
// kept; retention ≤ 0 disables trimming). In Redis Cluster the key lives in one slot, so every
// command here is single-slot.
func NewRedis(client, tail redis.UniversalClient, key string, retention int64, opts RedisOptions) *Redis {
	if tail == nil {
		tail = client
	}
	block := opts.Block
	if block <= 0 {
		block = DefaultTailBlock
	}
	if block < time.Millisecond {
		block = time.Millisecond // XREAD BLOCK 0 would wait forever
	}
	return &Redis{
		client:    client,
		tail:      tail,
		key:       key,
		retention: max(retention, 0),
		block:     block,
		logger:    opts.Logger,
		onInvalid: opts.OnInvalid,
		decoded:   new(decodedCache),

		waitReplicas: opts.WaitReplicas,
		waitTimeout:  cmp.Or(opts.WaitTimeout, DefaultWaitTimeout),
	}
}

// Key returns the stream key.
func (r *Redis) Key() string { return r.key }

// Retention returns the approximate number of entries appends trim the stream to (0: no trimming).
func (r *Redis) Retention() int64 { return r.retention }

// Ping checks that the server holding the log's key answers, for readiness probes (on Redis
// Cluster: the master of the log's slot, not just any node).
func (r *Redis) Ping(ctx context.Context) error {
	c, err := r.primary(ctx)
	if err == nil {
		err = c.Ping(ctx).Err()
	}
	if err != nil {
		return r.primaryFail(ctx, "ping", err)
	}
	return nil
}

// Append adds drafts in one script (all or none) and returns their IDs in input order. The
// script is sent once to the server holding the key and followed by WAIT when
// RedisOptions.WaitReplicas says so (see runOnPrimary). Zero drafts is a no-op that does not
// contact the server.
func (r *Redis) Append(ctx context.Context, drafts []event.Draft) ([]event.ID, error) {
	if len(drafts) == 0 {
		return nil, nil
	}
	args := make([]any, 0, 1+len(drafts))
	args = append(args, r.retention)
	for _, d := range drafts {
		args = append(args, d.Payload())
	}
	res, err := r.runOnPrimary(ctx, "append", appendScript, []string{r.key}, args...)
	if err != nil {
		return nil, err
	}
	raw, err := res.StringSlice()
	if err == nil && len(raw) != len(drafts) {
		err = fmt.Errorf("%d ids for %d events", len(raw), len(drafts))
	}
	if err != nil {
		return nil, fmt.Errorf("redis append: %w: unexpected reply: %w", streams.ErrUnavailable, err)
	}
	ids := make([]event.ID, len(raw))
	for i, s := range raw {
		if ids[i], err = event.ParseID(s); err != nil {
			return nil, fmt.Errorf("redis append: %w: unexpected XADD reply: %w", streams.ErrUnavailable, err)
		}
	}
	return ids, nil
}

// Read returns up to limit valid events with ID > after, with the stream's bounds, both read in
// one MULTI/EXEC (XINFO STREAM + XRANGE) so that they are consistent. A missing key is an empty
// log with zero bounds. Invalid entries are skipped and reported (see RedisOptions.OnInvalid);
// Page.Next is the last entry examined, valid or not, or after when none was.
func (r *Redis) Read(ctx context.Context, after event.ID, limit int) (streams.Page, error) {
	page := streams.Page{Next: after}
	maxID := event.ID{MS: ^uint64(0), Seq: ^uint64(0)}
	readRange := limit > 0 && after != maxID // nothing can follow the largest ID
	var (
		info   *redis.XInfoStreamCmd
		rng    *redis.XMessageSliceCmd
		before *redis.XMessageSliceCmd // the last entry at or before after: is after held?
	)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		info = p.XInfoStream(ctx, r.key)
		if !after.IsZero() {
			before = p.XRevRangeN(ctx, r.key, after.String(), "-", 1)
		}
		if readRange {
			start := "-"
			if !after.IsZero() {
				start = "(" + after.String()
			}
			rng = p.XRangeN(ctx, r.key, start, "+", int64(limit))
		}
		return nil
	})
	if err != nil {
		if isNoSuchKey(info.Err()) && (rng == nil || rng.Err() == nil) {
			return page, nil // no stream yet: empty log, zero bounds
		}
		return streams.Page{Next: after}, redisFail(ctx, "read", err)
	}
	b, err := boundsOf(info.Val())
	if err != nil {
		return streams.Page{Next: after}, fmt.Errorf("redis read: %w: %w", streams.ErrUnavailable, err)
	}
	page.Bounds = b
	if before != nil {
		page.Gone, page.Before = gone(b, after, before.Val())
	}
	if rng == nil {
		return page, nil
	}
	if err := r.decode(&page, rng.Val()); err != nil {
		return streams.Page{Next: after}, fmt.Errorf("redis read: %w: %w", streams.ErrUnavailable, err)
	}
	return page, nil
}

// Bounds returns what the stream holds now (XINFO STREAM); zero Bounds when the key does not
// exist.
func (r *Redis) Bounds(ctx context.Context) (streams.Bounds, error) {
	info, err := r.client.XInfoStream(ctx, r.key).Result()
	switch {
	case isNoSuchKey(err):
		return streams.Bounds{}, nil
	case err != nil:
		return streams.Bounds{}, redisFail(ctx, "bounds", err)
	}
	b, err := boundsOf(info)
	if err != nil {
		return streams.Bounds{}, fmt.Errorf("redis bounds: %w: %w", streams.ErrUnavailable, err)
	}
	return b, nil
}

// Tail waits in XREAD BLOCK on the tail client until an entry after after exists, then reads the
// page with Read, so that it carries bounds consistent with its events: the hub's reader needs them
// to notice a log that restarted empty and was appended to before it looked. The wait is bounded by
// the configured block and by ctx's deadline (less a margin, so the server's timeout reply arrives
// before the socket deadline); a timeout returns an empty page with Next == after and nil error. A
// cancelled ctx is noticed between calls, at the latest after one block. Invalid entries are
// skipped and reported as in Read, and Next moves past them.
func (r *Redis) Tail(ctx context.Context, after event.ID, limit int) (streams.Page, error) {
	page := streams.Page{Next: after}
	if err := ctx.Err(); err != nil {
		return page, err
	}
	block := r.block
	if dl, ok := ctx.Deadline(); ok {
		block = min(block, time.Until(dl)-deadlineMargin)
	}
	if block < time.Millisecond { // BLOCK 0 would mean forever
		return page, ctx.Err()
	}
	if limit <= 0 {
		limit = 1
	}
	wait := ctx
	if _, ok := ctx.Deadline(); !ok {
		// With ContextTimeoutEnabled the socket deadline follows the context; without one a
		// frozen server would hold the reader (and a shutdown) for block plus the read timeout.
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, block+time.Second)
		defer cancel()
	}
	// COUNT 1: the wait only learns that something follows; Read fetches the page.
	err := r.tail.XRead(wait, &redis.XReadArgs{
		Streams: []string{r.key, after.String()},
		Count:   1,
		Block:   block,
	}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return page, nil
	case err != nil:
		return page, redisFail(ctx, "tail", err)
	}
	return r.Read(ctx, after, limit)
}

// decode appends the valid events of msgs to page and advances page.Next past every entry.
func (r *Redis) decode(page *streams.Page, msgs []redis.XMessage) error {
	if len(msgs) > 0 {
		page.Events = make([]*event.Event, 0, len(msgs))
	}
	for _, m := range msgs {
		id, err := event.ParseID(m.ID)
		if err != nil {
			return fmt.Errorf("unexpected entry id: %w", err)
		}
		page.Next = id
		raw, ok := m.Values[entryField].(string)
		if !ok {
			r.invalid(id, fmt.Errorf("%w: stream entry has no %q field", event.ErrInvalidEvent, entryField))
			continue
		}
		ev, err := r.decoded.decode(id, raw)
		if err != nil {
			r.invalid(id, err)
			continue
		}
		page.Events = append(page.Events, ev)
	}
	return nil
}

func (r *Redis) invalid(id event.ID, err error) {
	if r.logger != nil {
		r.logger.Warn("skipping invalid stream entry", "stream", r.key, "id", id.String(), "error", err)
	}
	if r.onInvalid != nil {
		r.onInvalid(id, err)
	}
}

// boundsOf extracts the log bounds from XINFO STREAM. MaxDeleted is derived from entries-added
// and First, since trimming does not move max-deleted-entry-id: a safe upper bound of the trimmed
// ids (docs/architecture.md#vouching-for-a-position).
func boundsOf(info *redis.XInfoStream) (streams.Bounds, error) {
	var b streams.Bounds
	for _, f := range []struct {
		dst *event.ID
		s   string
	}{
		{&b.First, info.FirstEntry.ID},
		{&b.Last, info.LastGeneratedID},
		{&b.MaxDeleted, info.MaxDeletedEntryID},
	} {
		if f.s == "" {
			continue
		}
		id, err := event.ParseID(f.s)
		if err != nil {
			return streams.Bounds{}, fmt.Errorf("unexpected XINFO STREAM reply: %w", err)
		}
		*f.dst = id
	}
	b.Trimmed = info.EntriesAdded > info.Length || !b.MaxDeleted.IsZero()
	if info.EntriesAdded > info.Length {
		trimmed := b.Last
		if info.Length > 0 {
			trimmed = b.First.Prev()
		}
		if b.MaxDeleted.Less(trimmed) {
			b.MaxDeleted = trimmed
		}
	}
	return b, nil
}

// gone reports whether pos is missing from a stream with bounds b although the stream covers it
// (pos within [First, Last]) and never deleted it (pos after MaxDeleted, which counts trimming):
// an entry lost in a failover. last is XREVRANGE pos - COUNT 1, the entry at or before pos; held
// is the entry before the lost stretch.
func gone(b streams.Bounds, pos event.ID, last []redis.XMessage) (missing bool, held event.ID) {
	if b.First.IsZero() || pos.Less(b.First) || b.Last.Less(pos) || !b.MaxDeleted.Less(pos) {
		return false, event.ID{}
	}
	if len(last) == 0 {
		return true, b.First.Prev()
	}
	id, err := event.ParseID(last[0].ID)
	if err != nil || id == pos {
		return false, event.ID{}
	}
	return true, id
}

// isNoSuchKey reports whether err is XINFO STREAM's reply for a missing key.
func isNoSuchKey(err error) bool {
	var rerr redis.Error
	return err != nil && errors.As(err, &rerr) && strings.Contains(strings.ToLower(rerr.Error()), "no such key")
}
