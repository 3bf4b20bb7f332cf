-- index writes one workflow's entry in the installation-wide index, right after a change of the
-- workflow (whose own keys, in another Cluster slot, the change's script wrote). The index's keys
-- share the hash tag {~}, which no workflow name can have, so this script may touch them all.
--
-- KEYS[1] -> <prefix>:{~}:summaries (Keys.Summaries)
-- KEYS[2] -> <prefix>:{~}:status (Keys.StatusIndex)
-- KEYS[3] -> <prefix>:{~}:changes (Keys.IndexChanges)
-- KEYS[4] -> <prefix>:{~}:names (Keys.Names)
-- KEYS[5] -> <prefix>:{~}:due (Keys.Due)
-- KEYS[6] -> <prefix>:{~}:seq (Keys.IndexSeq)
-- KEYS[7] -> <prefix>:{~}:events (Keys.EventsIndex)
-- ARGV[1] -> the workflow
-- ARGV[2] -> its overall status
-- ARGV[3] -> the change's revision: the ID of the event entry it wrote (<ms>-<seq>, which Redis
--            makes increase in the workflow's stream), "0-0" for a state without one
-- ARGV[4] -> its summary's JSON
-- ARGV[5] -> 1 when the change may make a workflow with after: on this one ready (an end, a
--            load): it goes into the index of changes, which the scheduler reads
-- ARGV[6] -> 1 for a load (or a restore): the workflow joins the name index and is due for the
--            scheduler at once, which reads its settings again
--
-- Result: 1 when written, 0 when the index already holds a later revision of the workflow (two
-- replicas' index writes may arrive out of order; the later change wins, whatever the clocks).
--
-- The summaries hash holds "<status> <revision> <JSON>": one HGET gives both the status to move
-- in the status index and the revision that orders the writes. A change that keeps the status
-- costs an HGET and an HSET.

-- score (lua/score.lua) is prepended: it reads a score as ZSCORE answers it.

local wf, status, rev, summary = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms or '0'), tonumber(seq or '0')
end
local old = redis.call('HGET', KEYS[1], wf)
local was
if old then
  local r
  was, r = string.match(old, '^(%S+) (%S+)')
  local om, os = parse(r or '0-0')
  local nm, ns = parse(rev)
  if om > nm or (om == nm and os > ns) then return 0 end
end
-- last_success and last_failure outlive the state that showed them: a summary without one takes
-- the previous summary's. JSON escapes every quote inside a string, so the pattern finds the key
-- only where it is one.
if old then
  for _, key in ipairs({'last_success', 'last_failure'}) do
    local pat = '"' .. key .. '":"[^"]*"'
    if not string.find(summary, pat) then
      local kept = string.match(old, pat)
      if kept then summary = '{' .. kept .. ',' .. string.sub(summary, 2) end
    end
  end
end
if was ~= status then
  if was then redis.call('ZREM', KEYS[2], was .. ':' .. wf) end
  redis.call('ZADD', KEYS[2], 0, status .. ':' .. wf)
end
redis.call('HSET', KEYS[1], wf, status .. ' ' .. rev .. ' ' .. summary)
-- Scored by a counter of this Redis, not a clock: the scheduler and the log sinks' feeders read
-- exactly what came after what they read last.
local seq = redis.call('INCR', KEYS[6])
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[3], seq, wf)
end
-- Every change wrote an entry into the workflow's event stream: the log sinks' feeders find the
-- workflows with new events here (sinks.go), whatever their number.
redis.call('ZADD', KEYS[7], seq, wf)
if ARGV[6] == '1' then
  redis.call('ZADD', KEYS[4], 0, wf)
  -- As sched_mark.lua: a score below any the scheduler may have read, so that its next
  -- conditional update (sched_due.lua) leaves the mark.
  local due = score(redis.call('ZSCORE', KEYS[5], wf)) or 0
  redis.call('ZADD', KEYS[5], math.min(due, 0) - 1, wf)
end
return 1
