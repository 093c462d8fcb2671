/**
 * The release script: takes a reservation back as if it had never been made. Port of `BucketState.release`.
 *
 * ARGV from `OP`: id. Reply: `{"1", now}` released | `{"0", now}` not open.
 *
 * @internal
 */
import { prelude } from "./prelude.js"

/** The release script's Lua text (the prelude and the operation): `client.eval(releaseLua, keys.length, ...keys, ...argv)`. */
export const releaseLua = prelude + String.raw`
local id = ARGV[OP]
reclaim()
local r = takeReservation(id)
if not r then
  save()
  return { '0', fmt(now) }
end
for i = 1, nq do
  if r.holds[i] ~= nil then release(Q[i], r.holds[i]) end
end
save()
return { '1', fmt(now) }
`
