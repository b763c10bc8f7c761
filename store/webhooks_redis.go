package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventgate/eventgate/event"
	"github.com/eventgate/eventgate/webhooks"
)

var _ webhooks.Store = (*RedisWebhooks)(nil)

// RedisWebhooks keeps endpoints and their delivery state in Redis, shared by every instance.
// Keys (each endpoint's keys share the hash tag {<id>}, so on Redis Cluster every transaction and
// script here touches one slot, and endpoints spread over the masters; prefix must carry no tag
// of its own, see RedisKeys.Prefix):
//
//	<prefix>wh:ids              ZSET  endpoint id → creation time (ms)
//	<prefix>wh:{<id>}           HASH  url, topics, types, description, secret, enabled, reason, created
//	<prefix>wh:{<id>}:cursor    STRING last position handed off
//	<prefix>wh:{<id>}:lease     STRING owner instance, with PX expiry
//	<prefix>wh:{<id>}:retries   ZSET  event id → due time (ms)
//	<prefix>wh:{<id>}:retry     HASH  event id → {"attempt":n,"body":<envelope>}
//	<prefix>wh:{<id>}:log       LIST  delivery records, newest first
//
// The cursor and retry operations are Lua scripts that first check the lease (fencing), so an
// instance whose lease lapsed cannot move state that another instance now owns. Safe for
// concurrent use.
type RedisWebhooks struct {
	client redis.UniversalClient
	prefix string
}

// NewRedisWebhooks returns the registry stored under prefix.
func NewRedisWebhooks(client redis.UniversalClient, prefix string) *RedisWebhooks {
	return &RedisWebhooks{client: client, prefix: prefix}
}

func (r *RedisWebhooks) idsKey() string             { return r.prefix + "wh:ids" }
func (r *RedisWebhooks) hookKey(id string) string   { return r.prefix + "wh:{" + id + "}" }
func (r *RedisWebhooks) key(id, part string) string { return r.hookKey(id) + ":" + part }
func (r *RedisWebhooks) allKeys(id string) []string {
	return []string{r.hookKey(id), r.key(id, "cursor"), r.key(id, "lease"), r.key(id, "retries"), r.key(id, "retry"), r.key(id, "log")}
}

// registerScript adds an endpoint id to the registry unless it holds limit ids already (limit 0:
// no limit). It touches the one ids key, so it runs on Redis Cluster too. KEYS[1] ids; ARGV
// score, id, limit. Returns 1 when added, 0 when full.
var registerScript = redis.NewScript(`
local limit = tonumber(ARGV[3])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// CreateWebhook stores w with its cursor, unless limit > 0 endpoints exist already. The endpoint's
// own keys are written first and its id added to the registry last, counted and added in one
// script, so the limit holds across instances; until then (and if the script refuses, after which
// the keys are deleted again) the endpoint is invisible: Webhooks lists only registered ids. A
// crash between the two steps leaves unlisted keys that count for nothing.
func (r *RedisWebhooks) CreateWebhook(ctx context.Context, w webhooks.Webhook, cursor event.ID, limit int) error {
	topics, _ := json.Marshal(nonNil(w.Topics))
	types, _ := json.Marshal(nonNil(w.Types))
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, r.hookKey(w.ID), "url", w.URL, "topics", topics, "types", types, "description", w.Description,
			"secret", w.Secret, "enabled", boolField(w.Enabled), "reason", w.DisabledReason,
			"created", w.CreatedAt.UnixMilli())
		p.Set(ctx, r.key(w.ID, "cursor"), cursor.String(), 0)
		return nil
	})
	if err != nil {
		return redisFail(ctx, "webhook create", err)
	}
	n, err := registerScript.Run(ctx, r.client, []string{r.idsKey()}, w.CreatedAt.UnixMilli(), w.ID, max(limit, 0)).Int()
	if err != nil {
		// The id may or may not be registered: leave the keys, as a lost answer to a single
		// transaction would.
		return redisFail(ctx, "webhook create", err)
	}
	if n == 0 {
		// Nothing is registered either way; keys left by a failed delete are unlisted and uncounted.
		_ = r.client.Del(ctx, r.hookKey(w.ID), r.key(w.ID, "cursor")).Err()
		return tooManyWebhooks(limit)
	}
	return nil
}

// tooManyWebhooks is the refusal of a creation beyond limit.
func tooManyWebhooks(limit int) error {
	return fmt.Errorf("%w: %d exist, the most allowed; delete one first", webhooks.ErrTooMany, limit)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func boolField(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// decodeHook builds a Webhook from its hash fields.
func decodeHook(id string, f map[string]string) (webhooks.Webhook, error) {
	w := webhooks.Webhook{ID: id, URL: f["url"], Description: f["description"], Secret: f["secret"],
		Enabled: f["enabled"] == "1", DisabledReason: f["reason"]}
	if err := json.Unmarshal([]byte(f["topics"]), &w.Topics); err != nil {
		return w, fmt.Errorf("webhook %q: topics: %w", id, err)
	}
	if err := json.Unmarshal([]byte(f["types"]), &w.Types); err != nil {
		return w, fmt.Errorf("webhook %q: types: %w", id, err)
	}
	ms, _ := strconv.ParseInt(f["created"], 10, 64)
	w.CreatedAt = time.UnixMilli(ms).UTC()
	return w, nil
}

// Webhook returns one endpoint.
func (r *RedisWebhooks) Webhook(ctx context.Context, id string) (webhooks.Webhook, error) {
	f, err := r.client.HGetAll(ctx, r.hookKey(id)).Result()
	if err != nil {
		return webhooks.Webhook{}, redisFail(ctx, "webhook get", err)
	}
	if len(f) == 0 {
		return webhooks.Webhook{}, fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	return decodeHook(id, f)
}

// Webhooks returns every endpoint, oldest first.
func (r *RedisWebhooks) Webhooks(ctx context.Context) ([]webhooks.Webhook, error) {
	ids, err := r.client.ZRange(ctx, r.idsKey(), 0, -1).Result()
	if err != nil {
		return nil, redisFail(ctx, "webhook list", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HGetAll(ctx, r.hookKey(id))
		}
		return nil
	}); err != nil {
		return nil, redisFail(ctx, "webhook list", err)
	}
	out := make([]webhooks.Webhook, 0, len(ids))
	for i, id := range ids {
		f := cmds[i].Val()
		if len(f) == 0 {
			continue // deleted meanwhile
		}
		w, err := decodeHook(id, f)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// setEnabledScript updates the flag only if the endpoint exists. KEYS[1] hash; ARGV enabled, reason.
var setEnabledScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'enabled', ARGV[1], 'reason', ARGV[2])
return 1
`)

// SetWebhookEnabled turns delivery on or off.
func (r *RedisWebhooks) SetWebhookEnabled(ctx context.Context, id string, enabled bool, reason string) (webhooks.Webhook, error) {
	if enabled {
		reason = ""
	}
	n, err := setEnabledScript.Run(ctx, r.client, []string{r.hookKey(id)}, boolField(enabled), reason).Int()
	if err != nil {
		return webhooks.Webhook{}, redisFail(ctx, "webhook enable", err)
	}
	if n == 0 {
		return webhooks.Webhook{}, fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	return r.Webhook(ctx, id)
}

// DeleteWebhook removes the endpoint and everything kept for it. Its id leaves the registry
// first, so it is no longer listed nor counted; then its own keys go in one transaction. The two
// steps are separate because on Redis Cluster a transaction cannot span the registry's slot and
// the endpoint's (its keys share the tag {<id>}). A crash between them leaves unlisted keys that
// count for nothing, as a failed CreateWebhook does.
func (r *RedisWebhooks) DeleteWebhook(ctx context.Context, id string) error {
	if err := r.client.ZRem(ctx, r.idsKey(), id).Err(); err != nil {
		return redisFail(ctx, "webhook delete", err)
	}
	var del *redis.IntCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.Del(ctx, r.hookKey(id))
		p.Del(ctx, r.allKeys(id)[1:]...)
		return nil
	})
	if err != nil {
		return redisFail(ctx, "webhook delete", err)
	}
	if del.Val() == 0 {
		return fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	return nil
}

// acquireHookScript takes or renews the lease. KEYS[1] lease, KEYS[2] hash; ARGV owner, ttl ms.
var acquireHookScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseHookScript deletes the lease if owned. KEYS[1] lease; ARGV owner.
var releaseHookScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

// AcquireWebhook takes or renews the lease.
func (r *RedisWebhooks) AcquireWebhook(ctx context.Context, id, owner string, ttl time.Duration) (bool, error) {
	n, err := acquireHookScript.Run(ctx, r.client, []string{r.key(id, "lease"), r.hookKey(id)}, owner, ttl.Milliseconds()).Int()
	if err != nil {
		return false, redisFail(ctx, "webhook lease", err)
	}
	return n == 1, nil
}

// ReleaseWebhook gives the lease up.
func (r *RedisWebhooks) ReleaseWebhook(ctx context.Context, id, owner string) error {
	if err := releaseHookScript.Run(ctx, r.client, []string{r.key(id, "lease")}, owner).Err(); err != nil {
		return redisFail(ctx, "webhook release", err)
	}
	return nil
}

// WebhookCursor returns the cursor.
func (r *RedisWebhooks) WebhookCursor(ctx context.Context, id string) (event.ID, error) {
	v, err := r.client.Get(ctx, r.key(id, "cursor")).Result()
	if errors.Is(err, redis.Nil) {
		return event.ID{}, fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	if err != nil {
		return event.ID{}, redisFail(ctx, "webhook cursor", err)
	}
	return event.ParseID(v)
}

// advanceScript moves the cursor forward if the lease is held. KEYS[1] lease, KEYS[2] cursor;
// ARGV owner, ms, seq. Returns -1 when the lease is not held.
var advanceScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local cur = redis.call('GET', KEYS[2])
if cur then
  local cms, cseq = string.match(cur, '^(%d+)-(%d+)$')
  cms, cseq = tonumber(cms), tonumber(cseq)
  local ms, seq = tonumber(ARGV[2]), tonumber(ARGV[3])
  if ms < cms or (ms == cms and seq <= cseq) then return 0 end
end
redis.call('SET', KEYS[2], ARGV[2] .. '-' .. ARGV[3])
return 1
`)

func leaseLost(id string) error { return fmt.Errorf("%w: %q", webhooks.ErrLeaseLost, id) }

// AdvanceWebhookCursor moves the cursor forward.
func (r *RedisWebhooks) AdvanceWebhookCursor(ctx context.Context, id, owner string, to event.ID) error {
	n, err := advanceScript.Run(ctx, r.client, []string{r.key(id, "lease"), r.key(id, "cursor")},
		owner, strconv.FormatUint(to.MS, 10), strconv.FormatUint(to.Seq, 10)).Int()
	if err != nil {
		return redisFail(ctx, "webhook cursor", err)
	}
	if n < 0 {
		return leaseLost(id)
	}
	return nil
}

// retryEntry is a retry's stored form; the due time is the zset score.
type retryEntry struct {
	Attempt int             `json:"attempt"`
	Body    json.RawMessage `json:"body"`
}

// scheduleScript queues a retry if the lease is held. KEYS lease, retries, retry; ARGV owner,
// member, due ms, entry.
var scheduleScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
return 1
`)

func (r *RedisWebhooks) queueKeys(id string) []string {
	return []string{r.key(id, "lease"), r.key(id, "retries"), r.key(id, "retry")}
}

// ScheduleRetry queues rt.
func (r *RedisWebhooks) ScheduleRetry(ctx context.Context, id, owner string, rt webhooks.Retry) error {
	entry, err := json.Marshal(retryEntry{Attempt: rt.Attempt, Body: rt.Body})
	if err != nil {
		return fmt.Errorf("webhook retry of %s: %w", rt.EventID, err)
	}
	n, err := scheduleScript.Run(ctx, r.client, r.queueKeys(id), owner, rt.EventID.String(), rt.Due.UnixMilli(), entry).Int()
	if err != nil {
		return redisFail(ctx, "webhook retry", err)
	}
	if n < 0 {
		return leaseLost(id)
	}
	return nil
}

// claimScript takes the earliest due retry and pushes its score to the hold time. KEYS lease,
// retries, retry; ARGV owner, now ms, hold-until ms. Returns -1 without the lease, {} when none
// is due, else {member, entry}.
var claimScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local r = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, 1)
if #r == 0 then return {} end
redis.call('ZADD', KEYS[2], ARGV[3], r[1])
return {r[1], redis.call('HGET', KEYS[3], r[1]) or ''}
`)

// ClaimRetry takes the earliest due retry and hides it until now+hold.
func (r *RedisWebhooks) ClaimRetry(ctx context.Context, id, owner string, now time.Time, hold time.Duration) (webhooks.Retry, bool, error) {
	res, err := claimScript.Run(ctx, r.client, r.queueKeys(id), owner, now.UnixMilli(), now.Add(hold).UnixMilli()).Result()
	if err != nil {
		return webhooks.Retry{}, false, redisFail(ctx, "webhook claim", err)
	}
	if n, ok := res.(int64); ok && n < 0 {
		return webhooks.Retry{}, false, leaseLost(id)
	}
	parts, _ := res.([]any)
	if len(parts) != 2 {
		return webhooks.Retry{}, false, nil
	}
	member, _ := parts[0].(string)
	raw, _ := parts[1].(string)
	eid, err := event.ParseID(member)
	if err != nil {
		return webhooks.Retry{}, false, fmt.Errorf("webhook %q: retry member %q: %w", id, member, err)
	}
	var e retryEntry
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		return webhooks.Retry{}, false, fmt.Errorf("webhook %q: retry %s: %w", id, member, err)
	}
	return webhooks.Retry{EventID: eid, Attempt: e.Attempt, Due: now, Body: e.Body}, true, nil
}

// completeScript removes a retry if the lease is held. KEYS lease, retries, retry; ARGV owner, member.
var completeScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
`)

// CompleteRetry removes a retry.
func (r *RedisWebhooks) CompleteRetry(ctx context.Context, id, owner string, event event.ID) error {
	n, err := completeScript.Run(ctx, r.client, r.queueKeys(id), owner, event.String()).Int()
	if err != nil {
		return redisFail(ctx, "webhook complete", err)
	}
	if n < 0 {
		return leaseLost(id)
	}
	return nil
}

// RetryStats counts queued retries.
func (r *RedisWebhooks) RetryStats(ctx context.Context, id string) (int, time.Time, error) {
	var card *redis.IntCmd
	var first *redis.ZSliceCmd
	if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		card = p.ZCard(ctx, r.key(id, "retries"))
		first = p.ZRangeWithScores(ctx, r.key(id, "retries"), 0, 0)
		return nil
	}); err != nil {
		return 0, time.Time{}, redisFail(ctx, "webhook retry stats", err)
	}
	var next time.Time
	if z := first.Val(); len(z) == 1 {
		next = time.UnixMilli(int64(z[0].Score))
	}
	return int(card.Val()), next, nil
}

// deliveryRecord is a Delivery's stored form.
type deliveryRecord struct {
	EventID  string `json:"e"`
	Attempt  int    `json:"a,omitempty"`
	Outcome  string `json:"o"`
	Status   int    `json:"s,omitempty"`
	Error    string `json:"err,omitempty"`
	Duration int64  `json:"d,omitempty"` // microseconds
	Time     int64  `json:"t"`           // ms
	Next     int64  `json:"n,omitempty"` // ms
	Final    bool   `json:"f,omitempty"`
}

// recordScript appends a record to an existing endpoint's log. KEYS hash, log; ARGV record, size.
var recordScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[2]) - 1)
return 1
`)

// RecordDelivery adds d, keeping the newest DeliveryLogSize records.
func (r *RedisWebhooks) RecordDelivery(ctx context.Context, id string, d webhooks.Delivery) error {
	rec := deliveryRecord{EventID: d.EventID.String(), Attempt: d.Attempt, Outcome: d.Outcome, Status: d.Status,
		Error: d.Error, Duration: d.Duration.Microseconds(), Time: d.Time.UnixMilli(), Final: d.Final}
	if !d.NextAttempt.IsZero() {
		rec.Next = d.NextAttempt.UnixMilli()
	}
	raw, _ := json.Marshal(rec)
	n, err := recordScript.Run(ctx, r.client, []string{r.hookKey(id), r.key(id, "log")}, raw, DeliveryLogSize).Int()
	if err != nil {
		return redisFail(ctx, "webhook record", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	return nil
}

// Deliveries returns up to limit records, newest first.
func (r *RedisWebhooks) Deliveries(ctx context.Context, id string, limit int) ([]webhooks.Delivery, error) {
	var exists *redis.IntCmd
	var list *redis.StringSliceCmd
	if _, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		exists = p.Exists(ctx, r.hookKey(id))
		list = p.LRange(ctx, r.key(id, "log"), 0, int64(limit)-1)
		return nil
	}); err != nil {
		return nil, redisFail(ctx, "webhook deliveries", err)
	}
	if exists.Val() == 0 {
		return nil, fmt.Errorf("%w: %q", webhooks.ErrNotFound, id)
	}
	out := make([]webhooks.Delivery, 0, len(list.Val()))
	for _, raw := range list.Val() {
		var rec deliveryRecord
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			continue
		}
		eid, _ := event.ParseID(rec.EventID)
		d := webhooks.Delivery{EventID: eid, Attempt: rec.Attempt, Outcome: rec.Outcome, Status: rec.Status, Error: rec.Error,
			Duration: time.Duration(rec.Duration) * time.Microsecond, Time: time.UnixMilli(rec.Time).UTC(), Final: rec.Final}
		if rec.Next != 0 {
			d.NextAttempt = time.UnixMilli(rec.Next).UTC()
		}
		out = append(out, d)
	}
	return out, nil
}
