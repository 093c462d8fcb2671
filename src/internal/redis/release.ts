/**
 * The release script: takes a reservation back as if it had never been made. Port of `BucketState.release`.
 *
 * ARGV from `OP`: id. Reply, then the time (see the prelude): `{"1"}` released | `{"0"}` not open.
 *
 * @internal
 */
import { takeReservation } from "./close.js"
import { epilogue, prelude } from "./prelude.js"

/** The release script's Lua text: `client.eval(releaseLua, keys.length, ...keys, config, ...args)`. */
export const releaseLua = "local FITS, BOOK, CLOSE, RECORDS = false, false, true, true\n" + prelude + takeReservation + String.raw`
local result
if not r then
  result = { '0', clock[1], clock[2] }
else
  for i = 1, nq do
    if r.holds[i] ~= nil then release(Q[i], r.holds[i]) end
  end
  result = { '1', clock[1], clock[2] }
end
` + epilogue
