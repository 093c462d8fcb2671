/**
 * The reserve script: books a charge at the earliest time it fits every quota, never before an earlier booking
 * (FIFO across the bucket) nor a provider's retry hint, unless that is more than `maxWaitMs` away. Port of `BucketState.reserve`.
 *
 * ARGV from `OP`: one amount per quota, then maxWaitMs (`inf` for none).
 * Reply: `{"R", id, at, now}` | `{"W", retryAfterMs, now}` | `{"T", metric, now}` (too large).
 *
 * @internal
 */
import { prelude } from "./prelude.js"

/** The reserve script's Lua text (the prelude and the operation): `client.eval(reserveLua, keys.length, ...keys, ...argv)`. */
export const reserveLua = prelude + String.raw`
local amounts = {}
for i = 1, nq do amounts[i] = tonumber(ARGV[OP + i - 1]) end
local maxWait = num(ARGV[OP + nq])

reclaim()
for i = 1, nq do
  if amounts[i] > Q[i].cap then
    save()
    return { 'T', Q[i].metric, fmt(now) }
  end
end

-- Earliest time at or after max(now, lastBooked, blockedUntil) at which every quota takes its amount.
local at = math.max(now, lastBooked, blockedUntil)
for round = 1, 64 do
  local nxt = at
  for i = 1, nq do
    if amounts[i] > 0 then nxt = math.max(nxt, fits(Q[i], amounts[i], nxt)) end
  end
  if nxt == at or nxt == math.huge then
    at = nxt
    break
  end
  at = nxt
end

if at == math.huge or at - now > maxWait then
  save()
  return { 'W', fmt(at - now), fmt(now) }
end

local id = clock[1] .. '-' .. redis.call('INCR', K_SEQ)
local parts = { fmt(at) }
for i = 1, nq do
  if amounts[i] > 0 then
    parts[#parts + 1] = book(Q[i], amounts[i], at, id)
  else
    parts[#parts + 1] = '-'
  end
end
lastBooked = math.max(lastBooked, at)
redis.call('HSET', K_RES, id, table.concat(parts, ' '))
redis.call('ZADD', K_EXP, fmt(now + ttlMs), id)
save()
return { 'R', id, fmt(at), fmt(now) }
`
