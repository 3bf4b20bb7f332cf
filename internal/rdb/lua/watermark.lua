-- watermark.lua: sets where a job's next window starts: from_date, with status new so that the
-- next open keeps it (SPEC.md open, step 1).
-- KEYS[1] state, KEYS[2] events
-- ARGV[1] now (µs), ARGV[2] events kept, ARGV[3] pub/sub channel, ARGV[4] workflow, ARGV[5] the
-- new from_date (µs), ARGV[6] the job
-- Result: commit(), the entry holding the job's new runtime record; or ENOTFOUND, ECONFLICT (the job is open).
local s = hgetall(KEYS[1])
local wf, job = ARGV[4], ARGV[6]
if not s.jobs then return not_loaded(wf) end
local all = words(s.jobs)
if not scope(all, 6) then return fail('ENOTFOUND', 'job ' .. job .. ' is not in workflow ' .. wf) end
local r = parse_run(s['run:' .. job])
if r.status == 'open' then
  return fail('ECONFLICT', 'job ' .. job .. ' is open: close or fail it before moving its watermark')
end
r.status, r.from = 'new', ARGV[5]
s['run:' .. job] = run_text(r)
local fields = {'x', 'rewind ' .. ARGV[1], 'j', job, job, s['run:' .. job]}
return commit(s, {'run:' .. job, s['run:' .. job]}, KEYS[1], KEYS[2], ARGV[2], fields, ARGV[3], wf)
