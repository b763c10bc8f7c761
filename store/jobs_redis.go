package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/jobs"
)

var _ jobs.Store = (*RedisJobs)(nil)

// swapScript is a compare-and-set on a state hash {last, state}: it writes only if the stored
// last event id is still ARGV[1] (missing counts as ""), and refreshes the TTL (ARGV[4] ms; 0
// keeps the key forever).
var swapScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'last') or ''
if cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'last', ARGV[2], 'state', ARGV[3])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
`)

// setMaxScript sets KEYS[1] to ARGV[1] unless it already holds a later position (ms and seq in
// ARGV[2], ARGV[3]).
var setMaxScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local ms, seq = string.match(cur, '^(%d+)-(%d+)$')
  if ms and (tonumber(ms) > tonumber(ARGV[2]) or (tonumber(ms) == tonumber(ARGV[2]) and tonumber(seq) >= tonumber(ARGV[3]))) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
`)

// RedisJobs keeps folded job state in Redis, shared by every instance: one hash per job
// (prefix+"job:<id>", expiring ttl after its last update), one for the queue, and the folded
// position. Safe for concurrent use.
type RedisJobs struct {
	client redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisJobs returns a job state store under prefix.
func NewRedisJobs(client redis.UniversalClient, prefix string, ttl time.Duration) *RedisJobs {
	return &RedisJobs{client: client, prefix: prefix, ttl: ttl}
}

func (r *RedisJobs) get(ctx context.Context, key string, v any) (bool, error) {
	raw, err := r.client.HGet(ctx, key, "state").Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, redisFail(ctx, "job state read", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("job state %s: %w", key, err)
	}
	return true, nil
}

func (r *RedisJobs) swap(ctx context.Context, key, prev, last string, v any, ttl time.Duration) (bool, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	n, err := swapScript.Run(ctx, r.client, []string{key}, prev, last, raw, ttl.Milliseconds()).Int()
	if err != nil {
		return false, redisFail(ctx, "job state write", err)
	}
	return n == 1, nil
}

// Job returns a job's state.
func (r *RedisJobs) Job(ctx context.Context, id string) (jobs.State, bool, error) {
	var st jobs.State
	ok, err := r.get(ctx, r.prefix+"job:"+id, &st)
	return st, ok, err
}

// SwapJob stores next if the stored last event id is still prev.
func (r *RedisJobs) SwapJob(ctx context.Context, prev string, next jobs.State) (bool, error) {
	return r.swap(ctx, r.prefix+"job:"+next.JobID, prev, next.LastEventID, next, r.ttl)
}

// Queue returns the latest queue state.
func (r *RedisJobs) Queue(ctx context.Context) (jobs.QueueState, bool, error) {
	var st jobs.QueueState
	ok, err := r.get(ctx, r.prefix+"queue", &st)
	return st, ok, err
}

// SwapQueue stores next if the stored last event id is still prev.
func (r *RedisJobs) SwapQueue(ctx context.Context, prev string, next jobs.QueueState) (bool, error) {
	return r.swap(ctx, r.prefix+"queue", prev, next.LastEventID, next, 0)
}

// Cursor returns the folded position.
func (r *RedisJobs) Cursor(ctx context.Context) (event.ID, error) {
	v, err := r.client.Get(ctx, r.prefix+"jobs:cursor").Result()
	if errors.Is(err, redis.Nil) {
		return event.ID{}, nil
	}
	if err != nil {
		return event.ID{}, redisFail(ctx, "job cursor read", err)
	}
	return event.ParseID(v)
}

// SetCursor records the folded position; it never moves the cursor back.
func (r *RedisJobs) SetCursor(ctx context.Context, id event.ID) error {
	err := setMaxScript.Run(ctx, r.client, []string{r.prefix + "jobs:cursor"}, id.String(), id.MS, id.Seq).Err()
	if err != nil {
		return redisFail(ctx, "job cursor write", err)
	}
	return nil
}
