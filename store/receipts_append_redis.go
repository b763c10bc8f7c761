package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/streams"
)

var _ streams.AtomicReceipts = (*RedisReceipts)(nil)

// appendOnceScript looks the receipt up and, when the key is free, appends the payloads and
// stores the receipt, in one atomic step. KEYS[1] the stream, KEYS[2] the receipt; ARGV[1] MAXLEN
// (0: no trimming), ARGV[2] the receipt's TTL in ms, ARGV[3..] the payloads. It returns
// {"replay", <receipt>}, {"inflight"} (a Claim holds the key: "") or {"new", <id>...}. The receipt
// has streams.ReceiptBody's form.
var appendOnceScript = redis.NewScript(`
local prior = redis.call('GET', KEYS[2])
if prior then
  if prior == '' then return {'inflight'} end
  -- Rewritten unchanged: a write, so that a WAIT after this script on the same connection
  -- covers the receipt (and the append before it), which another connection wrote.
  redis.call('SET', KEYS[2], prior, 'KEEPTTL')
  return {'replay', prior}
end
` + luaAppend(3) + `
redis.call('SET', KEYS[2], '{"ids":["' .. table.concat(ids, '","') .. '"]}', 'PX', ARGV[2])
table.insert(ids, 1, 'new')
return ids
`)

// AppendOnce looks key up and, when it is free, appends drafts to log and stores their receipt
// under key, in one Lua script, when log is a Redis log (on the same Redis as these receipts, and
// on Redis Cluster with a prefix in the log's slot: RedisKeys.LogPrefix); otherwise ok is false and
// nothing is done. The script is sent once, to the server holding the log, and followed by the
// log's WAIT for replicas, a replay too (see Redis.runOnPrimary): a 201 that replays a receipt is as
// durable as the first. A key holding a receipt returns it as prior; a key
// claimed by a request in flight returns an error wrapping streams.ErrKeyInFlight. A failure
// wraps streams.ErrUnavailable or the context's error; then the outcome is unknown, and a retry
// with the same key resolves it (replay or append, never both).
func (r *RedisReceipts) AppendOnce(ctx context.Context, log streams.Log, key string, drafts []event.Draft, ttl time.Duration) ([]event.ID, []byte, bool, error) {
	rl, ok := log.(*Redis)
	if !ok || len(drafts) == 0 {
		return nil, nil, false, nil
	}
	args := make([]any, 0, 2+len(drafts))
	args = append(args, rl.Retention(), ttl.Milliseconds())
	for _, d := range drafts {
		args = append(args, d.Payload())
	}
	res, err := rl.runOnPrimary(ctx, "append with receipt", appendOnceScript, []string{rl.Key(), r.key(key)}, args...)
	if err != nil {
		return nil, nil, true, err
	}
	raw, err := res.StringSlice()
	if err != nil {
		return nil, nil, true, fmt.Errorf("redis append with receipt: %w: %w", streams.ErrUnavailable, err)
	}
	switch {
	case len(raw) == 1 && raw[0] == "inflight":
		return nil, nil, true, fmt.Errorf("redis append with receipt: %w", streams.ErrKeyInFlight)
	case len(raw) == 2 && raw[0] == "replay":
		return nil, []byte(raw[1]), true, nil
	case len(raw) != len(drafts)+1 || raw[0] != "new":
		return nil, nil, true, fmt.Errorf("redis append with receipt: %w: unexpected reply %q", streams.ErrUnavailable, raw)
	}
	ids := make([]event.ID, len(drafts))
	for i, s := range raw[1:] {
		if ids[i], err = event.ParseID(s); err != nil {
			return nil, nil, true, fmt.Errorf("redis append with receipt: %w: %w", streams.ErrUnavailable, err)
		}
	}
	return ids, nil, true, nil
}
