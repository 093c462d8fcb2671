/**
 * The Lua every operation shares: the Redis clock, the bucket's configuration from ARGV, the state from the
 * bucket's keys, and the four meters. A line-by-line port of `src/internal/meters.ts` and
 * `src/internal/bucketState.ts`; keep them in step.
 *
 * It is the top of a library (see `library.ts`): everything here is made once, when Redis loads the library,
 * not on every call. Each call starts with `begin(keys, args)`, which sets the call's variables below (a call
 * runs alone: Redis runs one function at a time), and ends with `finish(result)`, which saves the state.
 *
 * Calling convention (see `keys.ts` for the keys and how the state is stored):
 * - keys: the state hash (which holds the open reservations too), then the key of each sliding-window and
 *   fixed-window quota, in quota order (`scriptKeys`; the other meters keep their state in the state hash).
 * - args[1]: the bucket's configuration, space-separated (`configArg` in `store.ts`): reservationTtlMs, the
 *   algorithms (one letter per quota: `t` token bucket, `s` sliding window, `f` fixed window, `c` concurrency),
 *   whether each refunds (`1` / `0` per quota), burstMultiplier, skewMs, then per quota the limit it runs at
 *   (`effectiveLimit`: after the safety ratio) and its window.
 * - args from `OP` (2): the operation's own arguments.
 *
 * Numbers in the state hash and in reservation records are IEEE doubles packed with `struct` (exact, and far
 * cheaper than formatting and parsing decimals); numbers in replies, sorted-set scores and fixed-window hashes
 * are `%.17g` strings (exact round trip; a Lua number returned to Redis would be truncated to an integer), `inf`
 * for infinity. Every reply ends with the `TIME` the call ran at, as Redis gave it (seconds, microseconds):
 * the client derives `now` from them exactly as the library does.
 *
 * Time is Redis `TIME` in milliseconds with the microseconds as a fraction; no client clock is used.
 *
 * @internal
 */

/** Constants, helpers, the configuration cache, the call's variables, and reading and writing the state. */
const state = String.raw`
-- Redis loads a library with almost nothing in scope (no math, string, struct or redis.call): the standard
-- functions are bound by the first call (bind), into locals, as a script would bind them.
local INF, max, min, floor, ceil, format, byte, sub, match, gmatch, find, pack, unpackStruct, concat, call, unpackTable
local function bind()
  INF = math.huge
  max, min, floor, ceil = math.max, math.min, math.floor, math.ceil
  format, byte, sub, match, gmatch, find = string.format, string.byte, string.sub, string.match, string.gmatch, string.find
  pack, unpackStruct = struct.pack, struct.unpack
  concat = table.concat
  call = redis.call
  unpackTable = unpack
end
-- Algorithms, as the bytes of their letters.
local TB, SW, FW, CC = 116, 115, 102, 99
local OP = 2
-- A token bucket's pending bookings when it has none (never changed: a booking makes a table of its own).
local NONE = {}

local function fmt(x)
  if x == INF then return 'inf' end
  if x == -INF then return '-inf' end
  return format('%.17g', x)
end

local function num(s)
  if s == 'inf' then return INF end
  if s == '-inf' then return -INF end
  return tonumber(s)
end

-- Bytes a quota of each algorithm takes in the packed state, and their struct format.
local STATE_BYTES = { [TB] = 48, [SW] = 16, [FW] = 0, [CC] = 8 }
local STATE_FORMAT = { [TB] = 'dddddd', [SW] = 'dd', [FW] = '', [CC] = 'd' }
-- Numbers on their way into one struct.pack, and a reserve's amounts (reused: a call makes no table for them).
local VALUES, AMOUNTS = {}, {}

-- The meter of each algorithm (see below).
local METERS

-- A memo of at most limit entries (memo.entries[key]): once full, it starts afresh. The buckets and
-- configurations a deployment uses are few; a flood of distinct ones only clears it.
local function memoOf(limit)
  return { entries = {}, count = 0, limit = limit }
end

local function remember(memo, key, value)
  if memo.count >= memo.limit then memo.entries, memo.count = {}, 0 end
  memo.entries[key] = value
  memo.count = memo.count + 1
  return value
end

-- The configurations seen, by args[1]: what a call derives from its configuration, derived once.
local configs = memoOf(256)

local function configure(text)
  local ttlMs, algs, refundFlags, burst, skew, quotaConfig = match(text, '^(%S+) (%S+) (%S+) (%S+) (%S+) (.*)$')
  if not ttlMs then return nil end
  ttlMs, burst, skew = tonumber(ttlMs), tonumber(burst), tonumber(skew)
  local c = {
    ttlMs = ttlMs, algs = algs, nq = #algs, quotas = {}, maxWindow = 0, stateLength = 48,
    prefix = algs .. ' ', stateFormat = '<dddddd', recordFormat = '<d'
  }
  local nextKey = 2
  local limits = gmatch(quotaConfig, '(%S+) (%S+)')
  for i = 1, #algs do
    local alg = byte(algs, i)
    if STATE_BYTES[alg] == nil then return nil end
    local limit, w = limits()
    limit, w = tonumber(limit), tonumber(w)
    -- How much later than others a call may reach the provider: kept clear at the edges of windows.
    local q = { alg = alg, m = METERS[alg], index = i, refunds = byte(refundFlags, i) == 49, cap = limit, w = w, interval = 0, tol = 0 }
    if alg == TB then
      q.cap = max(1, floor(limit * burst))
      q.interval = w / limit
      q.tol = q.cap * q.interval - skew
      c.hasTB = true
    elseif alg == SW then
      q.w = w + skew
      c.hasSW = true
    elseif alg == FW then
      c.hasFW = true
    end
    if alg == SW or alg == FW then
      q.keyIndex = nextKey
      nextKey = nextKey + 1
    end
    if q.w > c.maxWindow then c.maxWindow = q.w end
    c.stateLength = c.stateLength + STATE_BYTES[alg]
    c.stateFormat = c.stateFormat .. STATE_FORMAT[alg]
    c.recordFormat = c.recordFormat .. 'Bdddd'
    c.quotas[i] = q
  end
  return remember(configs, text, c)
end

-- What the last call on each bucket left, by state key: the configuration it ran with, a table per quota
-- holding the state it wrote (and, during a call, the quota's configuration and state: begin fills it), the
-- header, and the state string it wrote (G). A call that reads back that very string takes the state from here
-- instead of unpacking it again: a memo of unpacking the string, valid whatever wrote it before. (Lua strings
-- are interned, so comparing the two is comparing pointers.) Forgotten at the start of every call and
-- remembered by finish, so a call that fails midway leaves nothing to trust.
local buckets = memoOf(1024)

local function bucketOf(key, c)
  local b = buckets.entries[key]
  if b ~= nil and b.c == c then return b end
  b = { c = c, quotas = {} }
  for i = 1, c.nq do
    local q = {}
    for field, value in pairs(c.quotas[i]) do q[field] = value end
    b.quotas[i] = q
  end
  return remember(buckets, key, b)
end

-- The call's variables, set by begin: C the configuration, B the bucket's entry, Q its quotas; TAKEN the id of
-- the reservation the call closes and its record (read with the state; false once gone), BOOKED the id and
-- record of the reservation it opens (written with the state).
local clock, now, K_STATE, C, B, ttlMs, algs, nq, Q, maxWindow, stateLength
local TAKEN, TAKEN_RECORD, BOOKED, BOOKED_RECORD
local lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq
-- Keys this call creates while the others keep their expiry: they get the same one (see finish).
local fresh

local function created(key)
  if fresh == nil then fresh = {} end
  fresh[#fresh + 1] = key
end

-- The state, in the field 'state' of the state hash: the algorithms it was written for (a letter per quota),
-- a space, then doubles: lastBooked, blockedUntil, the earliest expiry (a lower bound of the open reservations'
-- expiries), the time every key expires at, the number of open reservations, the last id's sequence number;
-- then per quota: token bucket since, owed, epoch, charged, lastChargeAt, pending bookings; sliding window
-- total, entries; concurrency in flight. A token bucket's pending bookings themselves are in 'p<i>' (i from 0),
-- "entry,amount,at;..." in booking order. A quota whose algorithm changed at its index starts afresh.
local function load(keys, G)
  lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq = -INF, -INF, -INF, -INF, 0, 0
  for i = 1, nq do
    local q = Q[i]
    local alg = q.alg
    if alg == TB then
      q.since, q.owed, q.epoch, q.charged, q.lastChargeAt, q.pending, q.pendingDirty = -INF, 0, 0, 0, -INF, NONE, false
    elseif alg == SW then
      q.key, q.total, q.count, q.prunedAt = keys[q.keyIndex], false, 0, false
    elseif alg == FW then
      q.key, q.win, q.dirty, q.existed = keys[q.keyIndex], false, false, false
    else
      q.inflight = 0
    end
  end
  if not G then return end
  local space = find(G, ' ', 1, true)
  if not space then return end
  local storedAlgs = sub(G, 1, space - 1)
  local length = space + 48
  if storedAlgs == algs then
    length = space + stateLength
  else
    for i = 1, #storedAlgs do length = length + (STATE_BYTES[byte(storedAlgs, i)] or 0) end
  end
  if #G ~= length then return end
  local pos
  lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq, pos = unpackStruct('<dddddd', G, space + 1)
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
          q.pending = {}
          for entry, amount, at in gmatch(call('HGET', K_STATE, 'p' .. (i - 1)) or '', '([^,;]+),([^,;]+),([^,;]+)') do
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

-- Reservation records: the booking time, then per quota a hold: kind (0 no hold, 1 a token bucket's pending
-- booking, 2 held), amount, mark, after, chargedAt; packed as '<d', then '<Bdddd' per quota (a group). Booking
-- a quota returns its group's five numbers.

-- The number of hold groups in a record, or nil when it is not a record this version wrote.
local function groupsIn(record)
  local groups = (#record - 8) / 33
  if groups < 0 or groups ~= floor(groups) then return nil end
  for j = 0, groups - 1 do
    if byte(record, 9 + 33 * j) > 2 then return nil end
  end
  return groups
end

-- The holds of a record by quota index (nil: none), each { entry, live, amount, mark, after, chargedAt }; a record
-- written under another configuration yields the holds it has. The tables are reused: a call reads one record
-- at a time, and is done with its holds before it parses the next.
local HOLDS, HOLD = {}, {}
local function holdsOf(id, record)
  local groups = groupsIn(record) or 0
  local pos = 9
  for i = 1, nq do
    HOLDS[i] = nil
    if i <= groups then
      local kind, amount, mark, after, chargedAt
      kind, amount, mark, after, chargedAt, pos = unpackStruct('<Bdddd', record, pos)
      if kind > 0 then
        local hold = HOLD[i]
        if hold == nil then
          hold = {}
          HOLD[i] = hold
        end
        hold.entry, hold.live, hold.amount, hold.mark, hold.after, hold.chargedAt = id, kind == 2, amount, mark, after, chargedAt
        HOLDS[i] = hold
      end
    end
  end
  return HOLDS
end

-- Reservation ids: "<the millisecond booked in>-<sequence>", unique while the bucket's state lives (a fresh
-- state starts at a later millisecond). Records are fields of the state hash, named by their ids; the hash's
-- other fields ('state', 'p<i>') never look like one.
local function isId(field)
  return match(field, '^%d+%-%d+$') ~= nil
end

local function expiryOf(id)
  return (tonumber(match(id, '^(%d+)-')) or 0) + 1 + ttlMs
end
`

/**
 * The meters: per algorithm a table of methods (fits, book, adjust, release; tighten, used, backlog for observe
 * and status), each taking the quota's table first. A quota's table names its meter (`q.m`).
 */
const meters = String.raw`
-- Token bucket (GCRA, epochs, pending future bookings) ------------------------------------------------------
local tb = {}
-- tat = since + owed: kept apart so that adding an interval does not round at epoch-millisecond magnitude.
local function tb_tat(q)
  return q.since + q.owed
end
-- Sets tat to max(tat + delta, floor).
local function tb_owe(q, delta, floor)
  if tb_tat(q) + delta > floor then
    q.owed = q.owed + delta
  else
    q.since, q.owed = floor, 0
  end
end
-- Charges amount at at; the hold it makes is (amount, mark = epoch, after = charged, chargedAt = at).
local function tb_charge(q, amount, at)
  if tb_tat(q) <= at then
    q.epoch = q.epoch + 1
    q.since, q.owed = at, 0
  end
  q.owed = q.owed + amount * q.interval
  q.charged = q.charged + amount
  q.lastChargeAt = max(q.lastChargeAt, at)
end
local function tb_projected(q)
  local tat = tb_tat(q)
  local pending = q.pending
  for j = 1, #pending do tat = max(tat, pending[j].at) + pending[j].amount * q.interval end
  return tat
end
function tb.fits(q, amount, from)
  return max(from, tb_projected(q) + amount * q.interval - q.tol)
end
-- A booking whose time has come is charged at once; a later one waits in pending.
function tb.book(q, amount, at, entry)
  if at <= now then
    tb_charge(q, amount, at)
    return 2, amount, q.epoch, q.charged, at
  end
  if q.pending == NONE then q.pending = {} end
  q.pending[#q.pending + 1] = { entry = entry, amount = amount, at = at }
  q.pendingDirty = true
  return 1, amount, at, 0, at
end
function tb.adjust(q, hold, amount)
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
function tb.release(q, hold)
  if not hold.live then return tb.adjust(q, hold, 0) end
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
function tb.tighten(q, reported)
  local current = max(0, tb_tat(q) - now) / q.interval
  if reported > current then tb_charge(q, reported - current, now) end
end
function tb.used(q)
  return max(0, tb_projected(q) - now) / q.interval
end
function tb.backlog(q, demand)
  return max(0, tb_projected(q) + demand * q.interval - q.tol - now)
end

-- Sliding window: a log in a sorted set, member "entry/amount", score = booking time ------------------------
local sw = {}
local function amountOf(member)
  return tonumber(match(member, '/([^/]+)$'))
end
local function sw_prune(q)
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
function sw.fits(q, amount, from)
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
function sw.book(q, amount, at, entry)
  call('ZADD', q.key, fmt(at), entry .. '/' .. fmt(amount))
  if q.count == 0 then created(q.key) end
  q.total = q.total + amount
  q.count = q.count + 1
  return 2, amount, at, 0, at
end
function sw.adjust(q, hold, amount)
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
function sw.release(q, hold)
  return sw.adjust(q, hold, 0)
end
-- What others used is logged as one entry, no earlier than the last booking so the log stays in order.
function sw.tighten(q, reported, entry)
  sw_prune(q)
  local current = 0
  local upToNow = call('ZRANGEBYSCORE', q.key, '-inf', fmt(now))
  for j = 1, #upToNow do current = current + amountOf(upToNow[j]) end
  local last = now
  local tail = call('ZRANGE', q.key, -1, -1, 'WITHSCORES')
  if #tail > 0 then last = tonumber(tail[2]) end
  if reported > current then sw.book(q, reported - current, max(now, last), entry) end
end
function sw.used(q)
  sw_prune(q)
  return q.total
end
function sw.backlog(q, demand)
  if demand <= 0 then return 0 end
  local full = ceil(demand / q.cap) - 1
  local last = demand - full * q.cap
  return sw.fits(q, last, now) - now + full * q.w
end

-- Fixed windows aligned to the epoch: a hash window index -> amount ----------------------------------------
local fw = {}
local function fw_load(q)
  if q.win then return end
  q.win = {}
  q.dirty = {}
  local raw = call('HGETALL', q.key)
  q.existed = #raw > 0
  for j = 1, #raw, 2 do q.win[tonumber(raw[j])] = tonumber(raw[j + 1]) end
end
local function fw_index(q, t)
  return floor(t / q.w)
end
local function fw_prune(q)
  fw_load(q)
  local current = fw_index(q, now)
  for index in pairs(q.win) do
    if index < current then
      q.win[index] = nil
      q.dirty[index] = true
    end
  end
end
function fw.fits(q, amount, from)
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
function fw.book(q, amount, at)
  fw_load(q)
  local index = fw_index(q, at)
  q.win[index] = (q.win[index] or 0) + amount
  q.dirty[index] = true
  return 2, amount, index, 0, at
end
function fw.adjust(q, hold, amount)
  fw_prune(q)
  if hold.mark >= fw_index(q, now) then
    q.win[hold.mark] = (q.win[hold.mark] or 0) + amount - hold.amount
    q.dirty[hold.mark] = true
  end
end
function fw.release(q, hold)
  return fw.adjust(q, hold, 0)
end
function fw.tighten(q, reported)
  fw_prune(q)
  local index = fw_index(q, now)
  q.win[index] = max(q.win[index] or 0, reported)
  q.dirty[index] = true
end
function fw.used(q)
  fw_prune(q)
  return q.win[fw_index(q, now)] or 0
end
function fw.backlog(q, demand)
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

-- Concurrency: calls in flight -----------------------------------------------------------------------------
local cc = {}
function cc.fits(q, amount, from)
  if q.inflight + amount <= q.cap then return from end
  return INF
end
function cc.book(q, amount)
  q.inflight = q.inflight + amount
  return 2, amount, 0, 0, 0
end
function cc.release(q, hold)
  q.inflight = q.inflight - hold.amount
end
-- A settled call is no longer in flight, whatever it used.
function cc.adjust(q, hold)
  return cc.release(q, hold)
end
-- Providers report no calls in flight: nothing to learn.
function cc.tighten() end
function cc.used(q)
  return q.inflight
end
function cc.backlog(q, demand)
  if q.inflight + demand <= q.cap then return 0 end
  return INF
end

METERS = { [TB] = tb, [SW] = sw, [FW] = fw, [CC] = cc }
`

/** `begin` and `finish`: the start and the end of every call. */
const calls = String.raw`
-- Starts a call: the clock, the configuration, the state (and the record of 'taken', the id of a reservation
-- the call closes); then what time alone changes: due pending bookings are charged, and expired
-- reservations reclaimed. Returns an error reply when the configuration is unreadable.
local function begin(keys, args, taken)
  if call == nil then bind() end
  clock = call('TIME')
  now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
  K_STATE = keys[1]
  local c = configs.entries[args[1]] or configure(args[1])
  if c == nil then return redis.error_reply('ERR quotaflow: unreadable configuration ' .. tostring(args[1])) end
  local b = bucketOf(K_STATE, c)
  C, B, ttlMs, algs, nq, Q, maxWindow, stateLength = c, b, c.ttlMs, c.algs, c.nq, b.quotas, c.maxWindow, c.stateLength
  fresh = nil
  BOOKED, BOOKED_RECORD = nil, nil
  local G
  if taken then
    local got = call('HMGET', K_STATE, 'state', taken)
    G, TAKEN, TAKEN_RECORD = got[1], taken, got[2]
  else
    G, TAKEN, TAKEN_RECORD = call('HGET', K_STATE, 'state'), nil, false
  end
  if G and G == b.G then
    lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq = b.lastBooked, b.blockedUntil, b.earliestExpiry, b.expiresAt, b.openCount, b.seq
    -- What lives only during a call starts afresh.
    for i = 1, nq do
      local q = Q[i]
      local alg = q.alg
      if alg == TB then
        q.pendingDirty = false
      elseif alg == SW then
        q.prunedAt = false
      elseif alg == FW then
        q.win, q.dirty, q.existed = false, false, false
      end
    end
  else
    load(keys, G)
  end
  b.G = nil
  if c.hasSW then
    for i = 1, nq do
      local q = Q[i]
      if q.alg == SW and not q.total then
        -- No state for this log yet: count the log itself.
        q.total = 0
        local all = call('ZRANGE', q.key, 0, -1)
        for j = 1, #all do q.total = q.total + amountOf(all[j]) end
        q.count = #all
      end
    end
  end

  -- Pending token-bucket bookings whose time has come: folded into tat, and the charge recorded in their
  -- reservations. Before anything reads or changes the quota: the same order as folding lazily.
  if c.hasTB then
    for i = 1, nq do
      local q = Q[i]
      local folded = 0
      while q.alg == TB and folded < #q.pending and q.pending[folded + 1].at <= now do
        folded = folded + 1
        local p = q.pending[folded]
        tb_charge(q, p.amount, p.at)
        if sub(p.entry, -1) ~= '+' then
          local record = call('HGET', K_STATE, p.entry)
          local groups = record and groupsIn(record)
          if groups and groups >= i then
            local before = 8 + 33 * (i - 1)
            local group = pack('<Bdddd', 2, p.amount, q.epoch, q.charged, p.at)
            record = sub(record, 1, before) .. group .. sub(record, before + 34)
            call('HSET', K_STATE, p.entry, record)
            if p.entry == TAKEN then TAKEN_RECORD = record end
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

  -- Orphans: a reservation open past its expiry is settled with its charge kept. Its concurrency slot comes
  -- back; what it booked on the rate quotas stays booked, since the call may well have reached the provider.
  -- A reservation's id starts with the millisecond it was booked in, so its expiry needs no index of its own;
  -- nothing can have expired before earliestExpiry (a lower bound), so the ids are only read once it has come.
  if now >= earliestExpiry then
    local ids = call('HKEYS', K_STATE)
    local earliest = INF
    for j = 1, #ids do
      local expiry = isId(ids[j]) and expiryOf(ids[j]) or INF
      if expiry <= now then
        local record = call('HGET', K_STATE, ids[j])
        call('HDEL', K_STATE, ids[j])
        if ids[j] == TAKEN then TAKEN_RECORD = false end
        openCount = max(0, openCount - 1)
        local holds = holdsOf(ids[j], record)
        for i = 1, nq do
          if holds[i] and Q[i].alg == CC then Q[i].inflight = Q[i].inflight - holds[i].amount end
        end
      elseif expiry < earliest then
        earliest = expiry
      end
    end
    earliestExpiry = earliest
  end
  return nil
end

-- Ends a call: writes the state back, and keeps every key alive until every booking has drained and every open
-- reservation has expired, after which the bucket is as good as new and may vanish. Every key of the bucket
-- expires at one time, expiresAt; a call that needs it later moves it an eighth of the time further than it
-- needs, so that the expiries are set again only once in a while rather than on every call. A key created
-- meanwhile (the first reservation after none were open, say) gets the same expiry. Returns result.
local function finish(result)
  local horizon = max(now + ttlMs, lastBooked + maxWindow, blockedUntil)
  -- The state's numbers, header first (filled in last, once expiresAt and openCount are known).
  local v = VALUES
  local n = 6
  local changed = nil
  for i = 1, nq do
    local q = Q[i]
    local alg = q.alg
    if alg == TB then
      v[n + 1], v[n + 2], v[n + 3], v[n + 4], v[n + 5], v[n + 6] = q.since, q.owed, q.epoch, q.charged, q.lastChargeAt, #q.pending
      n = n + 6
      if q.pendingDirty then
        local pending = {}
        for j = 1, #q.pending do
          pending[j] = q.pending[j].entry .. ',' .. fmt(q.pending[j].amount) .. ',' .. fmt(q.pending[j].at)
        end
        if changed == nil then changed = {} end
        changed[#changed + 1] = 'p' .. (i - 1)
        changed[#changed + 1] = concat(pending, ';')
      end
      local projected = tb_projected(q)
      if projected > horizon then horizon = projected end
    elseif alg == SW then
      v[n + 1], v[n + 2] = q.total, q.count
      n = n + 2
    elseif alg == CC then
      v[n + 1] = q.inflight
      n = n + 1
    elseif q.win then
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
        call('HSET', q.key, unpackTable(set))
        if not q.existed then created(q.key) end
      end
      if #del > 0 then call('HDEL', q.key, unpackTable(del)) end
    end
  end
  local needed = now + max(1000, ceil(horizon - now) + 1000)
  local extend = needed > expiresAt
  if extend then
    expiresAt = ceil(needed + (needed - now) / 8)
    -- Once in a while, count the open reservations again rather than trust the running count.
    local fields = call('HKEYS', K_STATE)
    openCount = 0
    for j = 1, #fields do
      if isId(fields[j]) then openCount = openCount + 1 end
    end
    -- The reservation this call opens is written below.
    if BOOKED then openCount = openCount + 1 end
  end
  v[1], v[2], v[3], v[4], v[5], v[6] = lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq
  local packed = C.prefix .. pack(C.stateFormat, unpackTable(v, 1, n))
  B.G, B.lastBooked, B.blockedUntil, B.earliestExpiry, B.expiresAt, B.openCount, B.seq = packed, lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq
  if changed == nil then
    if BOOKED then call('HSET', K_STATE, 'state', packed, BOOKED, BOOKED_RECORD) else call('HSET', K_STATE, 'state', packed) end
  else
    if BOOKED then
      changed[#changed + 1] = BOOKED
      changed[#changed + 1] = BOOKED_RECORD
    end
    call('HSET', K_STATE, 'state', packed, unpackTable(changed))
  end
  if extend then
    local at = format('%d', expiresAt)
    call('PEXPIREAT', K_STATE, at)
    -- Token bucket and concurrency quotas never create their key.
    for i = 1, nq do
      if Q[i].alg == SW or Q[i].alg == FW then call('PEXPIREAT', Q[i].key, at) end
    end
  elseif fresh ~= nil then
    local at = format('%d', expiresAt)
    for j = 1, #fresh do call('PEXPIREAT', fresh[j], at) end
  end
  return result
end
`

/** The Lua at the top of the library: everything the operations share. */
export const core = state + meters + calls
