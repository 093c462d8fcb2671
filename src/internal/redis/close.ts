/**
 * Taking an open reservation out of the bucket, shared by settle and release: `r` is its record, nil when it is
 * not open.
 *
 * @internal
 */
export const takeReservation = String.raw`
local id = ARGV[OP]
local r = nil
do
  local record = call('HGET', K_RES, id)
  if record then
    call('HDEL', K_RES, id)
    openCount = max(0, openCount - 1)
    r = parseReservation(id, record)
  end
end
`
