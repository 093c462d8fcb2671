/**
 * The status script: the bucket's state at `now` and how long a charge of `demand` would wait behind every
 * booking. Port of `BucketState.status`.
 *
 * ARGV from `OP`: one demand per quota.
 * Reply: `{now, open, booked, waitMs, used_1, ..., used_n}`.
 *
 * @internal
 */
import { prelude } from "./prelude.js"

/** The status script's Lua text (the prelude and the operation): `client.eval(statusLua, keys.length, ...keys, ...argv)`. */
export const statusLua = prelude + String.raw`
local demand = {}
for i = 1, nq do demand[i] = tonumber(ARGV[OP + i - 1]) end
reclaim()
local records = redis.call('HVALS', K_RES)
local booked = 0
for j = 1, #records do
  if tonumber(string.match(records[j], '^%S+')) > now then booked = booked + 1 end
end
local wait = math.max(0, lastBooked - now, blockedUntil - now)
for i = 1, nq do
  if demand[i] > 0 then wait = math.max(wait, backlog(Q[i], demand[i])) end
end
local out = { fmt(now), tostring(#records), tostring(booked), fmt(wait) }
for i = 1, nq do out[#out + 1] = fmt(used(Q[i])) end
save()
return out
`
