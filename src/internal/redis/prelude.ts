/**
 * The Lua shared by every script: the Redis clock, the bucket's configuration from ARGV, the state from the
 * bucket's keys, and the four meters. A line-by-line port of `src/internal/meters.ts` and
 * `src/internal/bucketState.ts`; keep them in step.
 *
 * Calling convention (see `keys.ts` for the keys and how the state is stored):
 * - KEYS: state, reservations, then the key of each sliding-window and fixed-window quota,
 *   in quota order (`scriptKeys`; the other meters keep their state in the state hash).
 * - ARGV[1]: the bucket's configuration, space-separated (`configArg` in `store.ts`): reservationTtlMs, the
 *   algorithms (one letter per quota: `t` token bucket, `s` sliding window, `f` fixed window, `c` concurrency),
 *   whether each refunds (`1` / `0` per quota), burstMultiplier, skewMs, then per quota the limit it runs at
 *   (`effectiveLimit`: after the safety ratio) and its window.
 * - ARGV from `OP` (2): the operation's own arguments.
 *
 * Numbers in the state hash and in reservation records are IEEE doubles packed with `struct` (exact, and far
 * cheaper than formatting and parsing decimals); numbers in replies, sorted-set scores and fixed-window hashes
 * are `%.17g` strings (exact round trip; a Lua number returned to Redis would be truncated to an integer), `inf`
 * for infinity. Every reply ends with the `TIME` the script ran at, as Redis gave it (seconds, microseconds):
 * the client derives `now` from them exactly as the script does.
 *
 * Time is Redis `TIME` in milliseconds with the microseconds as a fraction; no client clock is used.
 *
 * The scripts run on every call, so they do only what the call needs: a function is made only when the bucket
 * has the meter and the operation uses it, a configuration seen on the previous call is read back already
 * derived, TTLs are extended only when they would fall short (see `epilogue`), and orphans are looked for only
 * once the earliest expiry has come.
 *
 * @internal
 */

/**
 * The Lua every script starts with. Before it, an operation declares what it needs of the meters, so that no
 * function is made that the call will not use (making a closure is a good part of a script's cost):
 * `local FITS, BOOK, CLOSE, RECORDS = true, true, false, false` (fit a charge; book one; adjust or release a hold;
 * read reservation records).
 * The operation's body then sets `result`, and the `epilogue` saves the state and returns it.
 */
export const prelude = String.raw`
local INF = math.huge
local max, min, floor, ceil = math.max, math.min, math.floor, math.ceil
local format, byte = string.format, string.byte
local pack, unpackStruct = struct.pack, struct.unpack
local call = redis.call
-- Algorithms, as the bytes of their letters.
local TB, SW, FW, CC = 116, 115, 102, 99

local function fmt(x)
  if x == INF then return 'inf' end
  if x == -INF then return '-inf' end
  return format('%.17g', x)
end

if redis.replicate_commands then redis.replicate_commands() end

local clock = call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000

local K_STATE, K_RES = KEYS[1], KEYS[2]
-- The state hash holds, besides the state (see below), the configuration the last call brought ('c', as ARGV[1])
-- and what it derives from it ('k': reservationTtlMs, then per quota refunds, capacity, window, interval,
-- tolerance, packed): a call with the same configuration reads those instead of parsing ARGV[1] again.
local stored = call('HMGET', K_STATE, 'g', 'a', 'c', 'k')
local G, storedAlgs, derived = stored[1], stored[2], stored[4]
local cached = stored[3] == ARGV[1] and storedAlgs and derived and #derived == 8 + 33 * #storedAlgs
local ttlMs, algs, nq, pos
local refundFlags, burst, skew, config, derivedParts
if cached then
  algs = storedAlgs
  ttlMs, pos = unpackStruct('<d', derived)
else
  local quotaConfig
  ttlMs, algs, refundFlags, burst, skew, quotaConfig = string.match(ARGV[1], '^(%S+) (%S+) (%S+) (%S+) (%S+) (.*)$')
  ttlMs = tonumber(ttlMs)
  burst = tonumber(burst)
  -- How much later than others a call may reach the provider: kept clear at the edges of windows.
  skew = tonumber(skew)
  config = string.gmatch(quotaConfig, '(%S+) (%S+)')
  derivedParts = { pack('<d', ttlMs) }
end
nq = #algs
local OP = 2

local Q = {}
local maxWindow = 0
local hasTB, hasSW, hasFW, hasCC = false, false, false, false
-- Bytes of the state field 'g' for these algorithms (see below).
local stateLength = 48
-- Only the sliding and fixed windows have a key of their own, passed after the first two in quota order.
local nextKey = 3
for i = 1, nq do
  local alg = byte(algs, i)
  local refunds, cap, w, interval, tol
  if cached then
    refunds, cap, w, interval, tol, pos = unpackStruct('<Bdddd', derived, pos)
    refunds = refunds == 1
  else
    refunds = byte(refundFlags, i) == 49
    -- The limit the quota runs at, after the safety ratio, and the window.
    local limit
    limit, w = config()
    limit = tonumber(limit)
    w = tonumber(w)
    cap, interval, tol = limit, 0, 0
    if alg == TB then
      cap = max(1, floor(limit * burst))
      interval = w / limit
      tol = cap * interval - skew
    elseif alg == SW then
      w = w + skew
    end
    derivedParts[i + 1] = pack('<Bdddd', refunds and 1 or 0, cap, w, interval, tol)
  end
  local q
  if alg == TB then
    hasTB = true
    stateLength = stateLength + 48
    q = {
      alg = alg, refunds = refunds, cap = cap, w = w, index = i, interval = interval, tol = tol,
      since = -INF, owed = 0, epoch = 0, charged = 0, lastChargeAt = -INF, pending = {}, pendingDirty = false
    }
  elseif alg == SW then
    hasSW = true
    stateLength = stateLength + 16
    q = { alg = alg, refunds = refunds, cap = cap, w = w, key = KEYS[nextKey], index = i, total = false, count = 0, prunedAt = false }
    nextKey = nextKey + 1
  elseif alg == FW then
    hasFW = true
    q = { alg = alg, refunds = refunds, cap = cap, w = w, key = KEYS[nextKey], index = i, win = false, dirty = false, existed = false }
    nextKey = nextKey + 1
  elseif alg == CC then
    hasCC = true
    stateLength = stateLength + 8
    q = { alg = alg, refunds = refunds, cap = cap, w = w, index = i, inflight = 0 }
  else
    return redis.error_reply('ERR quotaflow: unknown algorithm ' .. tostring(algs))
  end
  if w > maxWindow then maxWindow = w end
  Q[i] = q
end

-- The state: 'a' the algorithms the state was written for, 'g' the state packed as doubles: lastBooked,
-- blockedUntil, the earliest expiry (a lower bound of the open reservations' expiries), the time every key
-- expires at, the number of open reservations, the last id's sequence number; then per quota, as 'a' lists them: token bucket since, owed, epoch,
-- charged, lastChargeAt, pending bookings; sliding window total, entries; concurrency in flight. A token
-- bucket's pending bookings themselves are in 'p<i>' (i from 0), "entry,amount,at;..." in booking order.
-- A quota whose algorithm changed at its index starts afresh.
local lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq = -INF, -INF, -INF, -INF, 0, 0
if G and storedAlgs then
  if storedAlgs ~= algs then
    local length = 48
    for i = 1, #storedAlgs do
      local a = byte(storedAlgs, i)
      if a == TB then length = length + 48 elseif a == SW then length = length + 16 elseif a == CC then length = length + 8 end
    end
    if #G ~= length then G = nil end
  elseif #G ~= stateLength then
    G = nil
  end
end
if G then
  local pos
  lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq, pos = unpackStruct('<dddddd', G)
  for i = 1, #storedAlgs do
    local a = byte(storedAlgs, i)
    local q = Q[i]
    if q and q.alg ~= a then q = nil end
    if a == TB then
      local since, owed, epoch, charged, lastChargeAt, pending
      since, owed, epoch, charged, lastChargeAt, pending, pos = unpackStruct('<dddddd', G, pos)
      if q then
        q.since, q.owed, q.epoch, q.charged, q.lastChargeAt = since, owed, epoch, charged, lastChargeAt
        if pending > 0 then
          for entry, amount, at in string.gmatch(call('HGET', K_STATE, 'p' .. (i - 1)) or '', '([^,;]+),([^,;]+),([^,;]+)') do
            q.pending[#q.pending + 1] = { entry = entry, amount = tonumber(amount), at = tonumber(at) }
          end
        end
      end
    elseif a == SW then
      local total, count
      total, count, pos = unpackStruct('<dd', G, pos)
      if q then q.total, q.count = total, count end
    elseif a == CC then
      local inflight
      inflight, pos = unpackStruct('<d', G, pos)
      if q then q.inflight = inflight end
    end
  end
end
if hasSW then
  for i = 1, nq do
    local q = Q[i]
    if q.alg == SW and not q.total then
      -- No state for this log yet: count the log itself.
      q.total = 0
      local all = call('ZRANGE', q.key, 0, -1)
      for j = 1, #all do q.total = q.total + tonumber(string.match(all[j], '/([^/]+)$')) end
      q.count = #all
    end
  end
end

-- Keys this call creates while the others keep their expiry: they get the same one (see the epilogue).
local fresh = nil
local function created(key)
  if fresh == nil then fresh = {} end
  fresh[#fresh + 1] = key
end

-- Reservation records: the booking time, then per quota a hold: kind (0 no hold, 1 a token bucket's pending
-- booking, 2 held), amount, mark, after, chargedAt; packed as '<d', then '<Bdddd' per quota (a group). Booking
-- a quota returns its group. Only calls that read records make the functions that read them: settle, release,
-- status, and the rare call that reclaims orphans or folds pending bookings.
local groupsIn, parseReservation
local anyPending = false
for i = 1, nq do
  if Q[i].alg == TB and #Q[i].pending > 0 then anyPending = true end
end
if RECORDS or anyPending or now >= earliestExpiry then
  -- The number of hold groups in a record, or nil when it is not a record this version wrote.
  groupsIn = function(record)
    local groups = (#record - 8) / 33
    if groups < 0 or groups ~= floor(groups) then return nil end
    for j = 0, groups - 1 do
      if byte(record, 9 + 33 * j) > 2 then return nil end
    end
    return groups
  end
  -- A record as { at, holds }; a record written under another configuration yields the holds it has.
  parseReservation = function(id, record)
    local groups = groupsIn(record)
    if groups == nil then return { at = -INF, holds = {} } end
    local at, pos = unpackStruct('<d', record)
    local r = { at = at, holds = {} }
    for i = 1, min(groups, nq) do
      local kind, amount, mark, after, chargedAt
      kind, amount, mark, after, chargedAt, pos = unpackStruct('<Bdddd', record, pos)
      if kind > 0 then
        r.holds[i] = { entry = id, live = kind == 2, amount = amount, mark = mark, after = after, chargedAt = chargedAt }
      end
    end
    return r
  end
end

-- Token bucket (GCRA, epochs, pending future bookings) ------------------------------------------------------
local tb_tat, tb_owe, tb_charge, tb_projected, tb_fits, tb_book, tb_adjust, tb_release
if hasTB then
  -- tat = since + owed: kept apart so that adding an interval does not round at epoch-millisecond magnitude.
  tb_tat = function(q)
    return q.since + q.owed
  end
  -- Sets tat to max(tat + delta, floor).
  tb_owe = function(q, delta, floor)
    if tb_tat(q) + delta > floor then
      q.owed = q.owed + delta
    else
      q.since, q.owed = floor, 0
    end
  end
  -- Charges amount at at; the hold it makes is (amount, mark = epoch, after = charged, chargedAt = at).
  tb_charge = function(q, amount, at)
    if tb_tat(q) <= at then
      q.epoch = q.epoch + 1
      q.since, q.owed = at, 0
    end
    q.owed = q.owed + amount * q.interval
    q.charged = q.charged + amount
    q.lastChargeAt = max(q.lastChargeAt, at)
  end
  tb_projected = function(q)
    local tat = tb_tat(q)
    for j = 1, #q.pending do tat = max(tat, q.pending[j].at) + q.pending[j].amount * q.interval end
    return tat
  end
  if FITS then
    tb_fits = function(q, amount, from)
      return max(from, tb_projected(q) + amount * q.interval - q.tol)
    end
  end
  -- A booking whose time has come is charged at once; a later one waits in pending.
  if BOOK then
    tb_book = function(q, amount, at, entry)
      if at <= now then
        tb_charge(q, amount, at)
        return pack('<Bdddd', 2, amount, q.epoch, q.charged, at)
      end
      q.pending[#q.pending + 1] = { entry = entry, amount = amount, at = at }
      q.pendingDirty = true
      return pack('<Bdddd', 1, amount, at, 0, at)
    end
  end
  if CLOSE then
    tb_adjust = function(q, hold, amount)
      local delta = amount - hold.amount
      if not hold.live then
        -- Still pending: nothing was charged yet, so it simply books the new amount.
        local rest = {}
        for j = 1, #q.pending do
          local p = q.pending[j]
          if p.entry == hold.entry then p.amount = amount end
          if not (p.entry == hold.entry and amount == 0) then rest[#rest + 1] = p end
        end
        q.pending = rest
        q.pendingDirty = true
      elseif delta > 0 then
        -- An excess is charged now, like a new booking.
        tb_charge(q, delta, now)
      elseif delta < 0 then
        if hold.mark == q.epoch then tb_owe(q, delta * q.interval, now) end
      end
      hold.amount = amount
    end
  end
  if CLOSE then
    tb_release = function(q, hold)
      if not hold.live then return tb_adjust(q, hold, 0) end
      -- Charges since the hold, all at its own instant, stack on it linearly: subtracting it is exact then.
      local later = q.charged - hold.after
      local rest = -INF
      if later > 0 and q.lastChargeAt > hold.chargedAt then
        rest = min(tb_tat(q), q.lastChargeAt + later * q.interval)
      end
      tb_owe(q, -hold.amount * q.interval, rest)
      hold.amount = 0
      hold.live = false
    end
  end
end

-- Sliding window: a log in a sorted set, member "entry/amount", score = booking time ------------------------
local amountOf, sw_prune, sw_fits, sw_book, sw_adjust
if hasSW then
  amountOf = function(member)
    return tonumber(string.match(member, '/([^/]+)$'))
  end
  sw_prune = function(q)
    if q.prunedAt == now then return end
    q.prunedAt = now
    local horizon = fmt(now - q.w)
    local old = call('ZRANGEBYSCORE', q.key, '-inf', horizon)
    if #old > 0 then
      for j = 1, #old do q.total = q.total - amountOf(old[j]) end
      q.count = q.count - #old
      call('ZREMRANGEBYSCORE', q.key, '-inf', horizon)
    end
  end
  if FITS then
    sw_fits = function(q, amount, from)
      sw_prune(q)
      local horizon = fmt(from - q.w)
      local inWindow = q.total
      local early = call('ZRANGEBYSCORE', q.key, '-inf', horizon)
      for j = 1, #early do inWindow = inWindow - amountOf(early[j]) end
      if inWindow + amount <= q.cap then return from end
      local rest = call('ZRANGEBYSCORE', q.key, '(' .. horizon, '+inf', 'WITHSCORES')
      for j = 1, #rest, 2 do
        inWindow = inWindow - amountOf(rest[j])
        if inWindow + amount <= q.cap then return max(from, tonumber(rest[j + 1]) + q.w) end
      end
      return INF
    end
  end
  if BOOK then
    sw_book = function(q, amount, at, entry)
      call('ZADD', q.key, fmt(at), entry .. '/' .. fmt(amount))
      if q.count == 0 then created(q.key) end
      q.total = q.total + amount
      q.count = q.count + 1
      return pack('<Bdddd', 2, amount, at, 0, at)
    end
  end
  if CLOSE then
    sw_adjust = function(q, hold, amount)
      sw_prune(q)
      local old = hold.entry .. '/' .. fmt(hold.amount)
      local score = call('ZSCORE', q.key, old)
      if score then
        q.total = q.total + (amount - hold.amount)
        call('ZREM', q.key, old)
        -- An entry of 0 stays in the log, as in the pure meter: tighten books after the last entry.
        call('ZADD', q.key, score, hold.entry .. '/' .. fmt(amount))
      end
    end
  end
end

-- Fixed windows aligned to the epoch: a hash window index -> amount ----------------------------------------
local fw_load, fw_index, fw_prune, fw_fits, fw_book, fw_adjust
if hasFW then
  fw_load = function(q)
    if q.win then return end
    q.win = {}
    q.dirty = {}
    local raw = call('HGETALL', q.key)
    q.existed = #raw > 0
    for j = 1, #raw, 2 do q.win[tonumber(raw[j])] = tonumber(raw[j + 1]) end
  end
  fw_index = function(q, t)
    return floor(t / q.w)
  end
  fw_prune = function(q)
    fw_load(q)
    local current = fw_index(q, now)
    for index in pairs(q.win) do
      if index < current then
        q.win[index] = nil
        q.dirty[index] = true
      end
    end
  end
  if FITS then
    fw_fits = function(q, amount, from)
      fw_prune(q)
      local count = 0
      for _ in pairs(q.win) do count = count + 1 end
      local first = fw_index(q, from)
      local index = first
      while index - first <= count do
        if (q.win[index] or 0) + amount <= q.cap then
          if index == first then return from end
          return index * q.w
        end
        index = index + 1
      end
      -- Only an amount above capacity gets here, and reserve rejects those before asking.
      return INF
    end
  end
  if BOOK then
    fw_book = function(q, amount, at)
      fw_load(q)
      local index = fw_index(q, at)
      q.win[index] = (q.win[index] or 0) + amount
      q.dirty[index] = true
      return pack('<Bdddd', 2, amount, index, 0, at)
    end
  end
  if CLOSE then
    fw_adjust = function(q, hold, amount)
      fw_prune(q)
      if hold.mark >= fw_index(q, now) then
        q.win[hold.mark] = (q.win[hold.mark] or 0) + amount - hold.amount
        q.dirty[hold.mark] = true
      end
    end
  end
end

-- Dispatch ---------------------------------------------------------------------------------------------------
local fits, book, release, adjust
if hasTB and not (hasSW or hasFW or hasCC) then
  -- Token buckets only: no dispatch to make.
  fits, book, release, adjust = tb_fits, tb_book, tb_release, tb_adjust
else
  if FITS then
    fits = function(q, amount, from)
      local alg = q.alg
      if alg == TB then return tb_fits(q, amount, from) end
      if alg == SW then return sw_fits(q, amount, from) end
      if alg == FW then return fw_fits(q, amount, from) end
      if q.inflight + amount <= q.cap then return from end
      return INF
    end
  end
  -- Books and returns the hold's group.
  if BOOK then
    book = function(q, amount, at, entry)
      local alg = q.alg
      if alg == TB then return tb_book(q, amount, at, entry) end
      if alg == SW then return sw_book(q, amount, at, entry) end
      if alg == FW then return fw_book(q, amount, at) end
      q.inflight = q.inflight + amount
      return pack('<Bdddd', 2, amount, 0, 0, 0)
    end
  end
  if CLOSE then
    release = function(q, hold)
      local alg = q.alg
      if alg == TB then return tb_release(q, hold) end
      if alg == SW then return sw_adjust(q, hold, 0) end
      if alg == FW then return fw_adjust(q, hold, 0) end
      q.inflight = q.inflight - hold.amount
    end
    adjust = function(q, hold, amount)
      local alg = q.alg
      if alg == TB then return tb_adjust(q, hold, amount) end
      if alg == SW then return sw_adjust(q, hold, amount) end
      if alg == FW then return fw_adjust(q, hold, amount) end
      -- A settled call is no longer in flight, whatever it used.
      return release(q, hold)
    end
  end
end

-- Pending token-bucket bookings whose time has come: folded into tat, and the charge recorded in their
-- reservations. Before anything reads or changes the quota: the same order as folding lazily.
if hasTB then
  for i = 1, nq do
    local q = Q[i]
    local folded = 0
    while q.alg == TB and folded < #q.pending and q.pending[folded + 1].at <= now do
      folded = folded + 1
      local p = q.pending[folded]
      tb_charge(q, p.amount, p.at)
      if string.sub(p.entry, -1) ~= '+' then
        local record = call('HGET', K_RES, p.entry)
        local groups = record and groupsIn(record)
        if groups and groups >= i then
          local before = 8 + 33 * (i - 1)
          local group = pack('<Bdddd', 2, p.amount, q.epoch, q.charged, p.at)
          call('HSET', K_RES, p.entry, string.sub(record, 1, before) .. group .. string.sub(record, before + 34))
        end
      end
    end
    if folded > 0 then
      local rest = {}
      for j = folded + 1, #q.pending do rest[#rest + 1] = q.pending[j] end
      q.pending = rest
      q.pendingDirty = true
    end
  end
end

-- Reservation ids: "<the millisecond booked in>-<sequence>", unique while the bucket's state lives (a fresh
-- state starts at a later millisecond).
local function expiryOf(id)
  return (tonumber(string.match(id, '^(%d+)-')) or 0) + 1 + ttlMs
end

-- Orphans: a reservation open past its expiry is settled with its charge kept. Its concurrency slot comes
-- back; what it booked on the rate quotas stays booked, since the call may well have reached the provider.
-- A reservation's id starts with the millisecond it was booked in, so its expiry needs no index of its own;
-- nothing can have expired before earliestExpiry (a lower bound), so the ids are only read once it has come.
if now >= earliestExpiry then
  local ids = call('HKEYS', K_RES)
  local earliest = INF
  for j = 1, #ids do
    local expiry = expiryOf(ids[j])
    if expiry <= now then
      local record = call('HGET', K_RES, ids[j])
      call('HDEL', K_RES, ids[j])
      openCount = max(0, openCount - 1)
      local r = parseReservation(ids[j], record)
      for i = 1, nq do
        if r.holds[i] and Q[i].alg == CC then Q[i].inflight = Q[i].inflight - r.holds[i].amount end
      end
    elseif expiry < earliest then
      earliest = expiry
    end
  end
  earliestExpiry = earliest
end
`

/**
 * The end of every script: writes the state back, and keeps every key alive until every booking has drained and
 * every open reservation has expired, after which the bucket is as good as new and may vanish. Every key of the
 * bucket expires at one time, expiresAt; a call that needs it later moves it an eighth of the time further than
 * it needs, so that the expiries are set again only once in a while rather than on every call. A key created
 * meanwhile (the first reservation after none were open, say) gets the same expiry. Then returns the body's
 * `result`.
 */
export const epilogue = String.raw`
do
  local horizon = max(now + ttlMs, lastBooked + maxWindow, blockedUntil)
  local parts = { '' }
  local changed = nil
  for i = 1, nq do
    local q = Q[i]
    local alg = q.alg
    if alg == TB then
      parts[i + 1] = pack('<dddddd', q.since, q.owed, q.epoch, q.charged, q.lastChargeAt, #q.pending)
      if q.pendingDirty then
        local pending = {}
        for j = 1, #q.pending do
          pending[j] = q.pending[j].entry .. ',' .. fmt(q.pending[j].amount) .. ',' .. fmt(q.pending[j].at)
        end
        if changed == nil then changed = {} end
        changed[#changed + 1] = 'p' .. (i - 1)
        changed[#changed + 1] = table.concat(pending, ';')
      end
      local projected = tb_projected(q)
      if projected > horizon then horizon = projected end
    elseif alg == SW then
      parts[i + 1] = pack('<dd', q.total, q.count)
    elseif alg == CC then
      parts[i + 1] = pack('<d', q.inflight)
    else
      parts[i + 1] = ''
      if q.win then
        local set, del = {}, {}
        for index in pairs(q.dirty) do
          if q.win[index] ~= nil then
            set[#set + 1] = fmt(index)
            set[#set + 1] = fmt(q.win[index])
          else
            del[#del + 1] = fmt(index)
          end
        end
        if #set > 0 then
          call('HSET', q.key, unpack(set))
          if not q.existed then created(q.key) end
        end
        if #del > 0 then call('HDEL', q.key, unpack(del)) end
      end
    end
  end
  local needed = now + max(1000, ceil(horizon - now) + 1000)
  local extend = needed > expiresAt
  if extend then
    expiresAt = ceil(needed + (needed - now) / 8)
    -- Once in a while, count the open reservations again rather than trust the running count.
    openCount = call('HLEN', K_RES)
  end
  parts[1] = pack('<dddddd', lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq)
  if storedAlgs ~= algs then
    if changed == nil then changed = {} end
    changed[#changed + 1] = 'a'
    changed[#changed + 1] = algs
  end
  if not cached then
    if changed == nil then changed = {} end
    changed[#changed + 1] = 'c'
    changed[#changed + 1] = ARGV[1]
    changed[#changed + 1] = 'k'
    changed[#changed + 1] = table.concat(derivedParts)
  end
  if changed == nil then
    call('HSET', K_STATE, 'g', table.concat(parts))
  else
    call('HSET', K_STATE, 'g', table.concat(parts), unpack(changed))
  end
  if extend then
    local at = format('%d', expiresAt)
    for j = 1, 2 do call('PEXPIREAT', KEYS[j], at) end
    -- Token bucket and concurrency quotas never create their key.
    for i = 1, nq do
      if Q[i].alg == SW or Q[i].alg == FW then call('PEXPIREAT', Q[i].key, at) end
    end
  elseif fresh ~= nil then
    local at = format('%d', expiresAt)
    for j = 1, #fresh do call('PEXPIREAT', fresh[j], at) end
  end
end
return result
`

/**
 * What only status and observe ask of the meters: how much is in use, how long a demand would wait, and
 * raising the usage to what the provider reports. Comes after the prelude.
 */
export const queries = String.raw`
local function num(s)
  if s == 'inf' then return INF end
  if s == '-inf' then return -INF end
  return tonumber(s)
end
local tb_tighten, tb_used, tb_backlog
if hasTB then
  tb_tighten = function(q, reported)
    local current = max(0, tb_tat(q) - now) / q.interval
    if reported > current then tb_charge(q, reported - current, now) end
  end
  tb_used = function(q)
    return max(0, tb_projected(q) - now) / q.interval
  end
  tb_backlog = function(q, demand)
    return max(0, tb_projected(q) + demand * q.interval - q.tol - now)
  end
end

local sw_tighten, sw_used, sw_backlog
if hasSW then
  -- What others used is logged as one entry, no earlier than the last booking so the log stays in order.
  sw_tighten = function(q, reported, entry)
    sw_prune(q)
    local current = 0
    local upToNow = call('ZRANGEBYSCORE', q.key, '-inf', fmt(now))
    for j = 1, #upToNow do current = current + amountOf(upToNow[j]) end
    local last = now
    local tail = call('ZRANGE', q.key, -1, -1, 'WITHSCORES')
    if #tail > 0 then last = tonumber(tail[2]) end
    if reported > current then sw_book(q, reported - current, max(now, last), entry) end
  end
  sw_used = function(q)
    sw_prune(q)
    return q.total
  end
  sw_backlog = function(q, demand)
    if demand <= 0 then return 0 end
    local full = ceil(demand / q.cap) - 1
    local last = demand - full * q.cap
    return sw_fits(q, last, now) - now + full * q.w
  end
end

local fw_tighten, fw_used, fw_backlog
if hasFW then
  fw_tighten = function(q, reported)
    fw_prune(q)
    local index = fw_index(q, now)
    q.win[index] = max(q.win[index] or 0, reported)
    q.dirty[index] = true
  end
  fw_used = function(q)
    fw_prune(q)
    return q.win[fw_index(q, now)] or 0
  end
  fw_backlog = function(q, demand)
    fw_prune(q)
    local first = fw_index(q, now)
    local last = first
    for index in pairs(q.win) do
      if index > last then last = index end
    end
    local left = demand
    for index = first, last do
      local free = max(0, q.cap - (q.win[index] or 0))
      if left <= free then
        if index == first then return 0 end
        return index * q.w - now
      end
      left = left - free
    end
    return (last + ceil(left / q.cap)) * q.w - now
  end
end

-- Raises the amount in use at now to at least what the provider reports (others share the key).
local function tighten(q, reported, entry)
  local alg = q.alg
  if alg == TB then return tb_tighten(q, reported) end
  if alg == SW then return sw_tighten(q, reported, entry) end
  if alg == FW then return fw_tighten(q, reported) end
  -- Providers report no calls in flight: nothing to learn.
end
local function used(q)
  local alg = q.alg
  if alg == TB then return tb_used(q) end
  if alg == SW then return sw_used(q) end
  if alg == FW then return fw_used(q) end
  return q.inflight
end
local function backlog(q, demand)
  local alg = q.alg
  if alg == TB then return tb_backlog(q, demand) end
  if alg == SW then return sw_backlog(q, demand) end
  if alg == FW then return fw_backlog(q, demand) end
  if q.inflight + demand <= q.cap then return 0 end
  return INF
end
`
