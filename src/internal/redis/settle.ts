/**
 * The settle script: closes a reservation with the actual usage per quota. Below the charge, a quota that
 * refunds gets the difference back; above it, the excess is charged; an empty argument keeps the charge.
 * Port of `BucketState.settle`.
 *
 * ARGV from `OP`: id, then one actual amount per quota (`""` = keep the charge).
 * Reply, then the time (see the prelude): `{"1"}` settled | `{"0"}` not open.
 *
 * @internal
 */
import { takeReservation } from "./close.js"
import { epilogue, prelude } from "./prelude.js"

/** The settle script's Lua text: `client.eval(settleLua, keys.length, ...keys, config, ...args)`. */
export const settleLua = "local FITS, BOOK, CLOSE, RECORDS = false, true, true, true\n" + prelude + takeReservation + String.raw`
local result
if not r then
  result = { '0', clock[1], clock[2] }
else
  for i = 1, nq do
    local q = Q[i]
    local hold = r.holds[i]
    local s = ARGV[OP + i]
    local actual = nil
    if s ~= nil and s ~= '' then actual = tonumber(s) end
    if hold == nil then
      -- Usage on a metric the charge left at 0: charge it now (a concurrency slot is never taken after the fact).
      if actual ~= nil and actual > 0 and q.alg ~= CC then
        book(q, actual, max(now, lastBooked), id .. '+')
      end
    elseif actual == nil then
      if q.alg == CC then release(q, hold) end
    else
      local kept = actual
      if actual < hold.amount and not q.refunds then kept = hold.amount end
      adjust(q, hold, kept)
    end
  end
  result = { '1', clock[1], clock[2] }
end
` + epilogue
