-- end.lua: closes or fails a batch (SPEC.md "close", "fail").
-- KEYS[1] state, KEYS[2] history, KEYS[3] events
-- ARGV[1] now (µs), ARGV[2] events kept, ARGV[3] pub/sub channel, ARGV[4] workflow,
-- ARGV[5] the new status (success or failed), ARGV[6] what to do with a job that is not open: '1'
-- a conflict (v1), '0' skip it, and a job open in an older batch than the workflow's current one
-- (the original routes: a late close never flips a result), 'f' end it all the same (an
-- operator's forced correction), ARGV[7] expected batch id or '', ARGV[8] run metadata as compact
-- JSON or '', ARGV[9] the scheduler run making the change or '', ARGV[10..] jobs (none: all)
-- Result: commit(), the entry holding each job's ended runtime record; or, when '0' leaves no job
-- to end, {'', {}, the state} and nothing is written; or ENOTFOUND, ECONFLICT (a job not open
-- when '1', or in another batch). A job ending a backfill gets its regular state back from its
-- stash; the entry holds the backfill's ended record. A change made by a scheduler run ends its
-- entry with field '@run' (no job name has an '@') and the run's id: the alerts' backstop reads it.
local s = hgetall(KEYS[1])
local wf = ARGV[4]
if not s.jobs then return not_loaded(wf) end
local now, status, strict, want, metadata = tonumber(ARGV[1]), ARGV[5], ARGV[6] == '1', ARGV[7], ARGV[8]
local open_only = ARGV[6] == '0'
local all = words(s.jobs)
local named, unknown = scope(all, 10)
if not named then return fail('ENOTFOUND', 'job ' .. unknown .. ' is not in workflow ' .. wf) end
local jobs, runs = {}, {}
for _, job in ipairs(named) do
  local r = parse_run(s['run:' .. job])
  if strict and r.status ~= 'open' then
    local st = 'none'
    if r.status ~= '-' then st = '"' .. r.status .. '"' end
    return fail('ECONFLICT', 'job ' .. job .. ' is not open (status ' .. st .. ')')
  end
  if want ~= '' and r.id ~= want then
    return fail('ECONFLICT', 'job ' .. job .. ' is in batch ' .. (r.id ~= '-' and r.id or 'none') .. ', not ' .. want)
  end
  if not open_only or (r.status == 'open' and r.id == s.last_batch_id) then
    jobs[#jobs + 1] = job
    runs[#runs + 1] = r
    now = not_before(now, r)
  end
end
if #jobs == 0 then
  local flat = {}
  for k, v in pairs(s) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  return {'', {}, flat}
end
local nows = us(now)
local list = table.concat(jobs, ' ')
local typ = 'close'
if status == 'failed' then typ = 'fail' end
local set, hist, unstash = {}, {}, {}
local fields = {'x', typ .. ' ' .. nows, 'j', list}
local in_history = {}
for i, job in ipairs(jobs) do
  local r = runs[i]
  local md = r.md
  if metadata ~= '' then md = metadata end
  local run = status .. ' ' .. r.id .. ' ' .. r.from .. ' ' .. r.to .. ' ' .. r.start .. ' ' .. nows .. ' ' .. r.bf .. ' ' .. md
  if r.id ~= '-' then
    if in_history[r.id] == nil then in_history[r.id] = redis.call('HEXISTS', KEYS[2], r.id) == 1 end
    if in_history[r.id] then
      hist[#hist + 1] = r.id .. ':' .. job
      hist[#hist + 1] = run .. '\n' .. (s['cfg:' .. job] or '{}')
    end
  end
  fields[#fields + 1] = job
  fields[#fields + 1] = run
  local stash = s['stash:' .. job]
  if stash then
    run = stash
    unstash[#unstash + 1] = 'stash:' .. job
    s['stash:' .. job] = nil
  end
  s['run:' .. job] = run
  set[#set + 1] = 'run:' .. job
  set[#set + 1] = run
end
if ARGV[9] ~= '' then
  fields[#fields + 1] = '@run'
  fields[#fields + 1] = ARGV[9]
end
if #unstash > 0 then redis.call('HDEL', KEYS[1], unpack(unstash)) end
if #hist > 0 then hset(KEYS[2], hist) end
return commit(s, set, KEYS[1], KEYS[3], ARGV[2], fields, ARGV[3], wf)
