// Package rkeys builds every Redis key hookrelay uses, all under one prefix
// ("hookrelay:" by default; tests and tenants set their own). Each key carries a {…}
// hash tag so a Redis Cluster keeps the keys of one event or delivery on one slot.
package rkeys

// DefaultPrefix is the key prefix of SPEC §7.
const DefaultPrefix = "hookrelay:"

// Keyspace builds keys under Prefix.
type Keyspace struct {
	Prefix string // e.g. "hookrelay:"; empty means DefaultPrefix
}

func (k Keyspace) p() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return k.Prefix
}

// Seen is the marker that an event was durably published (SPEC §2).
// STRING: the JetStream sequence of the event's message; TTL 7 days.
func (k Keyspace) Seen(eventID string) string { return k.p() + "{" + eventID + "}:seen" }

// EventSeq locates an event by id for the admin API.
// STRING: the HOOKRELAY_EVENTS sequence of the event; TTL the events' max age.
func (k Keyspace) EventSeq(eventID string) string { return k.p() + "ev:{" + eventID + "}" }

// EventsByReference finds the events of one payment (the merchant's reference_id).
// ZSET: event sequence → stored unix ms; TTL the events' max age, renewed on each add.
func (k Keyspace) EventsByReference(referenceID string) string {
	return k.p() + "ref:{" + referenceID + "}"
}

// The retry schedule's keys all share the one hash tag {sched}: its index and lease
// set are global, and a Lua script may only touch keys of one Cluster slot, so every
// other schedule key sits on that slot too. (The cost: the schedule lives on one shard.)
//
// A live delivery (pending, leased, queued or held) lives in a bucket, not in keys of its
// own: its 12-character key (schedule.slotKey: a hash of the delivery id) names the
// bucket (first 3 characters, 32,768 buckets) and its field in the bucket (the other
// 9). Buckets stay small enough for Redis's compact listpack encoding (128 entries at
// 4 million live deliveries), which is what keeps a pending retry near 140 bytes.
// Finished deliveries (done or dead) move to a marker of their own with a TTL.

// SchedPrefix is what every schedule key starts with (Lua scripts that walk the index
// build bucket keys from it: SchedPrefix + "z:" + bucket, and so on).
func (k Keyspace) SchedPrefix() string { return k.p() + "{sched}:" }

// SchedIndex is the index of buckets with pending deliveries.
// ZSET: bucket name → the earliest due time in the bucket, unix ms.
func (k Keyspace) SchedIndex() string { return k.SchedPrefix() + "q" }

// SchedLeased is the set of deliveries claimed and not yet handed to JetStream.
// ZSET: delivery key (bucket + field) → lease expiry, unix ms.
func (k Keyspace) SchedLeased() string { return k.SchedPrefix() + "l" }

// SchedHeld holds the deliveries held for one group (an endpoint that is disabled).
// ZSET: delivery key (bucket + field) → when it was held, unix ms.
func (k Keyspace) SchedHeld(group string) string { return k.SchedPrefix() + "h:" + group }

// SchedHeldGroups names the groups that have held deliveries (so a group whose
// endpoint was deleted while nothing ran can still be found and released).
// SET: group names.
func (k Keyspace) SchedHeldGroups() string { return k.SchedPrefix() + "hg" }

// SchedDead is the set of dead deliveries not revived since (the open dead letters).
// ZSET: delivery id → when it died, unix ms.
func (k Keyspace) SchedDead() string { return k.SchedPrefix() + "d" }

// SchedBucketDue holds a bucket's pending deliveries.
// ZSET (listpack): field → due time, unix ms.
func (k Keyspace) SchedBucketDue(bucket string) string { return k.SchedPrefix() + "z:" + bucket }

// SchedBucketState holds a bucket's live deliveries.
// HASH (listpack): field → "state|attempt|first ms|payload", state p (pending),
// l (leased), q (queued: its job is on JetStream), h (held until its group is
// released).
func (k Keyspace) SchedBucketState(bucket string) string { return k.SchedPrefix() + "s:" + bucket }

// SchedBucketIDs maps a bucket's fields back to delivery ids.
// HASH (listpack): field → delivery id.
func (k Keyspace) SchedBucketIDs(bucket string) string { return k.SchedPrefix() + "i:" + bucket }

// SchedFinished is the marker of a finished delivery.
// HASH: s x (done) or d (dead), a attempt, f first attempt's time unix ms, p payload
// (dead only, for a replay). TTL: the store's done TTL (default 30 days).
func (k Keyspace) SchedFinished(id string) string { return k.SchedPrefix() + "d:" + id }

// SchedAttempts is one delivery's attempt log.
// LIST: opaque attempt records, oldest first, trimmed to the newest 100; the same TTL
// as the finished marker once finished.
func (k Keyspace) SchedAttempts(id string) string { return k.SchedPrefix() + "a:" + id }
