-- apply.lua: writes a transition that batchy computed in Go from its copy of the workflow's state
-- (the fast path of open and close/fail, fast.go), provided the state is still at the revision the
-- copy was taken at: every changing script sets rev to the ID of the event entry it wrote. open.lua
-- and end.lua compute the same in Lua; batchy runs them when it has no current copy, when the copy
-- was stale twice, and to report any error.
-- KEYS[1] state, KEYS[2] batches (history index), KEYS[3] history, KEYS[4] events
-- ARGV[1] the rev the change was computed from, ARGV[2] events kept, ARGV[3] pub/sub channel,
-- ARGV[4] workflow, ARGV[5] a batch id to add to the history index, or '', ARGV[6] history batches
-- kept: trim when hist_n (set below) passes keep + keep/16, or '0', ARGV[7] the writer's clock
-- (µs: the new rev is the entry's ID and it, as in lib.lua commit), then four sections, each a
-- count n and its items: state fields to set (n pairs, never empty), state fields to delete (n),
-- history fields to set (n pairs), history fields to set only if their batch is still in history
-- (n triples: batch id, field, value); then the event entry's fields (pairs, to the end).
-- Result: {'OK', entry ID, hist_n after a trim or ''}, or {'STALE', the state as pairs} when the
-- state is no longer at that revision (nothing written).
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[1] then return {'STALE', redis.call('HGETALL', KEYS[1])} end
local i = 8
local function section(width)
  local n = tonumber(ARGV[i])
  local first = i + 1
  i = i + width * n + 1
  return first, i - 1, n
end
local set_a, set_b = section(2)
local del_a, del_b, ndel = section(1)
local hist_a, hist_b = section(2)
local cond_a, _, ncond = section(3)
local entry = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, i, #ARGV))
redis.call('HSET', KEYS[1], 'rev', entry .. ' ' .. ARGV[7], unpack(ARGV, set_a, set_b))
if ndel > 0 then redis.call('HDEL', KEYS[1], unpack(ARGV, del_a, del_b)) end
if ncond == 0 then
  if hist_b >= hist_a then redis.call('HSET', KEYS[3], unpack(ARGV, hist_a, hist_b)) end
else
  local hist = {}
  for k = hist_a, hist_b do hist[#hist + 1] = ARGV[k] end
  local in_history = {}
  for k = cond_a, cond_a + 3 * (ncond - 1), 3 do
    local id = ARGV[k]
    if in_history[id] == nil then in_history[id] = redis.call('HEXISTS', KEYS[3], id) == 1 end
    if in_history[id] then
      hist[#hist + 1] = ARGV[k + 1]
      hist[#hist + 1] = ARGV[k + 2]
    end
  end
  if #hist > 0 then hset(KEYS[3], hist) end
end
local trimmed = ''
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[5])
  local keep = tonumber(ARGV[6])
  if keep > 0 then
    local n = trim_history(KEYS[2], KEYS[3], keep)
    trimmed = string.format('%d', n)
    redis.call('HSET', KEYS[1], 'hist_n', trimmed)
  end
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {'OK', entry, trimmed}
