-- A circuit breaker whose state lives in Redis (breaker.ts; its keys in layout.lua). Each of its scripts is this
-- file followed by one of enter.lua, record.lua, state.lua: the clock, the arguments, and the circuit as read.
-- ARGV: failureWindowMs, openForMs, then the script's own.
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local windowMs, openMs = tonumber(ARGV[1]), tonumber(ARGV[2])
-- The circuit: 'o' open until (absent: never opened since it last closed), 'p' a probe's lease.
local circuit = redis.call('HMGET', KEYS[1], 'o', 'p')
local openUntil, probing = tonumber(circuit[1]), tonumber(circuit[2])
local keep = string.format('%d', math.ceil(2 * openMs + windowMs))
