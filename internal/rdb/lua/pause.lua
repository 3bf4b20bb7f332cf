-- pause.lua: pauses or resumes a workflow's triggers (the scheduler reads the state's paused field).
-- KEYS[1] state, KEYS[2] events
-- ARGV[1] now (µs), ARGV[2] events kept, ARGV[3] pub/sub channel, ARGV[4] workflow, ARGV[5] '1'
-- to pause, '0' to resume, ARGV[6] the pause's reason (may be empty)
-- The state field paused holds "<µs> <reason>" while paused and is absent otherwise; a load keeps
-- it (load.lua writes only the fields it names).
-- Result: commit(), the entry x "pause <time> <reason>" or "resume <time>"; or, when the workflow
-- is already as asked, {'', {}, the state} without writing anything (a pause keeps its first time
-- and reason); or ENOTFOUND.
local s = hgetall(KEYS[1])
local wf = ARGV[4]
if not s.jobs then return not_loaded(wf) end
local pause = ARGV[5] == '1'
if (s.paused ~= nil) == pause then
  local flat = {}
  for k, v in pairs(s) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  return {'', {}, flat}
end
local fields
if pause then
  s.paused = ARGV[1] .. ' ' .. ARGV[6]
  fields = {'x', 'pause ' .. ARGV[1] .. ' ' .. ARGV[6]}
  return commit(s, {'paused', s.paused}, KEYS[1], KEYS[2], ARGV[2], fields, ARGV[3], wf)
end
s.paused = nil
redis.call('HDEL', KEYS[1], 'paused')
fields = {'x', 'resume ' .. ARGV[1]}
return commit(s, {}, KEYS[1], KEYS[2], ARGV[2], fields, ARGV[3], wf)
