-- sched_due sets when the scheduler next looks at each of the workflows a tick handled, unless the
-- workflow was marked due meanwhile (its score changed since the leader read it).
--
-- KEYS[1] -> <prefix>:{~}:due (Keys.Due)
-- ARGV    -> triples: the workflow, the score the leader read ("" for none), the new score (ms)
--
-- Result: the number of workflows updated.

-- score (lua/score.lua) is prepended: it reads a score as ZSCORE answers it.

local n = 0
for i = 1, #ARGV, 3 do
  local cur = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if (cur == false and ARGV[i + 1] == '') or (cur and ARGV[i + 1] ~= '' and score(cur) == score(ARGV[i + 1])) then
    redis.call('ZADD', KEYS[1], ARGV[i + 2], ARGV[i])
    n = n + 1
  end
end
return n
