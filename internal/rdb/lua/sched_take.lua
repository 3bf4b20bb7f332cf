-- sched_take makes the caller a run's holder: a queued or retry-waiting run that is due (or has a
-- cancel request), or a running run whose holder's lease expired.
--
-- A run in state running that the caller holds, but whose record does not say running yet (an
-- attempt's first update writes that), is the caller's own take whose reply was lost and that
-- go-redis sent again: the caller gets it, as "queued", rather than nothing, which would leave the
-- run held and unexecuted until its lease ran out.
--
-- KEYS[1] -> <prefix>:{<wf>}:run:<id> (Keys.Run)
-- ARGV[1] -> holder id
-- ARGV[2] -> now (ms)
-- ARGV[3] -> lease until (ms)
--
-- Result: {state before, record, cancel reason or ""}, or nil when there is nothing to take.
local h = redis.call('HMGET', KEYS[1], 'state', 'record', 'not_before', 'lease', 'cancel', 'holder')
local state, now = h[1], tonumber(ARGV[2])
if not state then return nil end
if state == 'running' and h[6] == ARGV[1] and cjson.decode(h[2]).state ~= 'running' then state = 'queued' end
local due = (state == 'queued' or state == 'waiting_retry') and (tonumber(h[3] or '0') <= now or h[5])
local dead = state == 'running' and tonumber(h[4] or '0') <= now
if not due and not dead then return nil end
redis.call('HSET', KEYS[1], 'state', 'running', 'holder', ARGV[1], 'lease', ARGV[3])
return {state, h[2], h[5] or ''}
