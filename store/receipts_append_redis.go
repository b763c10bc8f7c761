package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/streams"
)

var _ streams.AtomicReceipts = (*RedisReceipts)(nil)

// appendOnceScript appends the payloads and stores the receipt in one atomic step.
// KEYS[1] the stream, KEYS[2] the receipt; ARGV[1] MAXLEN (0: no trimming), ARGV[2] the receipt's
// TTL in ms, ARGV[3..] the payloads. The receipt has streams.ReceiptBody's form.
var appendOnceScript = redis.NewScript(`
local ids = {}
local maxlen = tonumber(ARGV[1])
for i = 3, #ARGV do
  if maxlen > 0 then
    ids[#ids+1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'event', ARGV[i])
  else
    ids[#ids+1] = redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
  end
end
redis.call('SET', KEYS[2], '{"ids":["' .. table.concat(ids, '","') .. '"]}', 'PX', ARGV[2])
return ids
`)

// AppendOnce appends drafts to log and stores their receipt under key in one Lua script, when log
// is a Redis log (on the same Redis as these receipts); otherwise ok is false and nothing is done.
func (r *RedisReceipts) AppendOnce(ctx context.Context, log streams.Log, key string, drafts []streams.Draft, ttl time.Duration) ([]streams.ID, bool, error) {
	rl, ok := log.(*Redis)
	if !ok || len(drafts) == 0 {
		return nil, false, nil
	}
	args := make([]any, 0, 2+len(drafts))
	args = append(args, max(rl.retention, 0), ttl.Milliseconds())
	for _, d := range drafts {
		args = append(args, d.Payload())
	}
	raw, err := appendOnceScript.Run(ctx, r.client, []string{rl.key, r.key(key)}, args...).StringSlice()
	if err != nil {
		return nil, true, redisFail(ctx, "append with receipt", err)
	}
	ids := make([]streams.ID, len(raw))
	for i, s := range raw {
		if ids[i], err = streams.ParseID(s); err != nil {
			return nil, true, err
		}
	}
	return ids, true, nil
}
