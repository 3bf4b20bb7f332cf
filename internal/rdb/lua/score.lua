-- Prepended to the scripts that read sorted-set scores (index.lua, sched_due.lua, sched_mark.lua).
-- score reads a score as ZSCORE answers it (nil for none): the embedded store writes large ones
-- with an exponent ("1e+15", rdb.Never), which its Lua's tonumber does not read.
local function score(s)
  if not s then return nil end
  local n = tonumber(s)
  if n then return n end
  local m, e = string.match(s, '^(-?[%d.]+)[eE]%+?(-?%d+)$')
  if not m then return nil end
  return tonumber(m) * 10 ^ tonumber(e)
end

