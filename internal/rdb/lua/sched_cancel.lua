-- sched_cancel asks for a run to be cancelled; the replica executing it (or the leader, for a run
-- not started) acts on the request.
--
-- KEYS[1] -> <prefix>:{<wf>}:run:<id> (Keys.Run)
-- ARGV[1] -> reason
--
-- Result: 1, or the error "ENOTFOUND ..." when the run does not exist, "ECONFLICT ..." when it has
-- finished.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return redis.error_reply('ENOTFOUND no such run') end
if state ~= 'queued' and state ~= 'waiting_retry' and state ~= 'running' then
  return redis.error_reply('ECONFLICT the run has already finished (' .. state .. ')')
end
redis.call('HSET', KEYS[1], 'cancel', ARGV[1])
return 1
