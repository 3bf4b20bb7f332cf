-- lib.lua: the helpers every script starts with (prepended by scripts.go).
--
-- The state hash (KEYS[1] of every changing script) holds per job three fields written as plain
-- text, so that no script ever decodes or encodes JSON (cjson would round big user numbers and its
-- number formatting dominated the old scripts' cost):
--   run:<job>  the job's runtime record (see record.go): "<status> <batch_id> <from_date> <to_date>
--              <batch_start> <batch_end> <backfill> <metadata>", dates as integer microseconds since
--              the epoch, 'n' for null, '-' for absent, metadata JSON text (it may hold spaces) last.
--   cfg:<job>  the job's configured fields as one JSON object, written by Go, copied as it is.
--   win:<job>  "<reprocess µs> <trunc_start 0|1> <initial_from_date µs>", written by Go at load.
-- Times come from Go as microseconds; scripts only compare and subtract them.
--
-- Errors are replies "<CODE> <message>" with CODE one of ENOTFOUND, ECONFLICT, EINVALID; the store
-- turns them into batch errors. Scripts check everything before they write anything, so an error
-- leaves the state exactly as it was.

local function fail(code, msg) return redis.error_reply(code .. ' ' .. msg) end

local function not_loaded(wf)
  return fail('ENOTFOUND', 'workflow ' .. wf .. ' is not loaded: load its configuration first (GET /load_cfg/' .. wf .. ')')
end

-- hgetall reads a hash into a table.
local function hgetall(key)
  local flat = redis.call('HGETALL', key)
  local h = {}
  for i = 1, #flat, 2 do h[flat[i]] = flat[i + 1] end
  return h
end

-- hset and hdel send a long list of fields in chunks: unpack is limited to a few thousand values.
local function chunked(cmd, key, list, step)
  for i = 1, #list, step do
    redis.call(cmd, key, unpack(list, i, math.min(i + step - 1, #list)))
  end
end
local function hset(key, list) chunked('HSET', key, list, 1000) end
local function hdel(key, fields) chunked('HDEL', key, fields, 1000) end

local function words(s)
  local out = {}
  for w in string.gmatch(s or '', '%S+') do out[#out + 1] = w end
  return out
end

-- scope returns the jobs named in ARGV[first..], or all the workflow's jobs when none are named;
-- nil and the name when one is not in the workflow.
local function scope(all, first)
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

local function parse_run(s)
  local st, id, from, to, start, en, bf, md = string.match(s or '', '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (%S+) (.*)$')
  return {status = st or '-', id = id or '-', from = from or '-', to = to or '-', start = start or '-',
    en = en or '-', bf = bf or '-', md = md or '-'}
end

local function run_text(r)
  return r.status .. ' ' .. r.id .. ' ' .. r.from .. ' ' .. r.to .. ' ' .. r.start .. ' ' .. r.en .. ' ' .. r.bf .. ' ' .. r.md
end

local function us(n) return string.format('%d', n) end

-- trim_history deletes the oldest batches of history (index, the ZSET of ids; history, the hash of
-- their jobs) beyond keep, at most 4,000 in one call, and returns how many batches are left. The
-- callers trim only once history passes keep + keep/16: a few calls every keep/16 opens instead of
-- on every one.
local function trim_history(index, history, keep)
  local n = redis.call('ZCARD', index)
  local old = {}
  if n > keep then old = redis.call('ZRANGE', index, 0, math.min(n - keep, 1000) - 1) end
  if #old == 0 then return n end
  local lists = redis.call('HMGET', history, unpack(old))
  local gone = {}
  for k, oid in ipairs(old) do
    gone[#gone + 1] = oid
    for _, j in ipairs(words(lists[k] or '')) do gone[#gone + 1] = oid .. ':' .. j end
  end
  hdel(history, gone)
  redis.call('ZREMRANGEBYRANK', index, 0, #old - 1)
  return n - #old
end

-- not_before returns now, or the record's batch_start or batch_end if later. The caller reads its
-- clock before the script runs, so a request that read it earlier can run after one that read it
-- later (or another replica's clock may lag): a job's times must still never go back, or a window
-- would end before it starts and a batch end before it began.
local function not_before(now, r)
  local s, e = tonumber(r.start), tonumber(r.en)
  if s and s > now then now = s end
  if e and e > now then now = e end
  return now
end

-- commit ends a changing script: it appends the transition's entry to the workflow's event stream
-- (fields: x "<kind> <time µs>", j the jobs it changed, then per job its runtime record after the
-- change, and for an abandon "~<job>" the batch it abandoned; see events.go), trimmed to about
-- keep entries; writes the state's changed fields (set) with rev, the state's revision: the
-- entry's ID and the writer's clock (ARGV[1] of every changing script); and tells every batchy replica that the workflow changed (waiters wake up and
-- re-check). All of it inside the transition's script, so a change is never made without its
-- event and its notification. It returns the entry's ID and fields and the whole state after the
-- change (s, as pairs), from which batchy builds its answer and its copy of the state (apply.lua).
local function commit(s, set, keys_state, events, keep, fields, channel, wf)
  local entry = redis.call('XADD', events, 'MAXLEN', '~', keep, '*', unpack(fields))
  s.rev = entry .. ' ' .. ARGV[1] -- with the writer's clock: unique even if a failover reuses an ID
  set[#set + 1] = 'rev'
  set[#set + 1] = s.rev
  hset(keys_state, set)
  redis.call('PUBLISH', channel, wf)
  local flat = {}
  for k, v in pairs(s) do
    flat[#flat + 1] = k
    flat[#flat + 1] = v
  end
  return {entry, fields, flat}
end
