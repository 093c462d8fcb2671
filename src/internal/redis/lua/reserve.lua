-- reserve: books a charge at the earliest time it fits every quota, never before an earlier booking (FIFO
-- across the bucket) nor a provider's retry hint, unless that is more than maxWaitMs away. A port of
-- BucketState.reserve.
--
-- args from OP: one amount per quota, then maxWaitMs ('inf' for none), then the client's token.
-- Reply, then the time (see core.lua): {'R', id, at} (at empty when it is the time the call ran at) |
-- {'W', retryAfterMs} | {'T', quota index} (too large) | {'X'} (the token was released before this reserve
-- ran: a reserve its client gave up on, arriving late).
local function reserve(keys, args)
  local token = tokenOf(args[#args])
  if token == nil then return redis.error_reply('ERR quotaflow: a reserve needs a token matching ' .. TOKEN_PATTERN) end
  local failed = begin(keys, args, nil, 'x' .. token)
  if failed then return failed end
  if TOMBSTONE then return finish({ 'X', clock[1], clock[2] }) end
  local amounts = AMOUNTS
  for i = 1, nq do
    local amount = tonumber(args[OP + i - 1])
    if amount > Q[i].cap then return finish({ 'T', tostring(i - 1), clock[1], clock[2] }) end
    amounts[i] = amount
  end
  local maxWait = num(args[OP + nq])

  -- Earliest time at or after max(now, lastBooked, blockedUntil) at which every quota takes its amount.
  local at = max(now, lastBooked, blockedUntil)
  for round = 1, 64 do
    local nxt = at
    for i = 1, nq do
      if amounts[i] > 0 then nxt = max(nxt, Q[i].m.fits(Q[i], amounts[i], nxt)) end
    end
    if nxt == at or nxt == INF then
      at = nxt
      break
    end
    at = nxt
  end
  if at == INF or at - now > maxWait then return finish({ 'W', fmt(at - now), clock[1], clock[2] }) end

  local id = format('%d-%s', floor(now), token)
  local v = VALUES
  v[1] = at
  for i = 1, nq do
    local n = 5 * i - 3
    if amounts[i] > 0 then
      v[n], v[n + 1], v[n + 2], v[n + 3], v[n + 4] = Q[i].m.book(Q[i], amounts[i], at, id)
    else
      v[n], v[n + 1], v[n + 2], v[n + 3], v[n + 4] = 0, 0, 0, 0, 0
    end
  end
  lastBooked = max(lastBooked, at)
  -- The record, written with the state (see finish); its id tells orphan reclaim when it expires (as expiryOf
  -- reads it).
  BOOKED, BOOKED_RECORD = id, pack(C.recordFormat, unpackTable(v, 1, 5 * nq + 1))
  local expiry = floor(now) + 1 + ttlMs
  if expiry < earliestExpiry then earliestExpiry = expiry end
  openCount = max(0, openCount) + 1
  return finish({ 'R', id, at == now and '' or fmt(at), clock[1], clock[2] })
end
