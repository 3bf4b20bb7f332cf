-- sched_mark makes a workflow due for the scheduler at once: a manual run was created, a run's
-- cancel was asked for, its upstream changed.
--
-- KEYS[1] -> <prefix>:{~}:due (Keys.Due)
-- ARGV[1] -> the workflow
--
-- Result: 1. The score goes below 0 and below any it had, so that it differs from whatever the
-- leader may have read meanwhile: the leader's conditional update (sched_due.lua) then leaves the
-- mark for its next tick instead of overwriting it.

-- score (lua/score.lua) is prepended: it reads a score as ZSCORE answers it.

local cur = score(redis.call('ZSCORE', KEYS[1], ARGV[1])) or 0
redis.call('ZADD', KEYS[1], math.min(cur, 0) - 1, ARGV[1])
return 1
