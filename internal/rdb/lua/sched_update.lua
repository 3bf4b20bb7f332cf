-- sched_update writes a run's record and state, if the caller still holds it. A run that ends
-- leaves the active set.
--
-- KEYS[1] -> <prefix>:{<wf>}:run:<id> (Keys.Run)
-- KEYS[2] -> <prefix>:{<wf>}:active (Keys.Active)
-- ARGV[1] -> holder id
-- ARGV[2] -> state
-- ARGV[3] -> record (JSON)
-- ARGV[4] -> lease until (ms)
-- ARGV[5] -> not_before (ms)
-- ARGV[6] -> the run's id (its member in KEYS[2])
--
-- Result: 1, or 0 when another replica took the run over.
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'record', ARGV[3], 'lease', ARGV[4], 'not_before', ARGV[5])
if ARGV[2] ~= 'running' then
  redis.call('HDEL', KEYS[1], 'holder', 'lease')
  if ARGV[2] ~= 'queued' and ARGV[2] ~= 'waiting_retry' then
    redis.call('SREM', KEYS[2], ARGV[6])
  end
end
return 1
