/**
 * The observe script: learns from the provider. Blocks the bucket's admissions until `now + retryAfterMs`
 * (a 429's retry hint) and raises each quota's usage to what the provider reports as used. Port of
 * `BucketState.observe`.
 *
 * ARGV from `OP`: retryAfterMs (`-inf` for none), then one reported usage per quota (`""` = not reported).
 * Reply: the time (see the prelude).
 *
 * @internal
 */
import { epilogue, prelude, queries } from "./prelude.js"

/** The observe script's Lua text: `client.eval(observeLua, keys.length, ...keys, config, ...args)`. */
export const observeLua = "local FITS, BOOK, CLOSE, RECORDS = true, true, false, false\n" + prelude + queries + String.raw`
local retryAfter = num(ARGV[OP])
blockedUntil = max(blockedUntil, now + retryAfter)
local entry = nil
for i = 1, nq do
  local s = ARGV[OP + i]
  local reported = nil
  if s ~= nil and s ~= '' then reported = num(s) end
  if reported ~= nil and reported == reported and reported < INF and reported >= 0 then
    if Q[i].alg == SW and entry == nil then
      seq = seq + 1
      entry = 'o' .. seq
    end
    tighten(Q[i], reported, entry)
  end
end
local result = { clock[1], clock[2] }
` + epilogue
