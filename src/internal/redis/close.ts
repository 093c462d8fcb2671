/**
 * Taking an open reservation out of the bucket, shared by settle and release.
 *
 * @internal
 */

/** Lua: `take(id)`, the open reservation's holds (see `holdsOf`), or nil when it is not open. */
export const take = String.raw`
local function take(id)
  local record = call('HGET', K_RES, id)
  if not record then return nil end
  call('HDEL', K_RES, id)
  openCount = max(0, openCount - 1)
  return holdsOf(id, record)
end
`
