-- events_mark records that workflows' event streams received entries outside a transition (run
-- steps, log lines, alerts: EventStream.Write), for the log sinks' feeders (sinks.go). A
-- transition's own mark is written by index.lua.
--
-- KEYS[1] -> <prefix>:{~}:events (Keys.EventsIndex)
-- KEYS[2] -> <prefix>:{~}:seq (Keys.IndexSeq)
-- ARGV    -> the workflows
--
-- Result: the last sequence number given.
local n = 0
for _, wf in ipairs(ARGV) do
  n = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], n, wf)
end
return n
