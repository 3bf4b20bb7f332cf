-- sched_lease takes or renews the scheduler's leader lease.
--
-- KEYS[1] -> <prefix>:scheduler:leader (Keys.Leader)
-- ARGV[1] -> now (ms, the caller's clock)
-- ARGV[2] -> lease time (ms)
-- ARGV[3] -> holder id (the replica)
--
-- Result: 1 when the caller holds the lease, 0 when another holder's lease has not expired.
local h = redis.call('HMGET', KEYS[1], 'holder', 'expires')
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
if h[1] and h[1] ~= ARGV[3] and tonumber(h[2] or '0') > now then return 0 end
redis.call('HSET', KEYS[1], 'holder', ARGV[3], 'expires', string.format('%d', now + ttl))
return 1
