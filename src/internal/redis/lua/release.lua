-- release: takes a reservation back as if it had never been made. A port of BucketState.release.
--
-- args from OP: the id; or "~" and the client's token, for a reserve whose answer was lost: the reservation of
-- that token is released if it was booked, and a tombstone left if not, so that the reserve, should it arrive
-- later, books nothing.
-- Reply, then the time (see core.lua): {'1'} released | {'0'} not open.
local function release(keys, args)
  local id = args[OP]
  local token = string.sub(id, 1, 1) == '~' and tokenOf(string.sub(id, 2)) or nil
  if token == nil then
    local failed = begin(keys, args, id)
    if failed then return failed end
  else
    local failed = begin(keys, args)
    if failed then return failed end
    -- Rare (after a fault): the reservation's id is found by its token among the fields.
    id = nil
    local fields = call('HKEYS', K_STATE)
    local suffix = '-' .. token
    for j = 1, #fields do
      if isId(fields[j]) and sub(fields[j], -#suffix) == suffix then id = fields[j] end
    end
    if id == nil then
      call('HSET', K_STATE, 'x' .. token, format('%d', floor(now)))
      local expiry = floor(now) + 1 + ttlMs
      if expiry < earliestExpiry then earliestExpiry = expiry end
      return finish({ '0', clock[1], clock[2] })
    end
    TAKEN, TAKEN_RECORD = id, call('HGET', K_STATE, id)
  end
  local holds = take(id)
  if not holds then return finish({ '0', clock[1], clock[2] }) end
  WAKE = true
  for i = 1, nq do
    if holds[i] ~= nil then Q[i].m.release(Q[i], holds[i]) end
  end
  return finish({ '1', clock[1], clock[2] })
end
