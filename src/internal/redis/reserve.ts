/**
 * The reserve script: books a charge at the earliest time it fits every quota, never before an earlier booking
 * (FIFO across the bucket) nor a provider's retry hint, unless that is more than `maxWaitMs` away. Port of `BucketState.reserve`.
 *
 * ARGV from `OP`: one amount per quota, then maxWaitMs (`inf` for none).
 * Reply, then the time (see the prelude): `{"R", id, at}` (`at` empty when it is the time the script ran at) |
 * `{"W", retryAfterMs}` | `{"T", quota index}` (too large).
 *
 * @internal
 */
import { epilogue, prelude } from "./prelude.js"

/** The reserve script's Lua text: `client.eval(reserveLua, keys.length, ...keys, config, ...args)`. */
export const reserveLua = "local FITS, BOOK, CLOSE, RECORDS = true, true, false, false\n" + prelude + String.raw`
local amounts = {}
for i = 1, nq do amounts[i] = tonumber(ARGV[OP + i - 1]) end
local maxWait = ARGV[OP + nq]
maxWait = maxWait == 'inf' and INF or tonumber(maxWait)
local result = nil

for i = 1, nq do
  if amounts[i] > Q[i].cap then
    result = { 'T', tostring(i - 1), clock[1], clock[2] }
    break
  end
end

if result == nil then
  -- Earliest time at or after max(now, lastBooked, blockedUntil) at which every quota takes its amount.
  local at = max(now, lastBooked, blockedUntil)
  for round = 1, 64 do
    local nxt = at
    for i = 1, nq do
      if amounts[i] > 0 then nxt = max(nxt, fits(Q[i], amounts[i], nxt)) end
    end
    if nxt == at or nxt == INF then
      at = nxt
      break
    end
    at = nxt
  end

  if at == INF or at - now > maxWait then
    result = { 'W', fmt(at - now), clock[1], clock[2] }
  else
    seq = seq + 1
    local id = format('%d-%d', floor(now), seq)
    local record = { pack('<d', at) }
    for i = 1, nq do
      if amounts[i] > 0 then
        record[i + 1] = book(Q[i], amounts[i], at, id)
      else
        record[i + 1] = pack('<Bdddd', 0, 0, 0, 0, 0)
      end
    end
    lastBooked = max(lastBooked, at)
    -- The record; its id tells orphan reclaim when it expires.
    call('HSET', K_RES, id, table.concat(record))
    local expiry = expiryOf(id)
    if expiry < earliestExpiry then earliestExpiry = expiry end
    if openCount <= 0 then
      -- The reservations hash was empty, hence gone: created now.
      created(K_RES)
      openCount = 0
    end
    openCount = openCount + 1
    result = { 'R', id, at == now and '' or fmt(at), clock[1], clock[2] }
  end
end
` + epilogue
