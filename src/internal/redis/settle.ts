/**
 * The settle script: closes a reservation with the actual usage per quota. Below the charge, a quota that
 * refunds gets the difference back; above it, the excess is charged; an empty argument keeps the charge.
 * Port of `BucketState.settle`.
 *
 * ARGV from `OP`: id, then one actual amount per quota (`""` = keep the charge).
 * Reply: `{"1", now}` settled | `{"0", now}` not open.
 *
 * @internal
 */
import { prelude } from "./prelude.js"

/** The settle script's Lua text (the prelude and the operation): `client.eval(settleLua, keys.length, ...keys, ...argv)`. */
export const settleLua = prelude + String.raw`
local id = ARGV[OP]
reclaim()
local r = takeReservation(id)
if not r then
  save()
  return { '0', fmt(now) }
end
for i = 1, nq do
  local q = Q[i]
  local hold = r.holds[i]
  local s = ARGV[OP + i]
  local actual = nil
  if s ~= nil and s ~= '' then actual = tonumber(s) end
  if hold == nil then
    -- Usage on a metric the charge left at 0: charge it now (a concurrency slot is never taken after the fact).
    if actual ~= nil and actual > 0 and q.alg ~= 'concurrency' then
      book(q, actual, math.max(now, lastBooked), id .. '+')
    end
  elseif actual == nil then
    if q.alg == 'concurrency' then release(q, hold) end
  else
    local kept = actual
    if actual < hold.amount and not q.refunds then kept = hold.amount end
    adjust(q, hold, kept)
  end
end
save()
return { '1', fmt(now) }
`
