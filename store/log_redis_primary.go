package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/streams"
)

// ErrNotReplicated is wrapped (with streams.ErrUnavailable) by a write that the primary applied
// but fewer replicas than RedisOptions.WaitReplicas acknowledged in time: a failover may still
// lose it. The outcome counts as unknown: a retry with the same Idempotency-Key replays the
// receipt once it is replicated, and never appends twice.
var ErrNotReplicated = errors.New("not acknowledged by enough replicas")

// DefaultWaitTimeout bounds WAIT when RedisOptions.WaitTimeout is zero.
const DefaultWaitTimeout = time.Second

// waitMargin is kept between WAIT's own timeout and the caller's deadline, so that WAIT's reply
// (a count) arrives rather than a socket timeout.
const waitMargin = 50 * time.Millisecond

// luaAppend returns the Lua that appends the payloads ARGV[first..] to the stream KEYS[1],
// trimmed to about ARGV[1] entries (0: no trimming), and leaves their ids in the table ids.
func luaAppend(first int) string {
	return fmt.Sprintf(`
local ids = {}
local maxlen = tonumber(ARGV[1])
for i = %d, #ARGV do
  if maxlen > 0 then
    ids[#ids+1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'event', ARGV[i])
  else
    ids[#ids+1] = redis.call('XADD', KEYS[1], '*', 'event', ARGV[i])
  end
end
`, first)
}

// appendScript appends the payloads ARGV[2..] to the stream KEYS[1], trimmed to about ARGV[1]
// entries (0: no trimming), and returns their ids. A script is atomic like MULTI/EXEC, and it is
// one command, which runOnPrimary can pipeline with WAIT.
var appendScript = redis.NewScript(luaAppend(2) + "return ids\n")

// runOnPrimary runs script on the server that holds the log's key, followed, when the log waits
// for replicas, by WAIT in the same pipeline: on the same connection, which is what WAIT counts
// replicas for (every write of its connection). op names the operation in errors.
//
// On one Redis or Sentinel that server is the client's; on Redis Cluster it is the master of the
// key's slot, reached through that node's own client. Either way the script is sent once:
// go-redis's cluster client re-sends a command whose reply was lost (EOF, timeout) to the same or
// another node, which for an append would add the events twice, and it could send WAIT to another
// node than the script. A failure on the cluster (the master gone, MOVED after a failover) asks
// the cluster client to reload the slot map in the background, so that a retry finds the new
// master.
func (r *Redis) runOnPrimary(ctx context.Context, op string, script *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	client, err := r.primary(ctx)
	if err != nil {
		return nil, r.primaryFail(ctx, op, err)
	}
	timeout := r.waitTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl)-waitMargin)
	}
	timeout = max(timeout, time.Millisecond) // WAIT 0 would wait forever
	run := func(eval func(p redis.Pipeliner) *redis.Cmd) (res, wait *redis.Cmd) {
		_, _ = client.Pipelined(ctx, func(p redis.Pipeliner) error {
			res = eval(p)
			if r.waitReplicas > 0 {
				wait = p.Do(ctx, "wait", r.waitReplicas, timeout.Milliseconds())
			}
			return nil
		})
		return res, wait
	}
	res, wait := run(func(p redis.Pipeliner) *redis.Cmd { return script.EvalSha(ctx, p, keys, args...) })
	if redis.HasErrorPrefix(res.Err(), "NOSCRIPT") {
		// Not run (a new master, a restart): send the script itself. The WAIT above covered
		// nothing of ours.
		res, wait = run(func(p redis.Pipeliner) *redis.Cmd { return script.Eval(ctx, p, keys, args...) })
	}
	if err := res.Err(); err != nil {
		return nil, r.primaryFail(ctx, op, err)
	}
	if wait == nil {
		return res, nil
	}
	n, err := wait.Int64()
	if err != nil {
		return nil, r.primaryFail(ctx, op, err)
	}
	if n < int64(r.waitReplicas) {
		return nil, fmt.Errorf("redis %s: %w: %w: %d of %d replicas acknowledged within %s", op, streams.ErrUnavailable,
			ErrNotReplicated, n, r.waitReplicas, timeout)
	}
	return res, nil
}

// primary returns the client of the server that holds the log's key.
func (r *Redis) primary(ctx context.Context) (*redis.Client, error) {
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		return c.MasterForKey(ctx, r.key)
	case *redis.Client:
		return c, nil
	default:
		return nil, fmt.Errorf("unsupported Redis client %T (want *redis.Client or *redis.ClusterClient)", r.client)
	}
}

// primaryFail wraps err as redisFail does and, on a cluster, schedules a reload of the slot map.
func (r *Redis) primaryFail(ctx context.Context, op string, err error) error {
	if c, ok := r.client.(*redis.ClusterClient); ok {
		c.ReloadState(ctx) // lazy: coalesced, in the background
	}
	return redisFail(ctx, op, err)
}
