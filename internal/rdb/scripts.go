package rdb

import "github.com/redis/go-redis/v9"

// Every script gets the workflow's meta key as KEYS[1] and derives the workflow's other keys from it
// by replacing the trailing "meta" (see Keys): they share its hash tag, so they are in its slot.
// Field values in job hashes are JSON text: strings are quoted ('"open"'), so the scripts compare
// against quoted literals and never decode user values (cjson would round big numbers).
//
// Errors are replies "<CODE> <message>" with CODE one of ENOTFOUND, ECONFLICT, EINVALID; the store
// turns them into batch errors. Scripts check everything before they write anything, so an error
// leaves the state exactly as it was.

// luaLib is shared by the scripts: dates as integer microseconds since the epoch (exact in a Lua
// double for whole seconds in years 0001-9999, and to the microsecond in 1700-2199, the dates
// batch.ParseTime accepts), the time zone table for trunc_start, and state helpers.
const luaLib = `
local DAY = 86400000000
local RUNTIME = {'status', 'batch_id', 'from_date', 'to_date', 'batch_start', 'batch_end', 'backfill', 'metadata'}
local IS_RUNTIME = {}
for _, f in ipairs(RUNTIME) do IS_RUNTIME[f] = true end
local meta = KEYS[1]
local base = string.sub(meta, 1, -5)
local wfname = string.match(base, '{(.*)}:$') or base

-- notify tells every batchy replica that the workflow changed, on the channel "<prefix>:changed"
-- (see Keys.Changed): waiters wake up and re-check. Publishing inside the script means no change
-- is ever made without its notification.
local function notify()
  redis.call('PUBLISH', string.match(meta, '^(.*):{') .. ':changed', wfname)
end

local function fail(code, msg) return redis.error_reply(code .. ' ' .. msg) end

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp + 3
  if mp >= 10 then m = mp - 9 end
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return y, m, d
end

-- parse_time reads a stored date (JSON text '"2026-11-22T13:49:30.840061Z"'); nil for anything else.
local function parse_time(j)
  if not j then return nil end
  local y, mo, d, h, mi, s, f = string.match(j, '^"(%d%d%d%d)%-(%d%d)%-(%d%d)T(%d%d):(%d%d):(%d%d)%.(%d%d%d%d%d%d)Z"$')
  if not y then return nil end
  local secs = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
  return secs * 1000000 + tonumber(f)
end

-- format_time writes microseconds as stored date JSON text.
local function format_time(us)
  local days = math.floor(us / DAY)
  local rem = us - days * DAY
  local y, m, d = civil_from_days(days)
  local secs = math.floor(rem / 1000000)
  return string.format('"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ"', y, m, d,
    math.floor(secs / 3600), math.floor(secs / 60) % 60, secs % 60, rem - secs * 1000000)
end

local INITIAL = parse_time('"1776-07-04T23:59:00.000000Z"')

-- The time zone table: "<offset>;<unix second>:<offset>;..." with offsets in seconds east of UTC,
-- the first one in force before the first transition. It is read only when a midnight is needed
-- (trunc_start): a zone with daylight saving time has hundreds of transitions, and reading them
-- on every open doubled the open's cost in Redis.
local tz_t, tz_o = {}, {}
local tz_spec
local function load_tz(spec) tz_spec = spec end
local function read_tz()
  if not tz_spec then return end
  for part in string.gmatch(tz_spec, '[^;]+') do
    local t, o = string.match(part, '^(%-?%d+):(%-?%d+)$')
    if t then
      tz_t[#tz_t + 1] = tonumber(t); tz_o[#tz_o + 1] = tonumber(o)
    else
      tz_t[1] = -1e300; tz_o[1] = tonumber(part)
    end
  end
  tz_spec = nil
end

local function offset_at(us)
  read_tz()
  local s = us / 1000000
  local lo, hi = 1, #tz_t
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if tz_t[mid] <= s then lo = mid else hi = mid - 1 end
  end
  return tz_o[lo] * 1000000
end

-- midnight returns the start of the local day holding us, never before year 0001 (batch.Midnight).
local FIRST = -62135596800000000 -- 0001-01-01T00:00:00Z
-- The day starts at 00:00 in one of the offsets in force around it or, where the clocks jump over
-- midnight, at the jump: the earliest of these that falls on the day (as batch.Midnight).
local HOUR = 3600000000
local function midnight(us)
  local day = math.floor((us + offset_at(us)) / DAY) * DAY -- the local day's 00:00, read as UTC
  local start = us
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

local function hash(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- json_object writes a job hash (values already JSON text) as one JSON object, with overrides.
local function json_object(h, over)
  local keys = {}
  for k in pairs(h) do keys[#keys + 1] = k end
  if over then
    for k in pairs(over) do
      if h[k] == nil then keys[#keys + 1] = k end
    end
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = h[k]
    if over and over[k] then v = over[k] end
    parts[#parts + 1] = cjson.encode(k) .. ':' .. v
  end
  return '{' .. table.concat(parts, ',') .. '}'
end

local function job_list()
  local j = redis.call('HGET', meta, 'jobs')
  if not j then return {} end
  return cjson.decode(j)
end

-- scope returns the jobs named in ARGV[first..], or all jobs when none are named; nil and the
-- name when one is not in the workflow.
local function scope(first)
  local all = job_list()
  if #ARGV < first then return all end
  local member = {}
  for _, j in ipairs(all) do member[j] = true end
  local out = {}
  for i = first, #ARGV do
    if not member[ARGV[i]] then return nil, ARGV[i] end
    out[#out + 1] = ARGV[i]
  end
  return out
end

local function state()
  local m = redis.call('HMGET', meta, 'last_batch_id', 'exclusive', 'loaded_at', 'settings')
  local out = {m[1] or '0', m[2] or '0', m[3] or '', m[4] or '{}'}
  for _, j in ipairs(job_list()) do
    out[#out + 1] = j
    out[#out + 1] = redis.call('HGETALL', base .. 'job:' .. j)
  end
  return out
end

local function not_loaded()
  return fail('ENOTFOUND', 'workflow ' .. wfname .. ' is not loaded: load its configuration first (GET /load_cfg/' .. wfname .. ')')
end

-- not_before returns now, or the job's batch_start or batch_end (h is its hash) if later. The
-- caller reads its clock before the script runs, so a request that read it earlier can run after
-- one that read it later (or another replica's clock may lag): a job's times must still never
-- go back, or a window would end before it starts and a batch end before it began.
local function not_before(now, h)
  local s, e = parse_time(h.batch_start), parse_time(h.batch_end)
  if s and s > now then now = s end
  if e and e > now then now = e end
  return now
end

local function record(id, job, obj)
  if id and redis.call('ZSCORE', base .. 'batches', id) then
    redis.call('HSET', base .. 'batch:' .. id, job, obj)
  end
end

-- Events. A changing script appends the events of its change to the workflow's stream (keys.Events)
-- itself, so that a change is never made without its events, and returns them, each as JSON with its
-- entry ID, for batchy to hand on to its other sinks. Changing scripts get the stream's cap as
-- ARGV[1], before their own arguments: begin_change takes it off, so theirs keep their positions.
local EVENTS_KEEP = 100000
local recorded = {}

local function begin_change()
  EVENTS_KEEP = tonumber(table.remove(ARGV, 1)) or EVENTS_KEEP
end

-- unquote turns stored JSON text of a string or a number into its text.
local function unquote(j)
  if not j then return nil end
  return (string.gsub(j, '^"(.*)"$', '%1'))
end

-- batch_number reads a stored batch_id as a number an event can carry exactly; nil otherwise.
local function batch_number(j)
  local n = tonumber(unquote(j) or '')
  if n and n == math.floor(n) and math.abs(n) < 1e14 then return n end -- cjson writes 14 digits
  return nil
end

-- event records one event (fields of event.Event but time and workflow) at time now (µs). A failed
-- append never fails the change it reports (redis.pcall): the state is the authority.
local function event(now, e)
  e.time = unquote(format_time(now))
  e.workflow = wfname
  e.level = e.level or 'info'
  local body = cjson.encode(e)
  local id = redis.pcall('XADD', base .. 'events', 'MAXLEN', '~', EVENTS_KEEP, '*', 'e', body)
  if type(id) ~= 'string' then return end
  recorded[#recorded + 1] = id
  recorded[#recorded + 1] = body
end

-- changed ends a changing script: it tells the replicas (notify) and returns the script's result
-- with the events it recorded, as entry ID and JSON pairs.
local function changed(result)
  notify()
  return {result, recorded}
end
`

// scriptLoad stores a workflow's configuration.
// KEYS[1] meta. ARGV[0] the event stream's cap (see begin_change), ARGV[1] now (µs), ARGV[2]
// reset "1"/"0", ARGV[3] exclusive "1"/"0", ARGV[4] the job names as a JSON array, ARGV[5] the
// workflow settings as JSON, then per job: name, field count n, n pairs of field and JSON value.
// Runtime fields are set only where the job has none yet (unless reset), other fields replace the
// job's configuration fields, and jobs no longer in the file are removed (history keeps them).
// Result: {state, events}.
var scriptLoad = redis.NewScript(luaLib + `
begin_change()
local now, reset = tonumber(ARGV[1]), ARGV[2] == '1'
local newjobs = cjson.decode(ARGV[4])
local keep = {}
for _, j in ipairs(newjobs) do keep[j] = true end
for _, j in ipairs(job_list()) do
  if reset or not keep[j] then redis.call('DEL', base .. 'job:' .. j, base .. 'stash:' .. j) end
end
local i = 6
while i <= #ARGV do
  local key = base .. 'job:' .. ARGV[i]
  local n = tonumber(ARGV[i + 1])
  i = i + 2
  if reset then redis.call('DEL', key, base .. 'stash:' .. ARGV[i - 2]) end
  local given = {}
  for _ = 1, n do
    local f, v = ARGV[i], ARGV[i + 1]
    i = i + 2
    given[f] = true
    if IS_RUNTIME[f] then redis.call('HSETNX', key, f, v) else redis.call('HSET', key, f, v) end
  end
  redis.call('HSETNX', key, 'status', '"new"')
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if not given[f] and not IS_RUNTIME[f] then redis.call('HDEL', key, f) end
  end
end
redis.call('HSET', meta, 'jobs', ARGV[4], 'exclusive', ARGV[3], 'settings', ARGV[5], 'loaded_at', format_time(now))
redis.call('HSETNX', meta, 'last_batch_id', '0')
local msg = 'configuration loaded: ' .. #newjobs .. ' jobs'
if reset then msg = msg .. ', runtime state reset' end
event(now, {type = 'load', message = msg, fields = {reset = reset}})
return changed(state())
`)

// scriptState reads a workflow's state in one consistent snapshot.
// KEYS[1] meta. Result: the state, or ENOTFOUND.
var scriptState = redis.NewScript(luaLib + `
if redis.call('EXISTS', meta) == 0 then return not_loaded() end
return state()
`)

// scriptOpen opens a batch (SPEC.md "open").
// KEYS[1] meta. ARGV[0] the event stream's cap, ARGV[1] now (µs), ARGV[2] time zone table,
// ARGV[3] history batches to keep, ARGV[4] backfill from (µs) or "", ARGV[5] backfill to (µs) or
// "", ARGV[6..] jobs (none: all).
// Result: {state, events}: an abandon event for each open batch this open abandoned, then an open
// event per job; or ENOTFOUND (workflow, job), ECONFLICT (open job in an exclusive workflow, or in
// a backfill).
var scriptOpen = redis.NewScript(luaLib + `
begin_change()
if redis.call('EXISTS', meta) == 0 then return not_loaded() end
local now, keep = tonumber(ARGV[1]), tonumber(ARGV[3])
load_tz(ARGV[2])
local bf_from, bf_to = tonumber(ARGV[4]), tonumber(ARGV[5])
local jobs, unknown = scope(6)
if not jobs then return fail('ENOTFOUND', 'job ' .. unknown .. ' is not in workflow ' .. wfname) end
local exclusive = redis.call('HGET', meta, 'exclusive') == '1'
local states = {}
for i, job in ipairs(jobs) do
  local h = hash(base .. 'job:' .. job)
  states[i] = h
  if h.status == '"open"' then
    local which = 'job ' .. job .. ' is already open in batch ' .. (h.batch_id or '?')
    if h.backfill == 'true' then return fail('ECONFLICT', which .. ', a backfill: close or fail it first') end
    if bf_from then return fail('ECONFLICT', which .. ': close or fail it before a backfill') end
    if exclusive then return fail('ECONFLICT', which .. ' and workflow ' .. wfname .. ' is exclusive') end
  end
end
local last = tonumber(redis.call('HGET', meta, 'last_batch_id') or '0')
local id = math.floor(now / 1000000)
if id <= last then id = last + 1 end
local sid = string.format('%d', id)
for _, h in ipairs(states) do now = not_before(now, h) end
local nowj = format_time(now)
redis.call('HSET', meta, 'last_batch_id', sid)
redis.call('ZADD', base .. 'batches', id, sid)
local opened = {}
for i, job in ipairs(jobs) do
  local key = base .. 'job:' .. job
  local h = states[i]
  if h.status == '"open"' then
    record(h.batch_id, job, json_object(h, {status = '"abandoned"', batch_end = nowj}))
    local old = unquote(h.batch_id) or '?'
    event(now, {job = job, batch_id = batch_number(h.batch_id), type = 'abandon', level = 'warn',
      message = 'batch ' .. old .. ' abandoned: job opened again in batch ' .. sid .. ' before it ended'})
  end
  local from, to = bf_from, bf_to
  if bf_from then
    local stash = base .. 'stash:' .. job
    redis.call('DEL', stash)
    redis.call('HSET', stash, '_stashed', '1')
    for _, f in ipairs(RUNTIME) do
      if h[f] then redis.call('HSET', stash, f, h[f]) end
    end
  else
    local start = parse_time(h.batch_start)
    if h.status == '"success"' and start then
      from = start - math.floor((tonumber(h.reprocess_hours) or 0) * 3600000000 + 0.5)
    else
      from = parse_time(h.from_date) or parse_time(h.initial_from_date) or INITIAL
    end
    if h.trunc_start == 'true' then from = midnight(from) end
    to = now
  end
  redis.call('HSET', key, 'status', '"open"', 'batch_id', sid, 'from_date', format_time(from),
    'to_date', format_time(to), 'batch_start', nowj, 'batch_end', 'null')
  if bf_from then redis.call('HSET', key, 'backfill', 'true') else redis.call('HDEL', key, 'backfill') end
  redis.call('HDEL', key, 'metadata') -- the previous batch's run metadata stays in its history
  record(sid, job, json_object(hash(key)))
  opened[i] = {unquote(format_time(from)), unquote(format_time(to))}
end
for i, job in ipairs(jobs) do
  local from, to = opened[i][1], opened[i][2]
  local e = {job = job, batch_id = id, type = 'open', fields = {from_date = from, to_date = to},
    message = 'batch ' .. sid .. ' opened: window ' .. from .. ' to ' .. to}
  if bf_from then
    e.fields.backfill = true
    e.message = 'backfill ' .. e.message
  end
  event(now, e)
end
local n = redis.call('ZCARD', base .. 'batches')
if n > keep then
  for _, old in ipairs(redis.call('ZRANGE', base .. 'batches', 0, n - keep - 1)) do
    redis.call('DEL', base .. 'batch:' .. old)
  end
  redis.call('ZREMRANGEBYRANK', base .. 'batches', 0, n - keep - 1)
end
return changed(state())
`)

// scriptEnd closes or fails a batch (SPEC.md "close", "fail").
// KEYS[1] meta. ARGV[0] the event stream's cap, ARGV[1] now (µs), ARGV[2] new status as JSON
// text, ARGV[3] strict "1"/"0" (only open jobs), ARGV[4] expected batch id or "", ARGV[5] run
// metadata as a JSON object or "", ARGV[6..] jobs (none: all).
// Result: {state, events} (a close or fail event per job), or ENOTFOUND, ECONFLICT (a job not open
// when strict, or in another batch). A job ending a backfill gets its regular state back from its
// stash; its event names the backfill's batch.
var scriptEnd = redis.NewScript(luaLib + `
begin_change()
if redis.call('EXISTS', meta) == 0 then return not_loaded() end
local now, strict, want, metadata = tonumber(ARGV[1]), ARGV[3] == '1', ARGV[4], ARGV[5]
local jobs, unknown = scope(6)
if not jobs then return fail('ENOTFOUND', 'job ' .. unknown .. ' is not in workflow ' .. wfname) end
for _, job in ipairs(jobs) do
  local m = redis.call('HMGET', base .. 'job:' .. job, 'status', 'batch_id', 'batch_start', 'batch_end')
  if strict and m[1] ~= '"open"' then
    return fail('ECONFLICT', 'job ' .. job .. ' is not open (status ' .. (m[1] or 'none') .. ')')
  end
  if want ~= '' and m[2] ~= want then
    return fail('ECONFLICT', 'job ' .. job .. ' is in batch ' .. (m[2] or 'none') .. ', not ' .. want)
  end
  now = not_before(now, {batch_start = m[3], batch_end = m[4]})
end
local nowj = format_time(now)
local typ, level, verb = 'close', 'info', 'succeeded'
if ARGV[2] == '"failed"' then typ, level, verb = 'fail', 'error', 'failed' end
for _, job in ipairs(jobs) do
  local key = base .. 'job:' .. job
  redis.call('HSET', key, 'status', ARGV[2], 'batch_end', nowj)
  if metadata ~= '' then redis.call('HSET', key, 'metadata', metadata) end
  local h = hash(key)
  record(h.batch_id, job, json_object(h))
  local e = {job = job, batch_id = batch_number(h.batch_id), type = typ, level = level,
    message = 'batch ' .. (unquote(h.batch_id) or '0') .. ' ' .. verb}
  local s, en = parse_time(h.batch_start), parse_time(h.batch_end)
  if s and en then e.fields = {duration_seconds = (en - s) / 1000000} end
  event(now, e)
  local stash = base .. 'stash:' .. job
  if redis.call('EXISTS', stash) == 1 then
    local s = hash(stash)
    for _, f in ipairs(RUNTIME) do
      if s[f] then redis.call('HSET', key, f, s[f]) else redis.call('HDEL', key, f) end
    end
    redis.call('DEL', stash)
  end
end
return changed(state())
`)

// scriptWatermark sets where a job's next window starts: from_date, with status new so that the
// next open keeps it (SPEC.md open, step 1).
// KEYS[1] meta. ARGV[0] the event stream's cap, ARGV[1] from_date as JSON text, ARGV[2] now (µs),
// ARGV[3] the job.
// Result: {state, events} (a rewind event), or ENOTFOUND, ECONFLICT (the job is open).
var scriptWatermark = redis.NewScript(luaLib + `
begin_change()
if redis.call('EXISTS', meta) == 0 then return not_loaded() end
local jobs, unknown = scope(3)
if not jobs then return fail('ENOTFOUND', 'job ' .. unknown .. ' is not in workflow ' .. wfname) end
local key = base .. 'job:' .. ARGV[3]
local st = redis.call('HGET', key, 'status')
if st == '"open"' then
  return fail('ECONFLICT', 'job ' .. ARGV[3] .. ' is open: close or fail it before moving its watermark')
end
redis.call('HSET', key, 'from_date', ARGV[1], 'status', '"new"')
local from = unquote(ARGV[1])
event(tonumber(ARGV[2]), {job = ARGV[3], type = 'rewind', level = 'warn', fields = {from_date = from},
  message = 'watermark set: the next window starts at ' .. from})
return changed(state())
`)

// scriptBatches lists history, newest first.
// KEYS[1] meta. ARGV[1] limit, ARGV[2] list ids below this one, or "+inf".
// Result: {id, {job, json, ...}, ...}, or ENOTFOUND.
var scriptBatches = redis.NewScript(luaLib + `
if redis.call('EXISTS', meta) == 0 then return not_loaded() end
local max = ARGV[2]
if max ~= '+inf' then max = '(' .. max end
local out = {}
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', base .. 'batches', max, '-inf', 'LIMIT', 0, tonumber(ARGV[1]))) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', base .. 'batch:' .. id)
end
return out
`)

// scriptDump reads a workflow's whole state.
// KEYS[1] meta. Result: {meta pairs, {job, pairs, ...}, {job, stash pairs, ...}, {id, pairs, ...}},
// or ENOTFOUND.
var scriptDump = redis.NewScript(luaLib + `
if redis.call('EXISTS', meta) == 0 then return not_loaded() end
local jobs, stash, batches = {}, {}, {}
for _, j in ipairs(job_list()) do
  jobs[#jobs + 1] = j
  jobs[#jobs + 1] = redis.call('HGETALL', base .. 'job:' .. j)
  local s = redis.call('HGETALL', base .. 'stash:' .. j)
  if #s > 0 then
    stash[#stash + 1] = j
    stash[#stash + 1] = s
  end
end
for _, id in ipairs(redis.call('ZRANGE', base .. 'batches', 0, -1)) do
  batches[#batches + 1] = id
  batches[#batches + 1] = redis.call('HGETALL', base .. 'batch:' .. id)
end
return {redis.call('HGETALL', meta), jobs, stash, batches}
`)

// scriptRestore replaces a workflow's whole state.
// KEYS[1] meta. ARGV: four sections, each a count n then its items: meta (n pairs), jobs and
// stashes (n of: name, pair count m, m pairs), batches (n of: id, pair count m, m pairs).
// Result: "OK".
var scriptRestore = redis.NewScript(luaLib + `
for _, j in ipairs(job_list()) do redis.call('DEL', base .. 'job:' .. j, base .. 'stash:' .. j) end
for _, id in ipairs(redis.call('ZRANGE', base .. 'batches', 0, -1)) do redis.call('DEL', base .. 'batch:' .. id) end
redis.call('DEL', meta, base .. 'batches')
local i = 1
local function section(write)
  local n = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, n do i = write(i) end
end
local function hashes(kind)
  return function(at)
    local key, m = base .. kind .. ARGV[at], tonumber(ARGV[at + 1])
    at = at + 2
    for _ = 1, m do
      redis.call('HSET', key, ARGV[at], ARGV[at + 1])
      at = at + 2
    end
    if kind == 'batch:' then redis.call('ZADD', base .. 'batches', tonumber(ARGV[at - 2 * m - 2]), ARGV[at - 2 * m - 2]) end
    return at
  end
end
section(function(at) redis.call('HSET', meta, ARGV[at], ARGV[at + 1]); return at + 2 end)
section(hashes('job:'))
section(hashes('stash:'))
section(hashes('batch:'))
notify()
return 'OK'
`)
