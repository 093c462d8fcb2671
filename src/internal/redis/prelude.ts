/**
 * The Lua shared by every script: the Redis clock, the bucket's configuration from ARGV, the state from the
 * bucket's keys, and the four meters. A line-by-line port of `src/internal/meters.ts` and
 * `src/internal/bucketState.ts`; keep them in step.
 *
 * Calling convention (see `keys.ts` for the keys):
 * - KEYS: state, reservations, expiries, counter, then one key per quota.
 * - ARGV: reservationTtlMs, safetyRatio, burstMultiplier, skewMs, n (quotas), then per quota: metric, limit, windowMs,
 *   algorithm, refunds ("1" / "0"); then the operation's own arguments from index `OP`.
 *
 * Numbers are stored and returned as `%.17g` strings (exact round trip; a Lua number returned to Redis would be
 * truncated to an integer), `inf` for infinity.
 *
 * Time is Redis `TIME` in milliseconds with the microseconds as a fraction; no client clock is used.
 *
 * @internal
 */
/** The shared Lua; each operation's script is `prelude + body`. */
export const prelude = String.raw`
local function num(s)
  if s == 'inf' then return math.huge end
  if s == '-inf' then return -math.huge end
  return tonumber(s)
end
local function fmt(x)
  if x == math.huge then return 'inf' end
  if x == -math.huge then return '-inf' end
  return string.format('%.17g', x)
end

if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000

local K_STATE, K_RES, K_EXP, K_SEQ = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ttlMs = tonumber(ARGV[1])
local safety = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
-- How much later than others a call may reach the provider: kept clear at the edges of windows.
local skew = tonumber(ARGV[4])
local nq = tonumber(ARGV[5])
local OP = 6 + 5 * nq

local S = {}
do
  local raw = redis.call('HGETALL', K_STATE)
  for j = 1, #raw, 2 do S[raw[j]] = raw[j + 1] end
end
local lastBooked = num(S['lb'] or '-inf')
-- Nothing is admitted before this time (a provider's retry hint).
local blockedUntil = num(S['bu'] or '-inf')

local Q = {}
local maxWindow = 0
for i = 1, nq do
  local b = 5 + (i - 1) * 5
  local q = {
    metric = ARGV[b + 1], alg = ARGV[b + 4], refunds = ARGV[b + 5] == '1', w = tonumber(ARGV[b + 3]),
    key = KEYS[4 + i], p = tostring(i - 1) .. ':', index = i
  }
  local limit = math.max(1, math.floor(tonumber(ARGV[b + 2]) * safety))
  if q.alg == 'token-bucket' then
    q.cap = math.max(1, math.floor(limit * burst))
    q.interval = q.w / limit
    q.tol = q.cap * q.interval - skew
    q.tat = num(S[q.p .. 't'] or '-inf')
    q.epoch = tonumber(S[q.p .. 'e'] or '0')
    q.charged = tonumber(S[q.p .. 'g'] or '0')
    q.lastChargeAt = num(S[q.p .. 'l'] or '-inf')
    q.pending = {}
    for entry, amount, at in string.gmatch(S[q.p .. 'p'] or '', '([^,;]+),([^,;]+),([^,;]+)') do
      q.pending[#q.pending + 1] = { entry = entry, amount = tonumber(amount), at = tonumber(at) }
    end
  elseif q.alg == 'sliding-window' then
    q.cap = limit
    q.w = q.w + skew
    q.total = tonumber(S[q.p .. 'n'] or '0')
  elseif q.alg == 'fixed-window' then
    q.cap = limit
  elseif q.alg == 'concurrency' then
    q.cap = limit
    q.inflight = tonumber(S[q.p .. 'f'] or '0')
  else
    return redis.error_reply('ERR quotaflow: unknown algorithm ' .. tostring(q.alg))
  end
  if q.w > maxWindow then maxWindow = q.w end
  Q[i] = q
end

-- Reservation records: "at g_1 ... g_n", one group per quota: "-" (no hold); token bucket
-- "amount,live,mark,after,chargedAt" (mark: the epoch once charged, the booking time while pending);
-- other meters "amount,mark".
local function splitGroup(group)
  local out = {}
  for field in string.gmatch(group, '[^,]+') do out[#out + 1] = field end
  return out
end
local function tbGroup(h)
  return fmt(h.amount) .. ',' .. (h.live and '1' or '0') .. ',' .. fmt(h.mark) .. ',' .. fmt(h.after) .. ',' .. fmt(h.chargedAt)
end
local function parseReservation(id, record)
  local tokens = {}
  for token in string.gmatch(record, '%S+') do tokens[#tokens + 1] = token end
  local r = { at = tonumber(tokens[1]), holds = {} }
  for i = 1, nq do
    local group = tokens[1 + i]
    if group ~= nil and group ~= '-' then
      local f = splitGroup(group)
      if Q[i].alg == 'token-bucket' then
        r.holds[i] = {
          entry = id, amount = tonumber(f[1]), live = f[2] == '1', mark = tonumber(f[3]),
          after = tonumber(f[4]), chargedAt = tonumber(f[5])
        }
      else
        r.holds[i] = { entry = id, amount = tonumber(f[1]), mark = tonumber(f[2]) }
      end
    end
  end
  return r
end

-- Token bucket (GCRA, epochs, pending future bookings) ------------------------------------------------------
local function tb_charge(q, amount, at)
  if q.tat <= at then
    q.epoch = q.epoch + 1
    q.tat = at
  end
  q.tat = q.tat + amount * q.interval
  q.charged = q.charged + amount
  q.lastChargeAt = math.max(q.lastChargeAt, at)
  return { amount = amount, live = true, mark = q.epoch, after = q.charged, chargedAt = at }
end
-- Folds the pending bookings whose time has come into tat, and records the charge in their reservations.
-- Run once per script, before anything reads or changes the quota: the same order as folding lazily.
local function tb_advance(q)
  local folded = 0
  while folded < #q.pending and q.pending[folded + 1].at <= now do
    folded = folded + 1
    local p = q.pending[folded]
    local h = tb_charge(q, p.amount, p.at)
    if string.sub(p.entry, -1) ~= '+' then
      local record = redis.call('HGET', K_RES, p.entry)
      if record then
        local tokens = {}
        for token in string.gmatch(record, '%S+') do tokens[#tokens + 1] = token end
        tokens[1 + q.index] = tbGroup(h)
        redis.call('HSET', K_RES, p.entry, table.concat(tokens, ' '))
      end
    end
  end
  if folded > 0 then
    local rest = {}
    for j = folded + 1, #q.pending do rest[#rest + 1] = q.pending[j] end
    q.pending = rest
  end
end
local function tb_projected(q)
  local tat = q.tat
  for j = 1, #q.pending do tat = math.max(tat, q.pending[j].at) + q.pending[j].amount * q.interval end
  return tat
end
local function tb_fits(q, amount, from)
  return math.max(from, tb_projected(q) + amount * q.interval - q.tol)
end
-- A booking whose time has come is charged at once; a later one waits in pending.
local function tb_book(q, amount, at, entry)
  if at <= now then return tb_charge(q, amount, at) end
  q.pending[#q.pending + 1] = { entry = entry, amount = amount, at = at }
  return { amount = amount, live = false, mark = at, after = 0, chargedAt = at }
end
local function tb_adjust(q, hold, amount)
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
  elseif delta > 0 then
    -- An excess is charged now, like a new booking.
    tb_charge(q, delta, now)
  elseif delta < 0 then
    if hold.mark == q.epoch then q.tat = math.max(now, q.tat + delta * q.interval) end
  end
  hold.amount = amount
end
local function tb_release(q, hold)
  if not hold.live then return tb_adjust(q, hold, 0) end
  -- Charges since the hold, all at its own instant, stack on it linearly: subtracting it is exact then.
  local later = q.charged - hold.after
  local rest = -math.huge
  if later > 0 and q.lastChargeAt > hold.chargedAt then
    rest = math.min(q.tat, q.lastChargeAt + later * q.interval)
  end
  q.tat = math.max(q.tat - hold.amount * q.interval, rest)
  hold.amount = 0
  hold.live = false
end
local function tb_tighten(q, reported)
  local current = math.max(0, q.tat - now) / q.interval
  if reported > current then tb_charge(q, reported - current, now) end
end
local function tb_used(q)
  return math.max(0, tb_projected(q) - now) / q.interval
end
local function tb_backlog(q, demand)
  return math.max(0, tb_projected(q) + demand * q.interval - q.tol - now)
end

-- Sliding window: a log in a sorted set, member "entry/amount", score = booking time ------------------------
local function amountOf(member)
  return tonumber(string.match(member, '/([^/]+)$'))
end
local function sw_prune(q)
  if q.prunedAt == now then return end
  q.prunedAt = now
  local horizon = fmt(now - q.w)
  local old = redis.call('ZRANGEBYSCORE', q.key, '-inf', horizon)
  if #old > 0 then
    for j = 1, #old do q.total = q.total - amountOf(old[j]) end
    redis.call('ZREMRANGEBYSCORE', q.key, '-inf', horizon)
  end
end
local function sw_fits(q, amount, from)
  sw_prune(q)
  local horizon = fmt(from - q.w)
  local inWindow = q.total
  local early = redis.call('ZRANGEBYSCORE', q.key, '-inf', horizon)
  for j = 1, #early do inWindow = inWindow - amountOf(early[j]) end
  if inWindow + amount <= q.cap then return from end
  local rest = redis.call('ZRANGEBYSCORE', q.key, '(' .. horizon, '+inf', 'WITHSCORES')
  for j = 1, #rest, 2 do
    inWindow = inWindow - amountOf(rest[j])
    if inWindow + amount <= q.cap then return math.max(from, tonumber(rest[j + 1]) + q.w) end
  end
  return math.huge
end
local function sw_book(q, amount, at, entry)
  redis.call('ZADD', q.key, fmt(at), entry .. '/' .. fmt(amount))
  q.total = q.total + amount
  return at
end
local function sw_adjust(q, hold, amount)
  sw_prune(q)
  local old = hold.entry .. '/' .. fmt(hold.amount)
  local score = redis.call('ZSCORE', q.key, old)
  if score then
    q.total = q.total + (amount - hold.amount)
    redis.call('ZREM', q.key, old)
    -- An entry of 0 stays in the log, as in the pure meter: tighten books after the last entry.
    redis.call('ZADD', q.key, score, hold.entry .. '/' .. fmt(amount))
  end
end
-- What others used is logged as one entry, no earlier than the last booking so the log stays in order.
local function sw_tighten(q, reported, entry)
  sw_prune(q)
  local current = 0
  local upToNow = redis.call('ZRANGEBYSCORE', q.key, '-inf', fmt(now))
  for j = 1, #upToNow do current = current + amountOf(upToNow[j]) end
  local last = now
  local tail = redis.call('ZRANGE', q.key, -1, -1, 'WITHSCORES')
  if #tail > 0 then last = tonumber(tail[2]) end
  if reported > current then sw_book(q, reported - current, math.max(now, last), entry) end
end
local function sw_used(q)
  sw_prune(q)
  return q.total
end
local function sw_backlog(q, demand)
  if demand <= 0 then return 0 end
  local full = math.ceil(demand / q.cap) - 1
  local last = demand - full * q.cap
  return sw_fits(q, last, now) - now + full * q.w
end

-- Fixed windows aligned to the epoch: a hash window index -> amount ----------------------------------------
local function fw_load(q)
  if q.win then return end
  q.win = {}
  q.dirty = {}
  local raw = redis.call('HGETALL', q.key)
  for j = 1, #raw, 2 do q.win[tonumber(raw[j])] = tonumber(raw[j + 1]) end
end
local function fw_index(q, t)
  return math.floor(t / q.w)
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
local function fw_fits(q, amount, from)
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
  return math.huge
end
local function fw_book(q, amount, at)
  fw_load(q)
  local index = fw_index(q, at)
  q.win[index] = (q.win[index] or 0) + amount
  q.dirty[index] = true
  return index
end
local function fw_adjust(q, hold, amount)
  fw_prune(q)
  if hold.mark >= fw_index(q, now) then
    q.win[hold.mark] = (q.win[hold.mark] or 0) + amount - hold.amount
    q.dirty[hold.mark] = true
  end
end
local function fw_tighten(q, reported)
  fw_prune(q)
  local index = fw_index(q, now)
  q.win[index] = math.max(q.win[index] or 0, reported)
  q.dirty[index] = true
end
local function fw_used(q)
  fw_prune(q)
  return q.win[fw_index(q, now)] or 0
end
local function fw_backlog(q, demand)
  fw_prune(q)
  local first = fw_index(q, now)
  local last = first
  for index in pairs(q.win) do
    if index > last then last = index end
  end
  local left = demand
  for index = first, last do
    local free = math.max(0, q.cap - (q.win[index] or 0))
    if left <= free then
      if index == first then return 0 end
      return index * q.w - now
    end
    left = left - free
  end
  return (last + math.ceil(left / q.cap)) * q.w - now
end

-- Dispatch ---------------------------------------------------------------------------------------------------
local function fits(q, amount, from)
  if q.alg == 'token-bucket' then return tb_fits(q, amount, from) end
  if q.alg == 'sliding-window' then return sw_fits(q, amount, from) end
  if q.alg == 'fixed-window' then return fw_fits(q, amount, from) end
  if q.inflight + amount <= q.cap then return from end
  return math.huge
end
-- Books and returns the hold's record group.
local function book(q, amount, at, entry)
  if q.alg == 'token-bucket' then return tbGroup(tb_book(q, amount, at, entry)) end
  if q.alg == 'sliding-window' then return fmt(amount) .. ',' .. fmt(sw_book(q, amount, at, entry)) end
  if q.alg == 'fixed-window' then return fmt(amount) .. ',' .. fmt(fw_book(q, amount, at)) end
  q.inflight = q.inflight + amount
  return fmt(amount) .. ',0'
end
local function release(q, hold)
  if q.alg == 'token-bucket' then return tb_release(q, hold) end
  if q.alg == 'sliding-window' then return sw_adjust(q, hold, 0) end
  if q.alg == 'fixed-window' then return fw_adjust(q, hold, 0) end
  q.inflight = q.inflight - hold.amount
end
local function adjust(q, hold, amount)
  if q.alg == 'token-bucket' then return tb_adjust(q, hold, amount) end
  if q.alg == 'sliding-window' then return sw_adjust(q, hold, amount) end
  if q.alg == 'fixed-window' then return fw_adjust(q, hold, amount) end
  -- A settled call is no longer in flight, whatever it used.
  return release(q, hold)
end
-- Raises the amount in use at now to at least what the provider reports (others share the key).
local function tighten(q, reported, entry)
  if q.alg == 'token-bucket' then return tb_tighten(q, reported) end
  if q.alg == 'sliding-window' then return sw_tighten(q, reported, entry) end
  if q.alg == 'fixed-window' then return fw_tighten(q, reported) end
  -- Providers report no calls in flight: nothing to learn.
end
local function used(q)
  if q.alg == 'token-bucket' then return tb_used(q) end
  if q.alg == 'sliding-window' then return sw_used(q) end
  if q.alg == 'fixed-window' then return fw_used(q) end
  return q.inflight
end
local function backlog(q, demand)
  if q.alg == 'token-bucket' then return tb_backlog(q, demand) end
  if q.alg == 'sliding-window' then return sw_backlog(q, demand) end
  if q.alg == 'fixed-window' then return fw_backlog(q, demand) end
  if q.inflight + demand <= q.cap then return 0 end
  return math.huge
end

-- Reservations -----------------------------------------------------------------------------------------------
-- Takes an open reservation out of the bucket; nil when it is not open.
local function takeReservation(id)
  local record = redis.call('HGET', K_RES, id)
  if not record then return nil end
  redis.call('HDEL', K_RES, id)
  redis.call('ZREM', K_EXP, id)
  return parseReservation(id, record)
end

-- Orphans: a reservation open past its expiry is settled with its charge kept. Its concurrency slot comes
-- back; what it booked on the rate quotas stays booked, since the call may well have reached the provider.
local function reclaim()
  local expired = redis.call('ZRANGEBYSCORE', K_EXP, '-inf', fmt(now))
  if #expired == 0 then return end
  for j = 1, #expired do
    local record = redis.call('HGET', K_RES, expired[j])
    if record then
      redis.call('HDEL', K_RES, expired[j])
      local r = parseReservation(expired[j], record)
      for i = 1, nq do
        if r.holds[i] and Q[i].alg == 'concurrency' then release(Q[i], r.holds[i]) end
      end
    end
  end
  redis.call('ZREMRANGEBYSCORE', K_EXP, '-inf', fmt(now))
end

-- Writes the state back and sets a TTL on every key: long enough for every booking to drain and every open
-- reservation to expire, after which the bucket is as good as new and may vanish.
local function save()
  local fields = {}
  if lastBooked > -math.huge then
    fields[#fields + 1] = 'lb'
    fields[#fields + 1] = fmt(lastBooked)
  end
  if blockedUntil > -math.huge then
    fields[#fields + 1] = 'bu'
    fields[#fields + 1] = fmt(blockedUntil)
  end
  local horizon = math.max(now + ttlMs, lastBooked + maxWindow, blockedUntil)
  for i = 1, nq do
    local q = Q[i]
    if q.alg == 'token-bucket' then
      local pending = {}
      for j = 1, #q.pending do
        pending[j] = q.pending[j].entry .. ',' .. fmt(q.pending[j].amount) .. ',' .. fmt(q.pending[j].at)
      end
      fields[#fields + 1] = q.p .. 't'
      fields[#fields + 1] = fmt(q.tat)
      fields[#fields + 1] = q.p .. 'e'
      fields[#fields + 1] = fmt(q.epoch)
      fields[#fields + 1] = q.p .. 'g'
      fields[#fields + 1] = fmt(q.charged)
      fields[#fields + 1] = q.p .. 'l'
      fields[#fields + 1] = fmt(q.lastChargeAt)
      fields[#fields + 1] = q.p .. 'p'
      fields[#fields + 1] = table.concat(pending, ';')
      local projected = tb_projected(q)
      if projected > horizon then horizon = projected end
    elseif q.alg == 'sliding-window' then
      fields[#fields + 1] = q.p .. 'n'
      fields[#fields + 1] = fmt(q.total)
    elseif q.alg == 'concurrency' then
      fields[#fields + 1] = q.p .. 'f'
      fields[#fields + 1] = fmt(q.inflight)
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
      if #set > 0 then redis.call('HSET', q.key, unpack(set)) end
      if #del > 0 then redis.call('HDEL', q.key, unpack(del)) end
    end
  end
  if #fields > 0 then redis.call('HSET', K_STATE, unpack(fields)) end
  local ttl = math.max(1000, math.ceil(horizon - now) + 1000)
  for j = 1, 4 do redis.call('PEXPIRE', KEYS[j], ttl) end
  -- Token bucket and concurrency quotas never create their key.
  for i = 1, nq do
    if Q[i].alg == 'sliding-window' or Q[i].alg == 'fixed-window' then redis.call('PEXPIRE', Q[i].key, ttl) end
  end
end

for i = 1, nq do
  if Q[i].alg == 'token-bucket' then tb_advance(Q[i]) end
end
`
