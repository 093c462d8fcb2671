-- begin and finish: the start and the end of every call.

-- Starts a call: the clock, the configuration, the state and the waiting line (and the record of 'taken', the
-- id of a reservation the call closes, or the field 'tombstone' a reserve must not find: TOMBSTONE); then what
-- time alone changes: due pending bookings are charged, and expired reservations reclaimed. Returns an error reply when the configuration is unreadable.
local function begin(keys, args, taken, tombstone)
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
  LINE, LINE_DIRTY, WAKE = nil, false, false
  if taken then
    local got = call('HMGET', K_STATE, 'state', 'w', taken)
    G, LINE_RAW, TAKEN, TAKEN_RECORD = got[1], got[2], taken, got[3]
  elseif tombstone then
    local got = call('HMGET', K_STATE, 'state', 'w', tombstone)
    G, LINE_RAW, TAKEN, TAKEN_RECORD, TOMBSTONE = got[1], got[2], nil, false, got[3]
  else
    local got = call('HMGET', K_STATE, 'state', 'w')
    G, LINE_RAW, TAKEN, TAKEN_RECORD = got[1], got[2], nil, false
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
            local before = RECORD_BYTES + HOLD_BYTES * (i - 1)
            local group = pack(HOLD_FORMAT, 2, p.amount, q.epoch, q.charged, p.at)
            record = sub(record, 1, before) .. group .. sub(record, before + HOLD_BYTES + 1)
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
      if byte(ids[j], 1) == 120 then
        -- A tombstone ('x'): dropped, like an orphan, once reservationTtl has passed.
        local at = (tonumber(call('HGET', K_STATE, ids[j])) or 0) + 1 + ttlMs
        if at <= now then call('HDEL', K_STATE, ids[j]) elseif at < earliest then earliest = at end
      elseif expiry <= now then
        local record = call('HGET', K_STATE, ids[j])
        call('HDEL', K_STATE, ids[j])
        if ids[j] == TAKEN then TAKEN_RECORD = false end
        openCount = max(0, openCount - 1)
        WAKE = true
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
      v[n + 1], v[n + 2], v[n + 3], v[n + 4], v[n + 5], v[n + 6], v[n + 7] = q.since, q.owed, q.epoch, q.charged, q.lastChargeAt, #q.pending, q.w
      n = n + 7
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
  lineFinish()
  return result
end
