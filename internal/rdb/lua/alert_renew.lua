-- alert_renew extends a claim on an alert, if the caller still holds it.
--
-- KEYS[1] -> <prefix>:{<wf>}:alert:<key> (Keys.Alert)
-- ARGV[1] -> holder
-- ARGV[2] -> lease, in milliseconds
--
-- Result: 1 when the claim was extended, 0 when the caller no longer holds it.
if redis.call('GET', KEYS[1]) == 'claim ' .. ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
