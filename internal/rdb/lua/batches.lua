-- batches.lua: lists history, newest first.
-- KEYS[1] state, KEYS[2] batches (history index), KEYS[3] history
-- ARGV[1] the most batches to list, ARGV[2] the highest id to list, or '+inf', ARGV[3] the lowest
-- id to list, or '-inf', ARGV[4] workflow
-- Result: {the workflow's jobs (space-separated), {id, {job, entry, ...}}...}, or ENOTFOUND.
local jobs = redis.call('HGET', KEYS[1], 'jobs')
if not jobs then return not_loaded(ARGV[4]) end
local out = {}
for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[1]))) do
  local names = {}
  for j in string.gmatch(redis.call('HGET', KEYS[3], id) or '', '%S+') do names[#names + 1] = j end
  local fields = {}
  for _, j in ipairs(names) do fields[#fields + 1] = id .. ':' .. j end
  local entries = {}
  if #fields > 0 then entries = redis.call('HMGET', KEYS[3], unpack(fields)) end
  local b = {}
  for k, j in ipairs(names) do
    if entries[k] then
      b[#b + 1] = j
      b[#b + 1] = entries[k]
    end
  end
  out[#out + 1] = {id, b}
end
return {jobs, out}
