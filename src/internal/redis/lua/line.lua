-- The bucket's waiting line, shared by every process (the field 'w': layout.lua). A caller that cannot be
-- admitted takes a place at its end, and the oldest place goes first, whichever process it belongs to; a later
-- caller goes ahead only where it cannot delay the places before it (reserve.lua). A place lasts until its
-- caller is admitted or leaves (leave.lua), or until its expiry passes without its process asking again (the
-- process died). Each process only ever presents its first waiting caller of a bucket (its scheduler books
-- its head), so the line holds about one place per process.
--
-- Whenever capacity may have come back for the line (a settle, a release, an orphan reclaimed, the oldest
-- place admitted or gone), the call publishes on the bucket's channel, '{ns:bucket}:wake', so that processes
-- with a place ask again at once instead of at their next poll.

-- The line as begin read it (false: there is none), parsed on first use into LINE; LINE_DIRTY once it changed;
-- WAKE once this call may have made room for the line.
local LINE_RAW, LINE, LINE_DIRTY, WAKE

-- The places, oldest first, each { place, arrival, expiry, amounts }; expired places are dropped.
local function lineOf()
  if LINE then return LINE end
  LINE = {}
  if LINE_RAW then
    for entry in gmatch(LINE_RAW, '[^;]+') do
      local place, arrival, expiry, rest = match(entry, '^([^,]+),([^,]+),([^,]+)(.*)$')
      expiry = tonumber(expiry)
      if expiry and expiry > now then
        local amounts = {}
        for amount in gmatch(rest, '[^,]+') do amounts[#amounts + 1] = tonumber(amount) end
        LINE[#LINE + 1] = { place = place, arrival = tonumber(arrival), expiry = expiry, amounts = amounts }
      else
        LINE_DIRTY = true
        WAKE = true
      end
    end
  end
  return LINE
end

-- The index of `place` in the line, or nil.
local function lineIndex(place)
  local line = lineOf()
  for j = 1, #line do
    if line[j].place == place then return j end
  end
  return nil
end

-- Takes the place at `index` out of the line; the next one may fit now if it was the oldest.
local function lineRemove(index)
  table.remove(LINE, index)
  LINE_DIRTY = true
  if index == 1 then WAKE = true end
end

-- Keeps `place` in the line (at `index`, or at its end when nil) with `amounts`, until ttlMs from now.
local function lineKeep(place, index, amounts, placeTtlMs)
  local line = lineOf()
  local kept = {}
  for i = 1, nq do kept[i] = amounts[i] end
  if index then
    line[index].expiry, line[index].amounts = now + placeTtlMs, kept
  else
    line[#line + 1] = { place = place, arrival = now, expiry = now + placeTtlMs, amounts = kept }
  end
  LINE_DIRTY = true
end

-- Whether booking `amounts` now can delay any of the first `ahead` places: it can on every quota both charge.
local function delaysLine(ahead, amounts)
  for j = 1, ahead do
    local waiting = LINE[j].amounts
    for i = 1, nq do
      if amounts[i] > 0 and (waiting[i] or 0) > 0 then return true end
    end
  end
  return false
end

-- Whether anyone waits in the line after this call.
local function lineWaits()
  if LINE then return #LINE > 0 end
  return LINE_RAW ~= false and LINE_RAW ~= nil
end

-- Writes the line back if it changed, and publishes a wake-up if room may have come for it (see finish).
local function lineFinish()
  if LINE_DIRTY then
    if #LINE == 0 then
      call('HDEL', K_STATE, 'w')
    else
      local entries = {}
      for j = 1, #LINE do
        local p = LINE[j]
        local amounts = {}
        for i = 1, #p.amounts do amounts[i] = fmt(p.amounts[i]) end
        entries[j] = p.place .. ',' .. fmt(p.arrival) .. ',' .. fmt(p.expiry) .. ',' .. concat(amounts, ',')
      end
      call('HSET', K_STATE, 'w', concat(entries, ';'))
    end
  end
  -- pcall: a user whose ACL refuses PUBLISH still books; its waiters only learn of room at their next poll.
  if WAKE and lineWaits() then redis.pcall('PUBLISH', sub(K_STATE, 1, -2) .. 'wake', '1') end
end
