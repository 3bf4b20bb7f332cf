package scheduler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batchy/batchy/internal/batch"
	"github.com/batchy/batchy/internal/rdb"
)

// The scheduler's Redis state (keys in rdb.Keys). Every step that decides who does something (the
// leader lease, claiming a fire time, starting a run, taking over a dead replica's run) is one Lua
// script, so two replicas can never both win it. Lease times are the callers' clock in
// milliseconds: replicas' clocks must agree to well within a lease (NTP does that).

// scriptLease takes or renews the leader lease.
// KEYS[1] leader. ARGV[1] now (ms), ARGV[2] ttl (ms), ARGV[3] holder id. Result: 1 held, 0 not.
var scriptLease = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'holder', 'expires')
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if h[1] and h[1] ~= ARGV[3] and tonumber(h[2] or '0') > now then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[3], 'expires', string.format('%d', now + ttl))
return 1
`)

// scriptRelease gives the leader lease up. KEYS[1] leader. ARGV[1] holder id.
var scriptRelease = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

// runLib creates runs. KEYS[2] runs index, KEYS[3] active set; run keys are KEYS[2] with "runs"
// replaced by "run:<id>" (same hash tag, same slot).
const runLib = `
local base = string.sub(KEYS[2], 1, -5)
local function create(id, record, not_before, now, keep)
  redis.call('HSET', base .. 'run:' .. id, 'record', record, 'state', 'queued', 'not_before', not_before)
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('SADD', KEYS[3], id)
  local n = redis.call('ZCARD', KEYS[2])
  if n > keep then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - keep - 1)) do
      if redis.call('SISMEMBER', KEYS[3], old) == 0 then redis.call('DEL', base .. 'run:' .. old) end
    end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - keep - 1)
  end
end
`

// scriptClaim claims a fire time and creates its runs, once: it compares the workflow's last
// claimed time with the one the caller saw, so of two replicas evaluating the same fire only one
// creates a run.
// KEYS[1] sched, KEYS[2] runs, KEYS[3] active. ARGV[1] sched field ("" to skip the check),
// ARGV[2] expected value ("" for none), ARGV[3] new value, ARGV[4] now (ms), ARGV[5] runs kept,
// then per run: id, record JSON, not_before (ms). Result: 1 claimed, 0 someone else did.
// A claim sent again (go-redis resends a command whose reply was lost) finds its own runs and
// answers 1 again, rather than "someone else did", which would leave the fire to no one.
var scriptClaim = redis.NewScript(runLib + `
if ARGV[1] ~= '' then
  local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
  if cur ~= ARGV[2] then
    if cur == ARGV[3] and ARGV[6] and redis.call('ZSCORE', KEYS[2], ARGV[6]) then return 1 end
    return 0
  end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
for i = 6, #ARGV, 3 do create(ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[4]), tonumber(ARGV[5])) end
return 1
`)

// scriptTake makes the caller a run's holder: a queued or retry-waiting run that is due (or has
// a cancel request), or a running run whose holder's lease expired.
// KEYS[1] run. ARGV[1] holder, ARGV[2] now (ms), ARGV[3] lease until (ms).
// Result: {state before, record, cancel} or nil when there is nothing to take.
// A run in state running that the caller holds, but whose record does not say running yet (an
// attempt's first update writes that), is the caller's own take whose reply was lost and that
// go-redis sent again: the caller gets it, as "queued", rather than nothing, which would leave the
// run held and unexecuted until its lease ran out.
var scriptTake = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'record', 'not_before', 'lease', 'cancel', 'holder')
local state, now = h[1], tonumber(ARGV[2])
if not state then return nil end
if state == 'running' and h[6] == ARGV[1] and cjson.decode(h[2]).state ~= 'running' then state = 'queued' end
local due = (state == 'queued' or state == 'waiting_retry') and (tonumber(h[3] or '0') <= now or h[5])
local dead = state == 'running' and tonumber(h[4] or '0') <= now
if not due and not dead then return nil end
redis.call('HSET', KEYS[1], 'state', 'running', 'holder', ARGV[1], 'lease', ARGV[3])
return {state, h[2], h[5] or ''}
`)

// scriptUpdate writes a run's record and state, if the caller still holds it.
// KEYS[1] run, KEYS[2] active. ARGV[1] holder, ARGV[2] state, ARGV[3] record, ARGV[4] lease until
// (ms), ARGV[5] not_before (ms). Result: 1, or 0 when another replica took the run over.
var scriptUpdate = redis.NewScript(`
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'record', ARGV[3], 'lease', ARGV[4], 'not_before', ARGV[5])
if ARGV[2] ~= 'running' then
  redis.call('HDEL', KEYS[1], 'holder', 'lease')
  if ARGV[2] ~= 'queued' and ARGV[2] ~= 'waiting_retry' then
    redis.call('SREM', KEYS[2], string.match(KEYS[1], 'run:(.*)$'))
  end
end
return 1
`)

// scriptRenew extends the caller's lease on a run it executes and reports a cancel request.
// KEYS[1] run. ARGV[1] holder, ARGV[2] lease until (ms). Result: the cancel reason ("" for
// none), or an error when the run is no longer the caller's.
var scriptRenew = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'holder', 'state', 'cancel')
if h[1] ~= ARGV[1] or h[2] ~= 'running' then return redis.error_reply('LOST the run was taken over') end
redis.call('HSET', KEYS[1], 'lease', ARGV[2])
return h[3] or ''
`)

// scriptCancel asks for a run to be cancelled. KEYS[1] run. ARGV[1] reason.
// Result: 1, or an error when the run does not exist or has finished.
var scriptCancel = redis.NewScript(`
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return redis.error_reply('ENOTFOUND no such run') end
if state ~= 'queued' and state ~= 'waiting_retry' and state ~= 'running' then
  return redis.error_reply('ECONFLICT the run has already finished (' .. state .. ')')
end
redis.call('HSET', KEYS[1], 'cancel', ARGV[1])
return 1
`)

// redisState is the scheduler's access to Redis.
type redisState struct {
	client redis.UniversalClient
	keys   rdb.Keys
	keep   int
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func (r *redisState) lease(ctx context.Context, id string, now time.Time, ttl time.Duration) (bool, error) {
	n, err := scriptLease.Run(ctx, r.client, []string{r.keys.Leader()}, ms(now), ttl.Milliseconds(), id).Int()
	return n == 1, err
}

func (r *redisState) release(ctx context.Context, id string) error {
	return scriptRelease.Run(ctx, r.client, []string{r.keys.Leader()}, id).Err()
}

// sched returns a workflow's claimed fire times ("" when never claimed).
func (r *redisState) sched(ctx context.Context, wf string) (map[string]string, error) {
	return r.client.HGetAll(ctx, r.keys.Sched(wf)).Result()
}

// claim creates runs for a fire time, once; field "" creates them unconditionally (manual runs).
func (r *redisState) claim(ctx context.Context, wf, field, expected, value string, now time.Time, runs ...*Run) (bool, error) {
	args := []any{field, expected, value, ms(now), r.keep}
	for _, run := range runs {
		rec, err := json.Marshal(run)
		if err != nil {
			return false, err
		}
		args = append(args, run.ID, string(rec), ms(run.NotBefore))
	}
	n, err := scriptClaim.Run(ctx, r.client, []string{r.keys.Sched(wf), r.keys.Runs(wf), r.keys.Active(wf)}, args...).Int()
	return n == 1, err
}

// take makes holder the run's holder when it is due or abandoned; nil when there is nothing to
// take.
func (r *redisState) take(ctx context.Context, wf, id, holder string, now time.Time, ttl time.Duration) (*Run, string, error) {
	v, err := scriptTake.Run(ctx, r.client, []string{r.keys.Run(wf, id)}, holder, ms(now), ms(now.Add(ttl))).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, "", nil
	}
	if err != nil || len(v) != 3 {
		return nil, "", err
	}
	var run Run
	if err := json.Unmarshal([]byte(fmt.Sprint(v[1])), &run); err != nil {
		return nil, "", fmt.Errorf("scheduler: run %s: %w", id, err)
	}
	run.State = fmt.Sprint(v[0])
	run.cancel = fmt.Sprint(v[2])
	return &run, run.State, nil
}

// update writes a run the caller holds; false when another replica took it over.
func (r *redisState) update(ctx context.Context, run *Run, holder string, leaseUntil time.Time) (bool, error) {
	rec, err := json.Marshal(run)
	if err != nil {
		return false, err
	}
	n, err := scriptUpdate.Run(ctx, r.client, []string{r.keys.Run(run.Workflow, run.ID), r.keys.Active(run.Workflow)},
		holder, run.State, string(rec), ms(leaseUntil), ms(run.NotBefore)).Int()
	return n == 1, err
}

// renew extends the lease of a run holder executes; it returns the cancel reason, if any.
func (r *redisState) renew(ctx context.Context, wf, id, holder string, until time.Time) (string, error) {
	return scriptRenew.Run(ctx, r.client, []string{r.keys.Run(wf, id)}, holder, ms(until)).Text()
}

func (r *redisState) cancel(ctx context.Context, wf, id, reason string) error {
	err := scriptCancel.Run(ctx, r.client, []string{r.keys.Run(wf, id)}, reason).Err()
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		if len(msg) > 10 && msg[:10] == "ENOTFOUND " {
			return batch.Errorf(batch.ENOTFOUND, "workflow %s has no run %s", wf, id)
		}
		if len(msg) > 10 && msg[:10] == "ECONFLICT " {
			return batch.Errorf(batch.ECONFLICT, "run %s: %s", id, msg[10:])
		}
	}
	return err
}

func (r *redisState) active(ctx context.Context, wf string) ([]string, error) {
	return r.client.SMembers(ctx, r.keys.Active(wf)).Result()
}

// run reads one run.
func (r *redisState) run(ctx context.Context, wf, id string) (*Run, error) {
	h, err := r.client.HMGet(ctx, r.keys.Run(wf, id), "record", "state", "cancel").Result()
	if err != nil {
		return nil, err
	}
	if h[0] == nil {
		return nil, batch.Errorf(batch.ENOTFOUND, "workflow %s has no run %s", wf, id)
	}
	var run Run
	if err := json.Unmarshal([]byte(fmt.Sprint(h[0])), &run); err != nil {
		return nil, fmt.Errorf("scheduler: run %s: %w", id, err)
	}
	run.State = fmt.Sprint(h[1])
	if h[2] != nil {
		run.cancel = fmt.Sprint(h[2])
	}
	return &run, nil
}

// runs lists a workflow's runs, newest first.
func (r *redisState) runs(ctx context.Context, wf string, limit int) ([]*Run, error) {
	ids, err := r.client.ZRevRange(ctx, r.keys.Runs(wf), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]*Run, 0, len(ids))
	for _, id := range ids {
		run, err := r.run(ctx, wf, id)
		if batch.ErrorCode(err) == batch.ENOTFOUND {
			continue // trimmed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, run)
	}
	return out, nil
}

func msString(t time.Time) string { return strconv.FormatInt(ms(t), 10) }
