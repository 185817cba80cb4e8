package schedule

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"strconv"

	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hookrelay/hookrelay/internal/redisx"
	"github.com/hookrelay/hookrelay/internal/rkeys"
)

// Limits of the store.
const (
	// MaxClaim bounds the deliveries one Claim or Reclaim call moves.
	MaxClaim = 100
	// MaxAttemptLog bounds a delivery's attempt log; older records are trimmed.
	MaxAttemptLog = 100
	// DefaultDoneTTL is how long a finished delivery's marker and attempt log are kept.
	DefaultDoneTTL = 30 * 24 * time.Hour
	// DefaultKeepDead is StoreConfig.KeepDead's default: the dead letters' default age.
	DefaultKeepDead = 90 * 24 * time.Hour
)

// Errors of the store.
var (
	ErrNotFound = errors.New("schedule: delivery not found")
	ErrInvalid  = errors.New("schedule: invalid argument")
)

// StateName is where a delivery is in its life.
type StateName string

// The states of a delivery. Pending waits for its due time; leased is claimed by one
// scheduler until its lease expires; queued has its attempt's job on JetStream (which
// redelivers it until a worker records the attempt), so it has no expiry; held waits
// for its group (a disabled endpoint) to be released; done and dead are final (dead
// until Revive).
const (
	StatePending StateName = "pending"
	StateLeased  StateName = "leased"
	StateQueued  StateName = "queued"
	StateHeld    StateName = "held" // waits, outside the schedule, until Unhold
	StateDone    StateName = "done"
	StateDead    StateName = "dead"
)

var stateNames = map[string]StateName{"p": StatePending, "l": StateLeased, "q": StateQueued, "h": StateHeld, "x": StateDone, "d": StateDead}

// Delivery is a new delivery for Schedule.
type Delivery struct {
	ID      string    // opaque, e.g. "evt_x:endpoint-1"
	Payload []byte    // opaque, returned by Claim
	First   time.Time // the first attempt's scheduled time: every offset counts from it
	Due     time.Time // when attempt Attempt is due
	Attempt int       // 1-based
	// Queued creates the delivery queued instead of pending: the caller hands the
	// attempt to its workers itself (fan-out's first attempt), and a worker records it.
	Queued bool
}

// Scheduled is what Schedule found or made.
type Scheduled struct {
	Created bool      // false: the id was already known, and nothing changed
	State   StateName // the delivery's state now
	Attempt int       // its attempt number now
	First   time.Time // its first attempt's time (the stored one when not created)
}

// Claimed is a delivery handed to one scheduler by Claim.
type Claimed struct {
	ID      string
	Payload []byte
	Attempt int
	Due     time.Time // when this attempt was due
	First   time.Time
}

// State is a snapshot of one delivery for Get.
type State struct {
	ID      string
	Name    StateName
	Attempt int
	First   time.Time
	Due     time.Time // due time when pending, lease expiry when leased, zero otherwise
	Payload []byte    // nil once done
}

// Outcome is what Fail did.
type Outcome int

// Outcomes of Fail.
const (
	Stale       Outcome = iota // not leased or queued with that attempt: nothing changed
	Rescheduled                // pending again with the next attempt
	Dead                       // the policy is exhausted: dead letter
)

func (o Outcome) String() string {
	switch o {
	case Stale:
		return "stale"
	case Rescheduled:
		return "rescheduled"
	case Dead:
		return "dead"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// FailResult is the outcome of Fail; Attempt and Due are the next attempt's when
// Rescheduled.
type FailResult struct {
	Outcome Outcome
	Attempt int
	Due     time.Time
}

// StoreConfig configures a Store.
type StoreConfig struct {
	Keys    rkeys.Keyspace // zero: prefix "hookrelay:"
	Policy  Policy         // zero: DefaultPolicy()
	DoneTTL time.Duration  // zero: DefaultDoneTTL
	// KeepDead is how long a dead delivery stays in the dead set (what Count reports as
	// open): as long as its dead letter is kept. Zero: DefaultKeepDead.
	KeepDead time.Duration
}

// Validate reports whether c is usable (after defaults).
func (c StoreConfig) Validate() error {
	c = c.withDefaults()
	if err := c.Policy.Validate(); err != nil {
		return err
	}
	if c.DoneTTL < time.Millisecond {
		return fmt.Errorf("schedule: done ttl %v, want >= 1ms", c.DoneTTL)
	}
	if c.KeepDead < time.Millisecond {
		return fmt.Errorf("schedule: keep dead %v, want >= 1ms", c.KeepDead)
	}
	return nil
}

func (c StoreConfig) withDefaults() StoreConfig {
	if c.Policy.Delays == nil && c.Policy.ThenEvery == 0 && c.Policy.GiveUpAfter == 0 {
		c.Policy = DefaultPolicy()
	}
	if c.DoneTTL == 0 {
		c.DoneTTL = DefaultDoneTTL
	}
	if c.KeepDead == 0 {
		c.KeepDead = DefaultKeepDead
	}
	return c
}

// Store keeps delivery state and due times in Redis (the layout is in package rkeys).
// Every change is one Lua script; times are passed in as unix ms. Safe for concurrent
// use by any number of processes. The per-delivery calls of concurrent goroutines
// are coalesced into pipelines; Close stops that.
type Store struct {
	rdb      redis.UniversalClient
	batch    *redisx.Batcher
	keys     rkeys.Keyspace
	policy   Policy
	offsets  []any // the policy's offsets in ms, attempt 1 first, for failScript
	doneTTL  time.Duration
	keepDead time.Duration
}

// NewStore returns a Store over rdb.
func NewStore(rdb redis.UniversalClient, cfg StoreConfig) (*Store, error) {
	if rdb == nil {
		return nil, fmt.Errorf("%w: nil redis client", ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{rdb: rdb, batch: redisx.NewBatcher(rdb, 0), keys: cfg.Keys, policy: cfg.Policy, doneTTL: cfg.DoneTTL, keepDead: cfg.KeepDead}
	for _, off := range cfg.Policy.Offsets() {
		s.offsets = append(s.offsets, off.Milliseconds())
	}
	return s, nil
}

// Close stops the pipelining workers once their round trips return; later
// per-delivery calls (the ones that go through them) fail.
func (s *Store) Close() { s.batch.Close() }

// Policy returns the store's retry policy.
func (s *Store) Policy() Policy { return s.policy }

// ms is t as unix milliseconds, the unit of every time in Redis.
func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// bucketLen is how many characters of a slot key name its bucket; the Lua scripts
// that split leased-set and held-set members (bucket + field) rely on it being 3.
const bucketLen = 3

var slotEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// slotKey is where delivery id lives while it is live: 12 characters of base32 of
// its SHA-256, split into bucket (3) and field (9). Two ids with the same slot key
// still get fields of their own: the scripts probe field, field.."1" … field.."3" and
// compare the stored id.
func slotKey(id string) (bucket, field string) {
	sum := sha256.Sum256([]byte(id))
	k := slotEncoding.EncodeToString(sum[:8])[:12]
	return k[:bucketLen], k[bucketLen:]
}

// deliveryKeys are KEYS[1..7] of every per-delivery script, and the bucket and field
// that are its ARGV[1..2] (ARGV[3] is the id).
func (s *Store) deliveryKeys(id string) ([]string, string, string) {
	b, f := slotKey(id)
	return []string{
		s.keys.SchedBucketState(b), s.keys.SchedBucketIDs(b), s.keys.SchedBucketDue(b),
		s.keys.SchedIndex(), s.keys.SchedLeased(), s.keys.SchedFinished(id), s.keys.SchedAttempts(id),
	}, b, f
}

// lib is the start of every per-delivery script.
//
//	KEYS[1] bucket state hash  KEYS[2] bucket ids hash  KEYS[3] bucket due zset
//	KEYS[4] index zset  KEYS[5] leased zset  KEYS[6] finished marker  KEYS[7] attempt log
//	ARGV[1] bucket  ARGV[2] field  ARGV[3] delivery id; the script's own from ARGV[4]
const lib = `
local function find()
  local f = ARGV[2]
  local fs = {f, f .. '1', f .. '2', f .. '3'}
  local vs = redis.call('HMGET', KEYS[2], fs[1], fs[2], fs[3], fs[4])
  local free = false
  for j = 1, 4 do
    if vs[j] == ARGV[3] then return fs[j], false end
    if not vs[j] and not free then free = fs[j] end
  end
  return false, free
end
local function parse(v)
  if not v then return false end
  local st, a, fi, p = string.match(v, '^(%a)|(%d+)|(%d+)|(.*)$')
  return st, tonumber(a), fi, p
end
local function put(f, st, a, fi, p)
  redis.call('HSET', KEYS[1], f, st .. '|' .. a .. '|' .. fi .. '|' .. p)
end
local function pend(f, due)
  redis.call('ZADD', KEYS[3], due, f)
  local m = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if not m or tonumber(m) > tonumber(due) then redis.call('ZADD', KEYS[4], due, ARGV[1]) end
end
local function finish(f, st, a, fi, p, ttl)
  redis.call('HDEL', KEYS[1], f)
  redis.call('HDEL', KEYS[2], f)
  if p then
    redis.call('HSET', KEYS[6], 's', st, 'a', a, 'f', fi, 'p', p)
  else
    redis.call('HSET', KEYS[6], 's', st, 'a', a, 'f', fi)
  end
  redis.call('PEXPIRE', KEYS[6], ttl)
  redis.call('PEXPIRE', KEYS[7], ttl)
end
`

// deadSet follows lib in the scripts that make a delivery dead (fail, kill), whose
// KEYS[8] is the dead set: dead(now, cutoff) adds the delivery at now and forgets
// those that died before cutoff (their letters have aged out).
const deadSet = `
local function dead(now, cutoff)
  redis.call('ZADD', KEYS[8], now, ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', '(' .. cutoff)
end
`

// fence follows lib in the scripts that act on an attempt handed out (record, release,
// mark queued, hold): they act only on a delivery leased or queued with exactly
// attempt ARGV[4], and return {0} (stale) otherwise. It leaves f (the field), st, a, fi (first ms) and p (payload).
// Every one of them moves the delivery on, so a leased one leaves the leased set here
// (a queued one is not in it: fan-out creates it queued, and queuedScript takes it out
// as it marks it queued).
const fence = `
local f = find()
if not f then return {0} end
local st, a, fi, p = parse(redis.call('HGET', KEYS[1], f))
if not st or a ~= tonumber(ARGV[4]) or (st ~= 'l' and st ~= 'q') then return {0} end
if st == 'l' then redis.call('ZREM', KEYS[5], ARGV[1] .. f) end
`

// logRecord appends ARGV[5] to the attempt log, trimmed to ARGV[6] entries (only
// once it is longer: most logs never are).
const logRecord = `
if redis.call('RPUSH', KEYS[7], ARGV[5]) > tonumber(ARGV[6]) then
  redis.call('LTRIM', KEYS[7], -tonumber(ARGV[6]), -1)
end
`

// scheduleScript creates a delivery unless its id is known in any state.
//
//	ARGV[4] payload  ARGV[5] first ms  ARGV[6] due ms  ARGV[7] attempt  ARGV[8] p or q
//	returns {1, state, attempt, first ms} created; {0, state, attempt, first ms} known
var scheduleScript = redis.NewScript(lib + `
local d = redis.call('HMGET', KEYS[6], 's', 'a', 'f')
if d[1] then return {0, d[1], d[2] or '0', d[3] or '0'} end
local f, free = find()
if f then
  local st, a, fi = parse(redis.call('HGET', KEYS[1], f))
  return {0, st or '?', tostring(a or 0), fi or '0'}
end
if not free then return redis.error_reply('no free slot for ' .. ARGV[3]) end
redis.call('HSET', KEYS[2], free, ARGV[3])
put(free, ARGV[8], ARGV[7], ARGV[5], ARGV[4])
if ARGV[8] == 'p' then pend(free, ARGV[6]) end
return {1, ARGV[8], ARGV[7], ARGV[5]}
`)

// run runs a per-delivery script through the pipelining batcher; extra are KEYS[8…].
func (s *Store) run(ctx context.Context, script *redis.Script, id string, extra []string, args ...any) *redis.Cmd {
	keys, b, f := s.deliveryKeys(id)
	return s.batch.Script(ctx, script, append(keys, extra...), append([]any{b, f, id}, args...)...)
}

// Schedule creates d, pending and due at d.Due (or queued when d.Queued). It is a
// no-op when the id is already known in any state (pending, leased, queued, held, done
// or dead within the done TTL), so a redelivered fan-out never creates a second delivery
// or resets one; the result then says where the known one is.
func (s *Store) Schedule(ctx context.Context, d Delivery) (Scheduled, error) {
	args, err := scheduleArgs(d)
	if err != nil {
		return Scheduled{}, err
	}
	return parseScheduled(d.ID, s.run(ctx, scheduleScript, d.ID, nil, args...))
}

// ScheduleMany is Schedule for many deliveries in one pipeline (fan-out's batches):
// out[i] and errs[i] belong to ds[i]; one failing does not stop the others.
func (s *Store) ScheduleMany(ctx context.Context, ds []Delivery) (out []Scheduled, errs []error) {
	out, errs = make([]Scheduled, len(ds)), make([]error, len(ds))
	args := make([][]any, len(ds))
	cmds := make([]*redis.Cmd, len(ds))
	var valid []int
	for i, d := range ds {
		if args[i], errs[i] = scheduleArgs(d); errs[i] == nil {
			valid = append(valid, i)
		}
	}
	exec := func(idx []int) {
		pipe := s.rdb.Pipeline()
		for _, i := range idx {
			keys, b, f := s.deliveryKeys(ds[i].ID)
			cmds[i] = scheduleScript.EvalSha(ctx, pipe, keys, append([]any{b, f, ds[i].ID}, args[i]...)...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own result
	}
	exec(valid)
	var unknown []int // Redis lost its script cache (a restart, a failover)
	for _, i := range valid {
		if redisx.IsNoScript(cmds[i].Err()) {
			unknown = append(unknown, i)
		}
	}
	if len(unknown) > 0 && scheduleScript.Load(ctx, s.rdb).Err() == nil {
		exec(unknown)
	}
	for _, i := range valid {
		out[i], errs[i] = parseScheduled(ds[i].ID, cmds[i])
	}
	return out, errs
}

func scheduleArgs(d Delivery) ([]any, error) {
	// Times before 1970 would be negative unix ms, which the stored state's format
	// (digits only) cannot hold.
	if d.ID == "" || d.Attempt < 1 || d.First.IsZero() || d.Due.IsZero() || ms(d.First) < 0 || ms(d.Due) < 0 {
		return nil, fmt.Errorf("%w: schedule %q attempt %d: need id, attempt >= 1, first and due after 1970", ErrInvalid, d.ID, d.Attempt)
	}
	state := "p"
	if d.Queued {
		state = "q"
	}
	return []any{d.Payload, ms(d.First), ms(d.Due), d.Attempt, state}, nil
}

func parseScheduled(id string, cmd *redis.Cmd) (Scheduled, error) {
	vals, err := cmd.Slice()
	if err != nil {
		return Scheduled{}, fmt.Errorf("schedule %s: %w", id, err)
	}
	if len(vals) != 4 {
		return Scheduled{}, fmt.Errorf("schedule %s: unexpected reply %v", id, vals)
	}
	out := Scheduled{Created: vals[0] == int64(1), State: stateNames[fmt.Sprint(vals[1])]}
	a, err1 := strconv.Atoi(fmt.Sprint(vals[2]))
	first, err2 := parseMS(fmt.Sprint(vals[3]))
	if err := errors.Join(err1, err2); err != nil || out.State == "" {
		return Scheduled{}, fmt.Errorf("schedule %s: unexpected reply %v", id, vals)
	}
	out.Attempt, out.First = a, fromMS(first)
	return out, nil
}

// claimScript leases up to ARGV[2] pending deliveries due at or before ARGV[1]: it
// walks the index's buckets, earliest first, and takes their due fields.
//
//	KEYS[1] index zset   KEYS[2] leased zset
//	ARGV[1] now ms  ARGV[2] max  ARGV[3] lease expiry ms  ARGV[4] schedule key prefix
//	returns a flat array: id, attempt, due ms, first ms, payload; per claimed delivery
var claimScript = redis.NewScript(`
local left = tonumber(ARGV[2])
local bs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, left)
local out = {}
for _, b in ipairs(bs) do
  if left <= 0 then break end
  local zk, sk, ik = ARGV[4] .. 'z:' .. b, ARGV[4] .. 's:' .. b, ARGV[4] .. 'i:' .. b
  local due = redis.call('ZRANGEBYSCORE', zk, '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, left)
  for i = 1, #due, 2 do
    local f = due[i]
    redis.call('ZREM', zk, f)
    local v = redis.call('HGET', sk, f)
    if v then
      local st, a, fi, p = string.match(v, '^(%a)|(%d+)|(%d+)|(.*)$')
      if st == 'p' then
        redis.call('HSET', sk, f, 'l|' .. a .. '|' .. fi .. '|' .. p)
        redis.call('ZADD', KEYS[2], ARGV[3], b .. f)
        out[#out+1] = redis.call('HGET', ik, f) or ''
        out[#out+1] = a
        out[#out+1] = due[i+1]
        out[#out+1] = fi
        out[#out+1] = p
        left = left - 1
      end
    end
  end
  local m = redis.call('ZRANGE', zk, 0, 0, 'WITHSCORES')
  if #m == 0 then redis.call('ZREM', KEYS[1], b) else redis.call('ZADD', KEYS[1], m[2], b) end
end
return out
`)

// Claim leases up to max (at most MaxClaim) pending deliveries due at or before now,
// earliest bucket first, until now+lease. Concurrent callers never get the same
// delivery.
func (s *Store) Claim(ctx context.Context, now time.Time, max int, lease time.Duration) ([]Claimed, error) {
	if lease < time.Millisecond {
		return nil, fmt.Errorf("%w: claim lease %v, want >= 1ms", ErrInvalid, lease)
	}
	if max <= 0 {
		return nil, nil
	}
	max = min(max, MaxClaim)
	vals, err := claimScript.Run(ctx, s.rdb,
		[]string{s.keys.SchedIndex(), s.keys.SchedLeased()},
		ms(now), max, ms(now.Add(lease)), s.keys.SchedPrefix()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("claim due: %w", err)
	}
	if len(vals)%5 != 0 {
		return nil, fmt.Errorf("claim due: %d values, want a multiple of 5", len(vals))
	}
	out := make([]Claimed, 0, len(vals)/5)
	for i := 0; i < len(vals); i += 5 {
		attempt, err1 := strconv.Atoi(vals[i+1])
		due, err2 := parseMS(vals[i+2])
		first, err3 := parseMS(vals[i+3])
		if err := errors.Join(err1, err2, err3); err != nil {
			return out, fmt.Errorf("claim due: delivery %s: %w", vals[i], err)
		}
		out = append(out, Claimed{ID: vals[i], Payload: []byte(vals[i+4]), Attempt: attempt, Due: fromMS(due), First: fromMS(first)})
	}
	return out, nil
}

// parseMS reads a unix-ms number as Redis or Lua printed it ("1700000000000", or a
// float form from a sorted-set score).
func parseMS(v string) (int64, error) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("bad unix ms %q", v)
	}
	return int64(f), nil
}

// failScript records a failed attempt and schedules the next one, or makes the
// delivery dead when the policy has no next attempt.
//
//	KEYS[8] the dead set
//	ARGV[4] attempt  ARGV[5] record  ARGV[6] log cap  ARGV[7] now ms  ARGV[8] ttl ms
//	ARGV[9] dead-set cutoff ms  ARGV[10..] the policy's offsets in ms: ARGV[9+n] is attempt n's
//	returns {0} stale (nothing changed), {1, next attempt, next due ms}, {2} dead
//	The next due is first + offset, or now when that has already passed.
var failScript = redis.NewScript(lib + deadSet + fence + logRecord + `
local n = a + 1
local off = ARGV[9 + n]
if off then
  local due = string.format('%.0f', math.max(tonumber(fi) + tonumber(off), tonumber(ARGV[7])))
  put(f, 'p', n, fi, p)
  pend(f, due)
  return {1, n, due}
end
finish(f, 'd', a, fi, p, ARGV[8])
dead(ARGV[7], ARGV[9])
return {2}
`)

// succeedScript records the successful attempt and leaves a done marker (state,
// attempt, first; no payload) that expires with the attempt log.
//
//	ARGV[4] attempt  ARGV[5] record  ARGV[6] log cap  ARGV[7] ttl ms
//	returns {0} stale, {1} done
var succeedScript = redis.NewScript(lib + fence + logRecord + `
finish(f, 'x', a, fi, false, ARGV[7])
return {1}
`)

// killScript records the attempt and makes the delivery dead at once.
//
//	KEYS[8] the dead set
//	ARGV[4] attempt  ARGV[5] record  ARGV[6] log cap  ARGV[7] ttl ms  ARGV[8] now ms
//	ARGV[9] dead-set cutoff ms
//	returns {0} stale, {1} dead
var killScript = redis.NewScript(lib + deadSet + fence + logRecord + `
finish(f, 'd', a, fi, p, ARGV[7])
dead(ARGV[8], ARGV[9])
return {1}
`)

// releaseScript hands a leased or queued delivery back as pending without counting
// the attempt.
//
//	ARGV[4] attempt  ARGV[5] due ms
//	returns {0} stale, {1} pending again
var releaseScript = redis.NewScript(lib + fence + `
put(f, 'p', a, fi, p)
pend(f, ARGV[5])
return {1}
`)

// queuedScript marks a leased delivery queued: its job is on JetStream, so the lease
// no longer needs to expire.
//
//	ARGV[4] attempt
//	returns {0} stale (not leased with that attempt), {1} queued
var queuedScript = redis.NewScript(lib + fence + `
if st ~= 'l' then return {0} end
put(f, 'q', a, fi, p)
return {1}
`)

// fenced runs one of the fenced scripts; the reply's first element is 0 when stale.
func (s *Store) fenced(ctx context.Context, op, id string, script *redis.Script, extra []string, args ...any) ([]any, error) {
	res, err := s.run(ctx, script, id, extra, args...).Slice()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", op, id, err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("%s %s: empty reply", op, id)
	}
	return res, nil
}

// fencedOK runs a fenced script whose reply is {1} when it acted, {0} when stale.
func (s *Store) fencedOK(ctx context.Context, op, id string, script *redis.Script, extra []string, args ...any) (bool, error) {
	res, err := s.fenced(ctx, op, id, script, extra, args...)
	if err != nil {
		return false, err
	}
	return res[0] == int64(1), nil
}

// Fail records a failed attempt (record is appended to the attempt log) and schedules
// the next attempt at policy.Due(First, attempt+1), or makes the delivery dead when
// the policy is exhausted. A next due time already past (a late record) becomes now.
// It only acts when the delivery is leased or queued with exactly this attempt;
// otherwise the result is Stale and nothing changes.
func (s *Store) Fail(ctx context.Context, id string, attempt int, now time.Time, record []byte) (FailResult, error) {
	args := append([]any{attempt, record, MaxAttemptLog, ms(now), s.doneTTL.Milliseconds(), ms(now.Add(-s.keepDead))}, s.offsets...)
	res, err := s.fenced(ctx, "fail", id, failScript, []string{s.keys.SchedDead()}, args...)
	if err != nil {
		return FailResult{}, err
	}
	switch res[0] {
	case int64(0):
		return FailResult{Outcome: Stale}, nil
	case int64(2):
		return FailResult{Outcome: Dead}, nil
	case int64(1):
		if len(res) == 3 {
			n, ok1 := res[1].(int64)
			due, err := parseMS(fmt.Sprint(res[2]))
			if ok1 && err == nil {
				return FailResult{Outcome: Rescheduled, Attempt: int(n), Due: fromMS(due)}, nil
			}
		}
	}
	return FailResult{}, fmt.Errorf("fail %s: unexpected reply %v", id, res)
}

// Succeed records the successful attempt; the delivery is done. A done marker stays
// for the done TTL so a late Schedule of the same id is still a no-op. False when
// stale (not leased or queued with this attempt; nothing changed).
func (s *Store) Succeed(ctx context.Context, id string, attempt int, record []byte) (bool, error) {
	return s.fencedOK(ctx, "succeed", id, succeedScript, nil, attempt, record, MaxAttemptLog, s.doneTTL.Milliseconds())
}

// Kill records the attempt and makes the delivery dead at once (410 Gone) at now.
// False when stale.
func (s *Store) Kill(ctx context.Context, id string, attempt int, now time.Time, record []byte) (bool, error) {
	return s.fencedOK(ctx, "kill", id, killScript, []string{s.keys.SchedDead()}, attempt, record, MaxAttemptLog, s.doneTTL.Milliseconds(), ms(now), ms(now.Add(-s.keepDead)))
}

// Release hands a leased or queued delivery back as pending at due without counting
// the attempt (a failed dispatch). False when stale.
func (s *Store) Release(ctx context.Context, id string, attempt int, due time.Time) (bool, error) {
	return s.fencedOK(ctx, "release", id, releaseScript, nil, attempt, ms(due))
}

// Queued marks a leased delivery queued once its job is on JetStream: from then on
// JetStream, not the lease, makes sure the attempt is made, so a job waiting behind a
// slow endpoint is not claimed and sent a second time. False when stale.
func (s *Store) Queued(ctx context.Context, id string, attempt int) (bool, error) {
	return s.fencedOK(ctx, "queued", id, queuedScript, nil, attempt)
}

// holdScript takes a leased or queued delivery out of the schedule until its group is
// released, without counting the attempt.
//
//	KEYS[8] the group's held zset  KEYS[9] the set of held groups
//	ARGV[4] attempt  ARGV[5] now ms  ARGV[6] group
//	returns {0} stale, {1} held
var holdScript = redis.NewScript(lib + fence + `
put(f, 'h', a, fi, p)
redis.call('ZADD', KEYS[8], ARGV[5], ARGV[1] .. f)
redis.call('SADD', KEYS[9], ARGV[6])
return {1}
`)

// Hold takes a leased or queued delivery out of the schedule (its endpoint is
// disabled): it waits, attempt not counted, until Unhold(group). False when stale.
func (s *Store) Hold(ctx context.Context, id string, attempt int, group string, now time.Time) (bool, error) {
	return s.fencedOK(ctx, "hold", id, holdScript, []string{s.keys.SchedHeld(group), s.keys.SchedHeldGroups()}, attempt, ms(now), group)
}

// Unhold releases every delivery held for group: pending again, due now, in batches
// of MaxClaim. It returns how many it released.
func (s *Store) Unhold(ctx context.Context, group string, now time.Time) (int, error) {
	total := 0
	for {
		res, err := rependScript.Run(ctx, s.rdb,
			[]string{s.keys.SchedIndex(), s.keys.SchedHeld(group), s.keys.SchedHeldGroups()},
			ms(now), MaxClaim, s.keys.SchedPrefix(), "h", "+inf", group).Int64Slice()
		if err != nil {
			return total, fmt.Errorf("unhold %s: %w", group, err)
		}
		total += int(res[0])
		if res[1] < MaxClaim {
			return total, nil
		}
	}
}

// HeldGroups returns the groups that have held deliveries.
func (s *Store) HeldGroups(ctx context.Context) ([]string, error) {
	gs, err := s.rdb.SMembers(ctx, s.keys.SchedHeldGroups()).Result()
	if err != nil {
		return nil, fmt.Errorf("held groups: %w", err)
	}
	return gs, nil
}

// rependScript makes up to ARGV[2] members of a set of parked deliveries (the leased
// set for Reclaim, a held set for Unhold) whose score is at most ARGV[5] pending again,
// due at ARGV[1], with the same attempt number, if they are still in state ARGV[4];
// members in another state are stale and only dropped from the set. With KEYS[3], an
// emptied held set's group ARGV[6] leaves the set of held groups.
//
//	KEYS[1] index zset  KEYS[2] the set (members: bucket + field)  KEYS[3] held groups
//	ARGV[1] now ms  ARGV[2] max  ARGV[3] schedule key prefix  ARGV[4] l or h
//	ARGV[5] highest score taken (now for expired leases, +inf for a held set)
//	ARGV[6] group (with KEYS[3])
//	returns {made pending, members taken}
var rependScript = redis.NewScript(`
local ms = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[5], 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, m in ipairs(ms) do
  redis.call('ZREM', KEYS[2], m)
  local b, f = string.sub(m, 1, 3), string.sub(m, 4)
  local sk = ARGV[3] .. 's:' .. b
  local v = redis.call('HGET', sk, f)
  if v then
    local st, a, fi, p = string.match(v, '^(%a)|(%d+)|(%d+)|(.*)$')
    if st == ARGV[4] then
      redis.call('HSET', sk, f, 'p|' .. a .. '|' .. fi .. '|' .. p)
      redis.call('ZADD', ARGV[3] .. 'z:' .. b, ARGV[1], f)
      local x = redis.call('ZSCORE', KEYS[1], b)
      if not x or tonumber(x) > tonumber(ARGV[1]) then redis.call('ZADD', KEYS[1], ARGV[1], b) end
      n = n + 1
    end
  end
end
if KEYS[3] and redis.call('ZCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[6]) end
return {n, #ms}
`)

// Reclaim makes up to max (at most MaxClaim) leased deliveries whose lease expired at
// or before now pending again, due now, attempt not counted: their scheduler died
// between claim and hand-off.
func (s *Store) Reclaim(ctx context.Context, now time.Time, max int) (int, error) {
	if max <= 0 {
		return 0, nil
	}
	res, err := rependScript.Run(ctx, s.rdb,
		[]string{s.keys.SchedIndex(), s.keys.SchedLeased()},
		ms(now), min(max, MaxClaim), s.keys.SchedPrefix(), "l", ms(now)).Int64Slice()
	if err != nil {
		return 0, fmt.Errorf("reclaim leases: %w", err)
	}
	return int(res[0]), nil
}

// reviveScript makes a dead delivery pending with a fresh schedule, keeping its
// attempt log.
//
//	KEYS[8] the dead set
//	ARGV[4] now ms  ARGV[5] attempt  ARGV[6] the dead schedule's first ms, or '' for any
//	returns 1 revived, 0 not dead, or dead from another schedule (nothing changed)
var reviveScript = redis.NewScript(lib + `
local d = redis.call('HMGET', KEYS[6], 's', 'p', 'f')
if d[1] ~= 'd' then return 0 end
if ARGV[6] ~= '' and d[3] ~= ARGV[6] then return 0 end
local f, free = find()
if f then return 0 end
if not free then return redis.error_reply('no free slot for ' .. ARGV[3]) end
redis.call('HSET', KEYS[2], free, ARGV[3])
put(free, 'p', ARGV[5], ARGV[4], d[2] or '')
pend(free, ARGV[4])
redis.call('DEL', KEYS[6])
redis.call('PERSIST', KEYS[7])
redis.call('ZREM', KEYS[8], ARGV[3])
return 1
`)

// Revive replays a dead delivery: pending, due now, with a fresh schedule (first
// attempt now, attempt number attempt), keeping the attempt log. deadFirst, when not
// zero, is the first-attempt time of the schedule that died (a dead letter carries it):
// the delivery is revived only if that is still the death on record, so an older
// letter of a delivery already replayed since cannot start it again. False when the
// delivery is not dead (or not that death, or its marker has expired), so reviving
// twice at once revives once.
func (s *Store) Revive(ctx context.Context, id string, deadFirst, now time.Time, attempt int) (bool, error) {
	if attempt < 1 || ms(now) < 0 {
		return false, fmt.Errorf("%w: revive %s attempt %d at %v", ErrInvalid, id, attempt, now)
	}
	first := ""
	if !deadFirst.IsZero() {
		first = strconv.FormatInt(ms(deadFirst), 10)
	}
	n, err := s.run(ctx, reviveScript, id, []string{s.keys.SchedDead()}, ms(now), attempt, first).Int()
	if err != nil {
		return false, fmt.Errorf("revive %s: %w", id, err)
	}
	return n == 1, nil
}

// Counts are the schedule's sizes for metrics.
type Counts struct {
	Pending int64 // deliveries waiting for a due time (retries, releases, revivals)
	Dead    int64 // dead deliveries not revived since, dead within KeepDead of now
}

// Count reads Counts; it changes nothing (the dead set forgets old deaths as new ones
// come). Pending is summed over the buckets of the index, a page of ZCARDs per round
// trip.
func (s *Store) Count(ctx context.Context, now time.Time) (Counts, error) {
	var c Counts
	dead, err := s.rdb.ZCount(ctx, s.keys.SchedDead(), strconv.FormatInt(ms(now.Add(-s.keepDead)), 10), "+inf").Result()
	if err != nil {
		return c, fmt.Errorf("count dead: %w", err)
	}
	c.Dead = dead
	const page = 1000
	for start := int64(0); ; start += page {
		buckets, err := s.rdb.ZRange(ctx, s.keys.SchedIndex(), start, start+page-1).Result()
		if err != nil {
			return c, fmt.Errorf("count pending: %w", err)
		}
		if len(buckets) == 0 {
			return c, nil
		}
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, b := range buckets {
				p.ZCard(ctx, s.keys.SchedBucketDue(b))
			}
			return nil
		})
		if err != nil {
			return c, fmt.Errorf("count pending: %w", err)
		}
		for _, cmd := range cmds {
			c.Pending += cmd.(*redis.IntCmd).Val()
		}
		if len(buckets) < page {
			return c, nil
		}
	}
}

// NextWake is the earliest pending due time or lease expiry; false when there is
// neither.
func (s *Store) NextWake(ctx context.Context) (time.Time, bool, error) {
	var due, lease *redis.ZSliceCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		due = p.ZRangeWithScores(ctx, s.keys.SchedIndex(), 0, 0)
		lease = p.ZRangeWithScores(ctx, s.keys.SchedLeased(), 0, 0)
		return nil
	})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("next wake: %w", err)
	}
	var best int64
	found := false
	for _, zs := range [][]redis.Z{due.Val(), lease.Val()} {
		if len(zs) > 0 && (!found || int64(zs[0].Score) < best) {
			best, found = int64(zs[0].Score), true
		}
	}
	if !found {
		return time.Time{}, false, nil
	}
	return fromMS(best), true, nil
}

// getScript reads one delivery and its due time or lease expiry.
//
//	returns {} unknown, else {state, attempt, first ms, payload, due or lease ms}
var getScript = redis.NewScript(lib + `
local d = redis.call('HMGET', KEYS[6], 's', 'a', 'f', 'p')
if d[1] then return {d[1], d[2] or '0', d[3] or '0', d[4] or '', ''} end
local f = find()
if not f then return {} end
local st, a, fi, p = parse(redis.call('HGET', KEYS[1], f))
if not st then return redis.error_reply('unreadable state of ' .. ARGV[3]) end
local at = false
if st == 'p' then at = redis.call('ZSCORE', KEYS[3], f) end
if st == 'l' then at = redis.call('ZSCORE', KEYS[5], ARGV[1] .. f) end
return {st, tostring(a), fi, p, at or ''}
`)

// Get returns the state of delivery id, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (State, error) {
	vals, err := s.run(ctx, getScript, id, nil).StringSlice()
	if err != nil {
		return State{}, fmt.Errorf("get %s: %w", id, err)
	}
	if len(vals) == 0 {
		return State{}, fmt.Errorf("get %s: %w", id, ErrNotFound)
	}
	if len(vals) != 5 {
		return State{}, fmt.Errorf("get %s: %d values, want 5", id, len(vals))
	}
	st := State{ID: id, Name: stateNames[vals[0]]}
	if st.Name == "" {
		return State{}, fmt.Errorf("get %s: unknown state %q", id, vals[0])
	}
	a, err1 := strconv.Atoi(vals[1])
	first, err2 := parseMS(vals[2])
	if err := errors.Join(err1, err2); err != nil {
		return State{}, fmt.Errorf("get %s: %w", id, err)
	}
	st.Attempt, st.First = a, fromMS(first)
	if st.Name != StateDone {
		st.Payload = []byte(vals[3])
	}
	if vals[4] != "" {
		at, err := parseMS(vals[4])
		if err != nil {
			return State{}, fmt.Errorf("get %s: %w", id, err)
		}
		st.Due = fromMS(at)
	}
	return st, nil
}

// Attempts returns the attempt log of delivery id, oldest first (at most
// MaxAttemptLog records); empty when there is none.
func (s *Store) Attempts(ctx context.Context, id string) ([][]byte, error) {
	vals, err := s.rdb.LRange(ctx, s.keys.SchedAttempts(id), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("attempts %s: %w", id, err)
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}
