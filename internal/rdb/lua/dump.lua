-- dump.lua: reads a workflow's whole stored state in one consistent snapshot.
-- KEYS[1] state, KEYS[2] batches (history index), KEYS[3] history
-- ARGV[1] workflow
-- Result: {state pairs, batch ids oldest first, history pairs}, or ENOTFOUND.
local s = redis.call('HGETALL', KEYS[1])
if #s == 0 then return not_loaded(ARGV[1]) end
return {s, redis.call('ZRANGE', KEYS[2], 0, -1), redis.call('HGETALL', KEYS[3])}
