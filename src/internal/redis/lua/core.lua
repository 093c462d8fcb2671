-- What every operation shares: binding the standard functions, the bucket's configuration from args[1], the
-- memo of buckets, reading the state (load) and reservation records. With meters.lua and call.lua, a
-- line-by-line port of src/internal/meters.ts and src/internal/bucketState.ts; keep them in step. The keys and
-- fields it reads are laid out in layout.lua.
--
-- It is the top of a library (library.ts assembles it): everything here is made once, when Redis loads the
-- library, not on every call. Each call starts with begin(keys, args) and ends with finish(result) (call.lua);
-- a call runs alone (Redis runs one function at a time), so the call's variables are the library's locals.
--
-- Calling convention:
-- - keys: the state hash, then the key of each sliding-window and fixed-window quota, in quota order
--   (`scriptKeys` in keys.ts; the other meters keep their state in the state hash).
-- - args[1]: the bucket's configuration, space-separated (`configArg` in store.ts): reservationTtlMs, the
--   algorithms (a letter per quota), whether each refunds (1 / 0 per quota), burstMultiplier, skewMs, then per
--   quota the limit it runs at (`effectiveLimit`: after the safety ratio) and its window.
-- - args from OP (2): the operation's own arguments (see each operation's file).
-- - the reply: the operation's answer, then the TIME the call ran at as Redis gave it (seconds, microseconds),
--   from which the client derives `now` exactly as the library does. Time is Redis TIME in milliseconds with
--   the microseconds as a fraction; no client clock is used.

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

-- Numbers on their way into one struct.pack, and a reserve's amounts (reused: a call makes no table for them).
local VALUES, AMOUNTS = {}, {}

-- The meter of each algorithm (meters.lua).
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
    ttlMs = ttlMs, algs = algs, nq = #algs, quotas = {}, maxWindow = 0, stateLength = HEADER_BYTES,
    prefix = algs .. ' ', stateFormat = HEADER_FORMAT, recordFormat = RECORD_FORMAT
  }
  local nextKey = 2
  local limits = gmatch(quotaConfig, '(%S+) (%S+)')
  for i = 1, #algs do
    local alg = byte(algs, i)
    if QUOTA_BYTES[alg] == nil then return nil end
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
    c.stateLength = c.stateLength + QUOTA_BYTES[alg]
    c.stateFormat = c.stateFormat .. sub(QUOTA_FORMAT[alg], 2)
    c.recordFormat = c.recordFormat .. sub(HOLD_FORMAT, 2)
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
local TAKEN, TAKEN_RECORD, BOOKED, BOOKED_RECORD, TOMBSTONE
local lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq
-- Keys this call creates while the others keep their expiry: they get the same one (see finish).
local fresh

local function created(key)
  if fresh == nil then fresh = {} end
  fresh[#fresh + 1] = key
end

-- Reads the state (G, the field 'state': see layout.lua) into the call's variables and the quotas' tables, and
-- a token bucket's pending bookings from 'p<i>'. A quota whose algorithm changed at its index starts afresh.
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
  local length = space + HEADER_BYTES
  if storedAlgs == algs then
    length = space + stateLength
  else
    for i = 1, #storedAlgs do length = length + (QUOTA_BYTES[byte(storedAlgs, i)] or 0) end
  end
  -- The layout before token buckets recorded their window (8 bytes less each) is read too, with the window
  -- unknown, so that an upgrade keeps what was booked.
  local legacy = false
  if #G ~= length then
    local buckets = 0
    for i = 1, #storedAlgs do
      if byte(storedAlgs, i) == TB then buckets = buckets + 1 end
    end
    if buckets == 0 or #G ~= length - 8 * buckets then return end
    legacy = true
  end
  local pos
  lastBooked, blockedUntil, earliestExpiry, expiresAt, openCount, seq, pos = unpackStruct(HEADER_FORMAT, G, space + 1)
  for i = 1, #storedAlgs do
    local a = byte(storedAlgs, i)
    local q = Q[i]
    if q and q.alg ~= a then q = nil end
    if a == TB then
      local since, owed, epoch, charged, lastChargeAt, pending, window
      if legacy then
        since, owed, epoch, charged, lastChargeAt, pending, pos = unpackStruct(LEGACY_TB_FORMAT, G, pos)
        window = 0
      else
        since, owed, epoch, charged, lastChargeAt, pending, window, pos = unpackStruct(QUOTA_FORMAT[TB], G, pos)
      end
      if q then
        -- Written under another window (a retune): the time in use is that window's share, so it scales, as
        -- in TokenBucket.retune (since, the charged units and the pending bookings, in units, stay).
        if window > 0 and window ~= q.w then owed = owed * (q.w / window) end
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
      total, count, pos = unpackStruct(QUOTA_FORMAT[SW], G, pos)
      if q then q.total, q.count = total, count end
    elseif a == CC then
      local inflight
      inflight, pos = unpackStruct(QUOTA_FORMAT[CC], G, pos)
      if q then q.inflight = inflight end
    end
  end
end

-- Reservation records (layout.lua): a head, then a hold per quota. Booking a quota returns its hold's five
-- numbers.

-- The number of hold groups in a record, or nil when it is not a record this version wrote.
local function groupsIn(record)
  local groups = (#record - RECORD_BYTES) / HOLD_BYTES
  if groups < 0 or groups ~= floor(groups) then return nil end
  for j = 0, groups - 1 do
    if byte(record, RECORD_BYTES + 1 + HOLD_BYTES * j) > 2 then return nil end
  end
  return groups
end

-- The holds of a record by quota index (nil: none), each { entry, live, amount, mark, after, chargedAt }; a record
-- written under another configuration yields the holds it has. The tables are reused: a call reads one record
-- at a time, and is done with its holds before it parses the next.
local HOLDS, HOLD = {}, {}
local function holdsOf(id, record)
  local groups = groupsIn(record) or 0
  local pos = RECORD_BYTES + 1
  for i = 1, nq do
    HOLDS[i] = nil
    if i <= groups then
      local kind, amount, mark, after, chargedAt
      kind, amount, mark, after, chargedAt, pos = unpackStruct(HOLD_FORMAT, record, pos)
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

-- Reservation ids are unique: each client's tokens are. Records are fields of the state hash, named by their
-- ids; the hash's other fields never look like one.
local function isId(field)
  return match(field, ID_PATTERN) ~= nil
end

local function expiryOf(id)
  return (tonumber(match(id, '^(%d+)-')) or 0) + 1 + ttlMs
end

-- A client's token, if `token` is one (TOKEN_PATTERN, at most TOKEN_MAX long); nil otherwise.
local function tokenOf(token)
  -- Called before begin has bound the short names: the string library's own.
  if type(token) ~= 'string' or #token > TOKEN_MAX or string.match(token, TOKEN_PATTERN) == nil then return nil end
  return token
end
