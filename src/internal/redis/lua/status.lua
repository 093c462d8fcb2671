-- status: the bucket's state at now and how long a charge of `demand` would wait behind every booking. A port
-- of BucketState.status.
--
-- args from OP: one demand per quota.
-- Reply, then the time (see core.lua): {open, booked, waitMs, used_1, ..., used_n}.
local function status(keys, args)
  local failed = begin(keys, args)
  if failed then return failed end
  local fields = call('HGETALL', K_STATE)
  local open, booked = 0, 0
  for j = 1, #fields, 2 do
    if isId(fields[j]) then
      open = open + 1
      local record = fields[j + 1]
      if groupsIn(record) ~= nil and unpackStruct(RECORD_FORMAT, record) > now then booked = booked + 1 end
    end
  end
  local wait = max(0, lastBooked - now, blockedUntil - now)
  for i = 1, nq do
    local demand = tonumber(args[OP + i - 1])
    if demand > 0 then wait = max(wait, Q[i].m.backlog(Q[i], demand)) end
  end
  local result = { tostring(open), tostring(booked), fmt(wait) }
  for i = 1, nq do result[#result + 1] = fmt(Q[i].m.used(Q[i])) end
  result[#result + 1] = clock[1]
  result[#result + 1] = clock[2]
  return finish(result)
end
