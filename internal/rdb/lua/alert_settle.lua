-- alert_settle records an alert's outcome (delivered, or given up) and removes it from the
-- workflow's pending alerts: nobody claims it again while the mark lasts.
--
-- KEYS[1] -> <prefix>:{<wf>}:alert:<key> (Keys.Alert)
-- KEYS[2] -> <prefix>:{<wf>}:alerts:pending (Keys.AlertsPending)
-- ARGV[1] -> the alert's key (a field of KEYS[2])
-- ARGV[2] -> the mark: "sent <time>" or "failed <time>"
-- ARGV[3] -> how long the mark is kept, in milliseconds
--
-- Result: the number of alerts of the workflow still pending.
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
return redis.call('HLEN', KEYS[2])
