-- sink_advance moves a log sink's cursor in a workflow's event stream forward, never back: a
-- replica whose feeder lease ran out while it was writing may come back after the new holder has
-- delivered more, and must not send the sink back over them.
--
-- KEYS[1] -> <prefix>:{<wf>}:sinks (Keys.SinkCursors)
-- ARGV[1] -> the sink's id
-- ARGV[2] -> the new cursor: "<entry ID> <ordinal>" (see sinks.go)
--
-- Result: 1 when moved, 0 when the cursor was already at or past it.
local function parse(c)
  local ms, seq = string.match(c or '', '^(%d+)-(%d+)')
  return tonumber(ms or '0'), tonumber(seq or '0')
end
local om, os = parse(redis.call('HGET', KEYS[1], ARGV[1]))
local nm, ns = parse(ARGV[2])
if om > nm or (om == nm and os >= ns) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
