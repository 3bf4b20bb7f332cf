-- restore.lua: replaces a workflow's whole stored state (import, and the migration of data written
-- in an earlier layout, whose keys it deletes in the same step).
-- KEYS[1] state, KEYS[2] batches (history index), KEYS[3] history, KEYS[4..] keys of an earlier
-- layout to delete
-- ARGV[1] pub/sub channel, ARGV[2] workflow, ARGV[3] n, then n state fields and values, then m,
-- then m history fields and values, then the batch ids.
-- Result: 'OK'.
for k = 1, #KEYS, 1000 do redis.call('DEL', unpack(KEYS, k, math.min(k + 999, #KEYS))) end
local i = 3
local function section(key)
  local n = tonumber(ARGV[i])
  local list = {}
  for k = i + 1, i + 2 * n do list[#list + 1] = ARGV[k] end
  i = i + 2 * n + 1
  if n > 0 then hset(key, list) end
end
section(KEYS[1])
section(KEYS[3])
local z = {}
for k = i, #ARGV do
  z[#z + 1] = ARGV[k]
  z[#z + 1] = ARGV[k]
end
for k = 1, #z, 1000 do redis.call('ZADD', KEYS[2], unpack(z, k, math.min(k + 999, #z))) end
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 'OK'
