-- alert_claim claims an alert for delivery: the caller holds it for a lease, and keeps it by
-- renewing (alert_renew) until it settles it (alert_settle). A claim whose holder died expires,
-- and the alert, still in the workflow's pending hash, is claimed again by another replica.
--
-- KEYS[1] -> <prefix>:{<wf>}:alert:<key> (Keys.Alert): "claim <holder>" while claimed (with the
--            lease as its TTL), "sent <time>" or "failed <time>" once settled
-- KEYS[2] -> <prefix>:{<wf>}:alerts:pending (Keys.AlertsPending): key -> body of unsettled alerts
-- ARGV[1] -> the alert's key (a field of KEYS[2])
-- ARGV[2] -> holder (a replica id)
-- ARGV[3] -> lease, in milliseconds
-- ARGV[4] -> the alert's body; "" when claiming a pending alert again (its body is kept)
--
-- Result: 1 when the caller now holds the claim, 0 when the alert is claimed or settled already.
if not redis.call('SET', KEYS[1], 'claim ' .. ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 0
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
end
return 1
