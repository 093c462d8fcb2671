-- Taking an open reservation out of the bucket, shared by settle and release.

-- take(id): the open reservation's holds (see holdsOf), or nil when it is not open. begin has read its record
-- with the state (the call named it as `taken`).
local function take(id)
  local record = TAKEN_RECORD
  if not record then return nil end
  TAKEN_RECORD = false
  call('HDEL', K_STATE, id)
  openCount = max(0, openCount - 1)
  return holdsOf(id, record)
end
