/**
 * The observe script: learns from the provider. Blocks the bucket's admissions until `now + retryAfterMs`
 * (a 429's retry hint) and raises each quota's usage to what the provider reports as used. Port of
 * `BucketState.observe`.
 *
 * ARGV from `OP`: retryAfterMs (`-inf` for none), then one reported usage per quota (`""` = not reported).
 * Reply: `{now}`.
 *
 * @internal
 */
import { prelude } from "./prelude.js"

/** The observe script's Lua text (the prelude and the operation): `client.eval(observeLua, keys.length, ...keys, ...argv)`. */
export const observeLua = prelude + String.raw`
local retryAfter = num(ARGV[OP])
reclaim()
blockedUntil = math.max(blockedUntil, now + retryAfter)
local entry = nil
for i = 1, nq do
  local s = ARGV[OP + i]
  local reported = nil
  if s ~= nil and s ~= '' then reported = num(s) end
  if reported ~= nil and reported == reported and reported < math.huge and reported >= 0 then
    if Q[i].alg == 'sliding-window' and entry == nil then entry = 'o' .. redis.call('INCR', K_SEQ) end
    tighten(Q[i], reported, entry)
  end
end
save()
return { fmt(now) }
`
