-- release: takes a reservation back as if it had never been made. A port of BucketState.release.
--
-- args from OP: id. Reply, then the time (see core.lua): {'1'} released | {'0'} not open.
local function release(keys, args)
  local failed = begin(keys, args, args[OP])
  if failed then return failed end
  local holds = take(args[OP])
  if not holds then return finish({ '0', clock[1], clock[2] }) end
  for i = 1, nq do
    if holds[i] ~= nil then Q[i].m.release(Q[i], holds[i]) end
  end
  return finish({ '1', clock[1], clock[2] })
end
