-- load.lua: stores a workflow's configuration.
-- KEYS[1] state, KEYS[2] events, KEYS[3] history
-- ARGV[1] now (µs), ARGV[2] events kept, ARGV[3] pub/sub channel, ARGV[4] workflow,
-- ARGV[5] reset '1'/'0', ARGV[6] exclusive '1'/'0', ARGV[7] the job names, space-separated, in
-- file order, ARGV[8] the workflow settings as JSON, ARGV[9] loaded_at (RFC 3339), ARGV[10] the
-- layout version, then per job four values: name, runtime record of the runtime fields the file
-- gives, configured fields (cfg), window parameters (win).
-- The runtime fields the file gives are set only where the job has none yet (unless reset), the
-- configured fields replace the job's, and jobs no longer in the file are removed (history keeps
-- them). A job removed (or reset) while open is ended in its batch's history as abandoned, with
-- metadata {"reason": ...}: otherwise that batch would show it open forever.
-- Result: commit(), the entry x "load <time> <jobs> <reset 1|0>".
local s = hgetall(KEYS[1])
local wf, reset = ARGV[4], ARGV[5] == '1'
local keep = {}
local njobs = 0
for i = 11, #ARGV, 4 do
  keep[ARGV[i]] = true
  njobs = njobs + 1
end
local gone, ended = {}, {}
for _, j in ipairs(words(s.jobs)) do
  if reset or not keep[j] then
    local r = parse_run(s['run:' .. j])
    if r.status == 'open' and r.id ~= '-' and redis.call('HEXISTS', KEYS[3], r.id) == 1 then
      local why = 'removed from the workflow by a reload'
      if keep[j] then why = 'reset by a reload' end
      ended[#ended + 1] = r.id .. ':' .. j
      ended[#ended + 1] = 'abandoned ' .. r.id .. ' ' .. r.from .. ' ' .. r.to .. ' ' .. r.start .. ' ' ..
        us(not_before(tonumber(ARGV[1]), r)) .. ' ' .. r.bf .. ' {"reason":"' .. why .. '"}\n' .. (s['cfg:' .. j] or '{}')
    end
    for _, f in ipairs({'run:', 'cfg:', 'win:', 'stash:'}) do
      if s[f .. j] then
        gone[#gone + 1] = f .. j
        s[f .. j] = nil
      end
    end
  end
end
local set = {'jobs', ARGV[7], 'exclusive', ARGV[6], 'settings', ARGV[8], 'loaded_at', ARGV[9], 'layout', ARGV[10]}
s.jobs, s.exclusive, s.settings, s.loaded_at, s.layout = ARGV[7], ARGV[6], ARGV[8], ARGV[9], ARGV[10]
if not s.last_batch_id then
  s.last_batch_id = '0'
  set[#set + 1] = 'last_batch_id'
  set[#set + 1] = '0'
end
for i = 11, #ARGV, 4 do
  local job, given = ARGV[i], parse_run(ARGV[i + 1])
  local run = given
  if s['run:' .. job] then
    run = parse_run(s['run:' .. job])
    for _, k in ipairs({'status', 'id', 'from', 'to', 'start', 'en', 'bf'}) do
      if run[k] == '-' then run[k] = given[k] end
    end
  end
  if run.status == '-' then run.status = 'new' end
  s['run:' .. job], s['cfg:' .. job], s['win:' .. job] = run_text(run), ARGV[i + 2], ARGV[i + 3]
  for _, f in ipairs({'run:', 'cfg:', 'win:'}) do
    set[#set + 1] = f .. job
    set[#set + 1] = s[f .. job]
  end
end
if #gone > 0 then hdel(KEYS[1], gone) end
if #ended > 0 then hset(KEYS[3], ended) end
local flag = '0'
if reset then flag = '1' end
local fields = {'x', 'load ' .. ARGV[1] .. ' ' .. njobs .. ' ' .. flag}
return commit(s, set, KEYS[1], KEYS[2], ARGV[2], fields, ARGV[3], wf)
