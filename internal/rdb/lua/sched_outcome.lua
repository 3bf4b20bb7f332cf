-- sched_outcome records a finished run in the index of its outcome and keeps the newest ARGV[3]
-- there: older ones leave that index and the run index, and go to the trimmed set, whose run
-- records the caller deletes (as sched_claim.lua). Sent twice, it changes nothing more.
--
-- KEYS[1] -> <prefix>:{<wf>}:outcome:<state> (Keys.Outcome)
-- KEYS[2] -> <prefix>:{<wf>}:runs (Keys.Runs)
-- KEYS[3] -> <prefix>:{<wf>}:trimmed (Keys.Trimmed)
-- ARGV[1] -> the run id
-- ARGV[2] -> its creation time (ms)
-- ARGV[3] -> how many runs of this outcome to keep
--
-- Result: the ids of the runs dropped.
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local n, keep = redis.call('ZCARD', KEYS[1]), tonumber(ARGV[3])
if n <= keep then return {} end
local old = redis.call('ZRANGE', KEYS[1], 0, n - keep - 1)
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1)
for _, id in ipairs(old) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('SADD', KEYS[3], id)
end
return old
