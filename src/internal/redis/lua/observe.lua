-- observe: learns from the provider. Blocks the bucket's admissions until now + retryAfterMs (a 429's retry
-- hint) and raises each quota's usage to what the provider reports as used. A port of BucketState.observe.
--
-- args from OP: retryAfterMs ('-inf' for none), then one reported usage per quota ('' = not reported).
-- Reply: the time (see core.lua).
local function observe(keys, args)
  local failed = begin(keys, args)
  if failed then return failed end
  blockedUntil = max(blockedUntil, now + num(args[OP]))
  local entry = nil
  for i = 1, nq do
    local s = args[OP + i]
    local reported = nil
    if s ~= nil and s ~= '' then reported = num(s) end
    if reported ~= nil and reported == reported and reported < INF and reported >= 0 then
      if Q[i].alg == SW and entry == nil then
        seq = seq + 1
        entry = 'o' .. seq
      end
      Q[i].m.tighten(Q[i], reported, entry)
    end
  end
  return finish({ clock[1], clock[2] })
end
