/**
 * The status script: the bucket's state at `now` and how long a charge of `demand` would wait behind every
 * booking. Port of `BucketState.status`.
 *
 * ARGV from `OP`: one demand per quota.
 * Reply, then the time (see the prelude): `{open, booked, waitMs, used_1, ..., used_n}`.
 *
 * @internal
 */
import { epilogue, prelude, queries } from "./prelude.js"

/** The status script's Lua text: `client.eval(statusLua, keys.length, ...keys, config, ...args)`. */
export const statusLua = "local FITS, BOOK, CLOSE, RECORDS = true, true, false, true\n" + prelude + queries + String.raw`
local demand = {}
for i = 1, nq do demand[i] = tonumber(ARGV[OP + i - 1]) end
local records = call('HVALS', K_RES)
local booked = 0
for j = 1, #records do
  if groupsIn(records[j]) ~= nil and unpackStruct('<d', records[j]) > now then booked = booked + 1 end
end
local wait = max(0, lastBooked - now, blockedUntil - now)
for i = 1, nq do
  if demand[i] > 0 then wait = max(wait, backlog(Q[i], demand[i])) end
end
local result = { tostring(#records), tostring(booked), fmt(wait) }
for i = 1, nq do result[#result + 1] = fmt(used(Q[i])) end
result[#result + 1] = clock[1]
result[#result + 1] = clock[2]
` + epilogue
