-- leave: a waiting caller gives up its place in the line (it was cancelled, its deadline passed, its limiter
-- closed).
--
-- args from OP: the place.
-- Reply, then the time (see core.lua): {'1'} left | {'0'} it had no place.
local function leave(keys, args)
  local failed = begin(keys, args)
  if failed then return failed end
  local index = LINE_RAW and lineIndex(args[OP])
  if not index then return finish({ '0', clock[1], clock[2] }) end
  lineRemove(index)
  return finish({ '1', clock[1], clock[2] })
end
