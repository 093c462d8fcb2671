-- reserve: books a charge at the earliest time it fits every quota, never before an earlier booking (FIFO
-- across the bucket) nor a provider's retry hint, unless that is more than maxWaitMs away; and never ahead of
-- the callers waiting in the line (line.lua) where it could delay them. A port of BucketState.reserve, and the
-- line.
--
-- args from OP: one amount per quota, then maxWaitMs ('inf' for none), the client's token, then the caller's
-- place in the line and how long it lasts without the caller asking again (both '' for a caller who takes
-- none: it is admitted only when it cannot delay anyone in the line).
-- Reply, then the time (see core.lua): {'R', id, at} (at empty when it is the time the call ran at) |
-- {'W', retryAfterMs} (the caller keeps or takes its place) | {'T', quota index} (too large) | {'X'} (the token
-- was released before this reserve ran: a reserve its client gave up on, arriving late).

-- The earliest time at or after max(now, lastBooked, blockedUntil) at which every quota takes its amount.
local function earliest(amounts)
  local at = max(now, lastBooked, blockedUntil)
  for round = 1, 64 do
    local nxt = at
    for i = 1, nq do
      local amount = amounts[i] or 0
      if amount > 0 then nxt = max(nxt, Q[i].m.fits(Q[i], amount, nxt)) end
    end
    if nxt == at or nxt == INF then return nxt end
    at = nxt
  end
  return at
end

local function reserve(keys, args)
  local token = tokenOf(args[#args - 2])
  if token == nil then return redis.error_reply('ERR quotaflow: a reserve needs a token matching ' .. TOKEN_PATTERN) end
  local place, placeTtlMs = args[#args - 1], tonumber(args[#args])
  if place == '' then
    place = nil
  elseif tokenOf(place) == nil or placeTtlMs == nil or placeTtlMs <= 0 then
    return redis.error_reply('ERR quotaflow: a place in line needs a name matching ' .. TOKEN_PATTERN .. ' and a positive lifetime')
  end
  local failed = begin(keys, args, nil, 'x' .. token)
  if failed then return failed end
  if TOMBSTONE then return finish({ 'X', clock[1], clock[2] }) end
  -- Where the caller stands in the line: ahead is how many places are before it (all of them, for a newcomer).
  local mine, ahead = nil, 0
  if LINE_RAW then
    mine = place and lineIndex(place)
    ahead = mine and mine - 1 or #lineOf()
  end
  local amounts = AMOUNTS
  for i = 1, nq do
    local amount = tonumber(args[OP + i - 1])
    if amount > Q[i].cap then
      if mine then lineRemove(mine) end
      return finish({ 'T', tostring(i - 1), clock[1], clock[2] })
    end
    amounts[i] = amount
  end
  local maxWait = num(args[OP + nq])

  local at = earliest(amounts)
  if ahead > 0 and delaysLine(ahead, amounts) then
    -- Behind the oldest place: until it is admitted, which this process hears of (a wake-up), or, if it fits
    -- now but its process has not come for it, until the place expires.
    local wait = max(at, earliest(LINE[1].amounts)) - now
    if wait <= 0 then wait = LINE[1].expiry - now end
    if place then lineKeep(place, mine, amounts, placeTtlMs) end
    return finish({ 'W', fmt(wait), clock[1], clock[2] })
  end
  if at == INF or at - now > maxWait then
    if place then lineKeep(place, mine, amounts, placeTtlMs) end
    return finish({ 'W', fmt(at - now), clock[1], clock[2] })
  end

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
  if mine then lineRemove(mine) end
  return finish({ 'R', id, at == now and '' or fmt(at), clock[1], clock[2] })
end
