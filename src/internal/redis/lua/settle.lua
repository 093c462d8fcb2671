-- settle: closes a reservation with the actual usage per quota. Below the charge, a quota that refunds gets
-- the difference back; above it, the excess is charged; an empty argument keeps the charge. A port of
-- BucketState.settle.
--
-- args from OP: id, then one actual amount per quota ('' = keep the charge).
-- Reply, then the time (see core.lua): {'1'} settled | {'0'} not open.
local function settle(keys, args)
  local id = args[OP]
  local failed = begin(keys, args, id)
  if failed then return failed end
  local holds = take(id)
  if not holds then return finish({ '0', clock[1], clock[2] }) end
  WAKE = true
  for i = 1, nq do
    local q = Q[i]
    local hold = holds[i]
    local s = args[OP + i]
    local actual = nil
    if s ~= nil and s ~= '' then actual = tonumber(s) end
    if hold == nil then
      -- Usage on a metric the charge left at 0: charge it now (a concurrency slot is never taken after the fact).
      if actual ~= nil and actual > 0 and q.alg ~= CC then
        q.m.book(q, actual, max(now, lastBooked), id .. '+')
      end
    elseif actual == nil then
      if q.alg == CC then q.m.release(q, hold) end
    else
      local kept = actual
      if actual < hold.amount and not q.refunds then kept = hold.amount end
      q.m.adjust(q, hold, kept)
    end
  end
  return finish({ '1', clock[1], clock[2] })
end
