-- The meters: per algorithm a table of methods (fits, book, adjust, release; tighten, used, backlog for observe
-- and status), each taking the quota's table first. A quota's table names its meter (q.m). A port of
-- src/internal/meters.ts; keep them in step.

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
