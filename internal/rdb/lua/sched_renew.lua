-- sched_renew extends the caller's lease on a run it executes and reports a cancel request.
--
-- KEYS[1] -> <prefix>:{<wf>}:run:<id> (Keys.Run)
-- ARGV[1] -> holder id
-- ARGV[2] -> lease until (ms)
--
-- Result: the cancel reason ("" for none), or the error "LOST ..." when the run is no longer the
-- caller's.
local h = redis.call('HMGET', KEYS[1], 'holder', 'state', 'cancel')
if h[1] ~= ARGV[1] or h[2] ~= 'running' then return redis.error_reply('LOST the run was taken over') end
redis.call('HSET', KEYS[1], 'lease', ARGV[2])
return h[3] or ''
