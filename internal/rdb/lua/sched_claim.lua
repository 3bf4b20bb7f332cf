-- sched_claim claims a fire time and creates its runs, once: it compares the workflow's last
-- claimed time with the one the caller saw, so of two replicas evaluating the same fire only one
-- creates a run. A claim sent again (go-redis resends a command whose reply was lost) finds its
-- own runs and answers "claimed" again, rather than "someone else did", which would leave the
-- fire to no one.
--
-- The run index keeps ARGV[5] runs: older ids leave it, and those of finished runs move to the
-- trimmed set, whose run records the caller deletes (their keys are built from ids read here, so
-- this script cannot name them in KEYS) and then removes from that set.
--
-- KEYS[1]   -> <prefix>:{<wf>}:sched (Keys.Sched)
-- KEYS[2]   -> <prefix>:{<wf>}:runs (Keys.Runs)
-- KEYS[3]   -> <prefix>:{<wf>}:active (Keys.Active)
-- KEYS[4]   -> <prefix>:{<wf>}:trimmed (Keys.Trimmed)
-- KEYS[4+i] -> <prefix>:{<wf>}:run:<id> (Keys.Run) of the i-th run created
-- ARGV[1]   -> the sched field ("" creates the runs unconditionally: manual runs)
-- ARGV[2]   -> the value the caller saw ("" for none)
-- ARGV[3]   -> the new value
-- ARGV[4]   -> now (ms)
-- ARGV[5]   -> runs kept
-- ARGV[3+3i], ARGV[4+3i], ARGV[5+3i] -> the i-th run's id, record (JSON), not_before (ms)
--
-- Result: {1, id...} claimed, with the ids in the trimmed set; {0} someone else claimed it.
local function claimed()
  local out = redis.call('SMEMBERS', KEYS[4])
  table.insert(out, 1, 1)
  return out
end

if ARGV[1] ~= '' then
  local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
  if cur ~= ARGV[2] then
    if cur == ARGV[3] and ARGV[6] and redis.call('ZSCORE', KEYS[2], ARGV[6]) then return claimed() end
    return {0}
  end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
local now, keep = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, (#ARGV - 5) / 3 do
  local id = ARGV[3 + 3 * i]
  redis.call('HSET', KEYS[4 + i], 'record', ARGV[4 + 3 * i], 'state', 'queued', 'not_before', ARGV[5 + 3 * i])
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('SADD', KEYS[3], id)
  local n = redis.call('ZCARD', KEYS[2])
  if n > keep then
    for _, old in ipairs(redis.call('ZRANGE', KEYS[2], 0, n - keep - 1)) do
      if redis.call('SISMEMBER', KEYS[3], old) == 0 then redis.call('SADD', KEYS[4], old) end
    end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - keep - 1)
  end
end
return claimed()
