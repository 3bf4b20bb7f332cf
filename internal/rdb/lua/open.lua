-- open.lua: opens a batch (SPEC.md "open").
-- KEYS[1] state, KEYS[2] batches (history index), KEYS[3] history, KEYS[4] events, KEYS[5] zone
-- ARGV[1] now (µs), ARGV[2] events kept, ARGV[3] history batches kept, ARGV[4] pub/sub channel,
-- ARGV[5] workflow, ARGV[6] time zone name, ARGV[7] the zone's table or '' (see midnight),
-- ARGV[8] window from (µs) or '', ARGV[9] window to (µs) or '', ARGV[10] '1' when that window is
-- an interval (window: schedule: a regular batch over the given window) rather than a backfill,
-- ARGV[11..] jobs (none: all)
-- Result: commit(), the entry holding each job's new runtime record and, for an open batch this
-- open abandoned, its id; or ENOTFOUND (workflow, job), ECONFLICT (an open job of an exclusive workflow, or in a
-- backfill), ETZ (the zone table is needed: call again with it), EWINDOW "<job> <from µs> <to µs>"
-- (a job's window would start after it ends: a from_date in the future; the store words it).
local s = hgetall(KEYS[1])
local wf = ARGV[5]
if not s.jobs then return not_loaded(wf) end
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[3])
local win_from, win_to = tonumber(ARGV[8]), tonumber(ARGV[9])
local bf_from = win_from
if ARGV[10] == '1' then bf_from = nil end -- an interval: a regular batch, no stash
local all = words(s.jobs)
local jobs, unknown = scope(all, 11)
if not jobs then return fail('ENOTFOUND', 'job ' .. unknown .. ' is not in workflow ' .. wf) end
local exclusive = s.exclusive == '1'

-- The time zone table of trunc_start's midnight: "<offset>;<unix second>:<offset>;..." with offsets
-- in seconds east of UTC, the first one in force before the first transition (rdb.zoneTable). A
-- zone with daylight saving time has hundreds of transitions, so its table is kept in the zone key
-- (its name in the state's tzname) and sent again only when the server's zone differs; a zone of
-- one offset (UTC) is always sent, it costs less than a read.
local tz_t, tz_o = {}, {}
local tz_read, tz_new = false, false
local function read_tz()
  if tz_read then return true end
  local spec = ARGV[7]
  if spec == '' then
    if s.tzname ~= ARGV[6] then return false end
    spec = redis.call('GET', KEYS[5])
    if not spec then return false end
  elseif s.tzname ~= ARGV[6] then
    tz_new = true
  end
  if not string.find(spec, ';', 1, true) then -- one offset all along (UTC)
    tz_t[1], tz_o[1], tz_read = -1e300, tonumber(spec), true
    return true
  end
  for part in string.gmatch(spec, '[^;]+') do
    local t, o = string.match(part, '^(%-?%d+):(%-?%d+)$')
    if t then
      tz_t[#tz_t + 1] = tonumber(t); tz_o[#tz_o + 1] = tonumber(o)
    else
      tz_t[1] = -1e300; tz_o[1] = tonumber(part)
    end
  end
  tz_read = true
  return true
end

local function offset_at(t)
  local sec = t / 1000000
  local lo, hi = 1, #tz_t
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if tz_t[mid] <= sec then lo = mid else hi = mid - 1 end
  end
  return tz_o[lo] * 1000000
end

-- midnight returns the start of the local day holding t, never before year 0001 (batch.Midnight):
-- 00:00 in one of the offsets in force around the day or, where the clocks jump over midnight, the
-- jump: the earliest of these that falls on the day.
local DAY, HOUR = 86400000000, 3600000000
local FIRST = -62135596800000000 -- 0001-01-01T00:00:00Z
local function midnight(t)
  if #tz_t == 1 then -- one offset all along (UTC): the day starts at 00:00 in it
    local off = tz_o[1] * 1000000
    local start = math.floor((t + off) / DAY) * DAY - off
    if start < FIRST then start = FIRST end
    return start
  end
  local day = math.floor((t + offset_at(t)) / DAY) * DAY -- the local day's 00:00, read as UTC
  local start = t
  local function consider(c)
    if c < start and math.floor((c + offset_at(c)) / DAY) * DAY == day then start = c end
  end
  for _, h in ipairs({-26, -12, 0, 12, 26}) do consider(day - offset_at(day + h * HOUR)) end
  for i = 2, #tz_t do
    local jump = tz_t[i] * 1000000
    if jump >= day - 26 * HOUR and jump <= day + 26 * HOUR then consider(jump) end
  end
  if start < FIRST then start = FIRST end
  return start
end

-- Check every job and compute every window before writing anything.
local runs, froms = {}, {}
for i, job in ipairs(jobs) do
  local r = parse_run(s['run:' .. job])
  runs[i] = r
  if r.status == 'open' and (r.bf == '1' or bf_from or exclusive) then
    local which = 'job ' .. job .. ' is already open in batch ' .. (r.id ~= '-' and r.id or '?')
    if r.bf == '1' then return fail('ECONFLICT', which .. ', a backfill: close or fail it first') end
    if bf_from then return fail('ECONFLICT', which .. ': close or fail it before a backfill') end
    return fail('ECONFLICT', which .. ' and workflow ' .. wf .. ' is exclusive')
  end
  now = not_before(now, r)
  if win_from then
    froms[i] = win_from
  else
    local reprocess, trunc, initial = string.match(s['win:' .. job] or '', '^(%S+) (%S+) (%S+)$')
    local start, from = tonumber(r.start), nil
    if r.status == 'success' and start then
      from = start - (tonumber(reprocess) or 0)
    else
      from = tonumber(r.from) or tonumber(initial)
    end
    if trunc == '1' then
      if not read_tz() then return fail('ETZ', 'time zone table needed') end
      from = midnight(from)
    end
    froms[i] = from
  end
end

if not win_from then
  for i, job in ipairs(jobs) do
    if froms[i] > now then return fail('EWINDOW', job .. ' ' .. us(froms[i]) .. ' ' .. us(now)) end
  end
end

local last = tonumber(s.last_batch_id or '0')
local id = math.floor(now / 1000000)
if id <= last then id = last + 1 end
local sid, nows = us(id), us(now)
s.last_batch_id = sid
local list = table.concat(jobs, ' ')
local set = {'last_batch_id', sid}
local hist = {sid, list}
local fields = {'x', 'open ' .. nows, 'j', list}
local tos, bf = nows, '-'
if win_from then tos = us(win_to) end
if bf_from then bf = '1' end
local in_history = {}
for i, job in ipairs(jobs) do
  local r = runs[i]
  local rk, cfg = 'run:' .. job, s['cfg:' .. job] or '{}'
  if r.status == 'open' then
    -- The abandoned batch keeps this job's record in history (if still there), marked abandoned.
    if in_history[r.id] == nil then in_history[r.id] = redis.call('HEXISTS', KEYS[3], r.id) == 1 end
    if in_history[r.id] then
      hist[#hist + 1] = r.id .. ':' .. job
      hist[#hist + 1] = 'abandoned ' .. r.id .. ' ' .. r.from .. ' ' .. r.to .. ' ' .. r.start .. ' ' .. nows .. ' ' .. r.bf .. ' ' .. r.md .. '\n' .. cfg
    end
    fields[#fields + 1] = '~' .. job
    fields[#fields + 1] = r.id
  end
  if bf_from then
    local old = s[rk]
    set[#set + 1] = 'stash:' .. job
    set[#set + 1] = old
    s['stash:' .. job] = old
  end
  local run = 'open ' .. sid .. ' ' .. us(froms[i]) .. ' ' .. tos .. ' ' .. nows .. ' n ' .. bf .. ' -'
  s[rk] = run
  set[#set + 1] = rk
  set[#set + 1] = run
  hist[#hist + 1] = sid .. ':' .. job
  hist[#hist + 1] = run .. '\n' .. cfg
  fields[#fields + 1] = job
  fields[#fields + 1] = run
end

-- History keeps between keep and keep + keep/16 batches (trim_history); hist_n counts them without
-- a ZCARD on every open.
hset(KEYS[3], hist)
redis.call('ZADD', KEYS[2], id, sid)
local n = (tonumber(s.hist_n) or redis.call('ZCARD', KEYS[2]) - 1) + 1
if n > keep + math.floor(keep / 16) then n = trim_history(KEYS[2], KEYS[3], keep) end
set[#set + 1] = 'hist_n'
set[#set + 1] = us(n)
if tz_new then
  set[#set + 1] = 'tzname'; set[#set + 1] = ARGV[6]
  s.tzname = ARGV[6]
  redis.call('SET', KEYS[5], ARGV[7])
end
s.hist_n = us(n)
return commit(s, set, KEYS[1], KEYS[4], ARGV[2], fields, ARGV[4], wf)
