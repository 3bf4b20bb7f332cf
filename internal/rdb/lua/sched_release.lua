-- sched_release gives the leader lease up, if the caller holds it.
--
-- KEYS[1] -> <prefix>:scheduler:leader (Keys.Leader)
-- ARGV[1] -> holder id
--
-- Result: 1.
if redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
