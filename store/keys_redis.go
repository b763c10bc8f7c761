package store

import "strings"

// RedisKeys is the Redis key layout derived from the stream key (docs/cluster.md has the table).
//
// On one Redis or Sentinel every name is the stream key or starts with it plus ":", as it always
// was. On Redis Cluster a MULTI or a script may only touch keys of one hash slot, so the layout
// splits in two:
//   - Log and LogPrefix: the stream and the keys written in one script with it (idempotency
//     receipts) share the stream key's hash tag, so they live in the log's slot;
//   - Prefix: everything that needs no atomicity with the log (rate-limit buckets, connection
//     leases, job state, webhook endpoints) starts without a hash tag, so each key hashes on its
//     own name (or on a tag of its own further on, as webhook endpoints do) and the keys spread
//     over the masters.
type RedisKeys struct {
	// Log is the stream key.
	Log string
	// LogPrefix starts the keys that must share the log's slot.
	LogPrefix string
	// Prefix starts the keys that need not.
	Prefix string
}

// NewRedisKeys returns the layout for streamKey. Without cluster every field derives from
// streamKey unchanged. With cluster, Log is streamKey when it has a hash tag already (a
// non-empty {…}), else "{" + streamKey + "}"; Prefix is streamKey without its braces, so that it
// carries no tag.
func NewRedisKeys(streamKey string, cluster bool) RedisKeys {
	if !cluster {
		return RedisKeys{Log: streamKey, LogPrefix: streamKey + ":", Prefix: streamKey + ":"}
	}
	log := streamKey
	if !hasHashTag(streamKey) {
		log = "{" + streamKey + "}"
	}
	return RedisKeys{Log: log, LogPrefix: log + ":", Prefix: strings.NewReplacer("{", "", "}", "").Replace(streamKey) + ":"}
}

// hasHashTag reports whether Redis Cluster hashes key on a tag: the text between its first "{"
// and the first "}" after it, when that text is not empty.
func hasHashTag(key string) bool {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return false
	}
	end := strings.IndexByte(key[open+1:], '}')
	return end > 0
}
