/**
 * A circuit breaker whose state lives in Redis, so that every process of the backend sees one circuit per key:
 * the failures of one process open it for all. Two scripts, one round trip each, on Redis's clock: `enter`
 * before a call (closed, the one probe of a half-open circuit, or open), `record` after it. The keys share the
 * bucket's hash tag. When Redis does not answer, the breaker stands aside: calls are not refused for it.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { Effect, Either, Exit } from "effect"
import type { BreakerState, CircuitBreakerService } from "../../CircuitBreaker.js"
import { CircuitOpen } from "../../Errors.js"
import { bucketTag } from "./keys.js"
import type { RedisClient, RedisStore } from "./store.js"

const clockLua = String.raw`
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local windowMs, openMs = tonumber(ARGV[1]), tonumber(ARGV[2])
-- The circuit: 'o' open until (absent: never opened since it last closed), 'p' a probe's lease.
local circuit = redis.call('HMGET', KEYS[1], 'o', 'p')
local openUntil, probing = tonumber(circuit[1]), tonumber(circuit[2])
local keep = string.format('%d', math.ceil(2 * openMs + windowMs))
`

/** Before a call: `{'C'}` closed, `{'P'}` this call is the probe, `{'O', retryAfterMs}` open. */
const enterLua = clockLua + String.raw`
if openUntil and now < openUntil then return { 'O', string.format('%.3f', openUntil - now) } end
if openUntil then
  if probing and probing > now then return { 'O', '0' } end
  redis.call('HSET', KEYS[1], 'p', string.format('%.3f', now + openMs))
  redis.call('PEXPIRE', KEYS[1], keep)
  return { 'P' }
end
return { 'C' }
`

/** After a call: ARGV threshold, probe (1/0), failed (1/0), a unique member for the failure log. */
const recordLua = clockLua + String.raw`
local threshold, probe, failed = tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5] == '1'
if probe then redis.call('HDEL', KEYS[1], 'p') end
if not failed then
  if probe then redis.call('DEL', KEYS[1], KEYS[2]) end
  return 'C'
end
if probe then
  redis.call('HSET', KEYS[1], 'o', string.format('%.3f', now + openMs))
  redis.call('PEXPIRE', KEYS[1], keep)
  return 'O'
end
redis.call('ZADD', KEYS[2], string.format('%.3f', now), ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('(%.3f', now - windowMs))
if redis.call('ZCARD', KEYS[2]) >= threshold then
  redis.call('HSET', KEYS[1], 'o', string.format('%.3f', now + openMs))
  redis.call('HDEL', KEYS[1], 'p')
  redis.call('PEXPIRE', KEYS[1], keep)
  redis.call('DEL', KEYS[2])
  return 'O'
end
redis.call('PEXPIRE', KEYS[2], keep)
return 'C'
`

/** Reads the circuit without changing it: `{'C', failures}`, `{'H'}` half-open, `{'O', until}`. */
const stateLua = clockLua + String.raw`
if openUntil and now < openUntil then return { 'O', string.format('%.3f', openUntil) } end
if openUntil then return { 'H' } end
return { 'C', tostring(redis.call('ZCOUNT', KEYS[2], string.format('(%.3f', now - windowMs), '+inf')) }
`

const isStrings = (reply: unknown): reply is ReadonlyArray<string> =>
  Array.isArray(reply) && reply.every((item) => typeof item === "string")

const scriptOf = (lua: string) => ({ lua, sha: createHash("sha1").update(lua).digest("hex") })
const scripts = { enter: scriptOf(enterLua), record: scriptOf(recordLua), state: scriptOf(stateLua) }

export interface BreakerSettings {
  readonly failureThreshold: number
  readonly failureWindow: number
  readonly openFor: number
}

/**
 * The shared breaker over a client, with the same options as the in-process one (`CircuitBreaker.make`).
 *
 * @example
 * ```ts
 * const breaker = makeBreaker(client, store, "quotaflow", { failureThreshold: 5, failureWindow: 30_000, openFor: 30_000 })
 * ```
 */
export const makeBreaker = (client: RedisClient, store: RedisStore, namespace: string, settings: BreakerSettings): CircuitBreakerService => {
  const keysOf = (key: string) => {
    const tag = bucketTag(namespace, key)
    return [`${tag}:b`, `${tag}:bf`]
  }
  const args = [String(settings.failureWindow), String(settings.openFor)]
  const member = `${process.pid}-${Math.random().toString(36).slice(2)}-`
  let failures = 0

  /** One script call, bounded by the store's command timeout; a script Redis lost is sent whole. */
  const run = (script: { readonly lua: string; readonly sha: string }, key: string, argv: ReadonlyArray<string>) =>
    store.command(() => {
      const keys = keysOf(key)
      return client.evalsha(script.sha, keys.length, ...keys, ...argv).catch((error: unknown) => {
        if (!(error instanceof Error && error.message.startsWith("NOSCRIPT"))) throw error
        return client.eval(script.lua, keys.length, ...keys, ...argv)
      })
    })

  const counts = <A, E>(exit: Exit.Exit<A, E>): boolean => Exit.isFailure(exit) && !Exit.isInterrupted(exit)

  const guard = <A, E, R>(
    key: string,
    effect: Effect.Effect<A, E, R>,
    isFailure: (exit: Exit.Exit<A, E>) => boolean = counts
  ): Effect.Effect<A, E | CircuitOpen, R> =>
    Effect.flatMap(Effect.either(run(scripts.enter, key, args)), (entered): Effect.Effect<A, E | CircuitOpen, R> => {
      // Redis away: the breaker stands aside.
      if (Either.isLeft(entered) || !isStrings(entered.right)) return effect
      const [verdict, retryAfter] = entered.right
      if (verdict === "O") return Effect.fail(new CircuitOpen({ key, retryAfterMs: Number(retryAfter) }))
      const probe = verdict === "P" ? "1" : "0"
      return Effect.onExit(effect, (exit) =>
        Effect.ignore(
          run(scripts.record, key, [...args, String(settings.failureThreshold), probe, isFailure(exit) ? "1" : "0", `${member}${++failures}`])
        ))
    })

  const state = (key: string): Effect.Effect<BreakerState> =>
    Effect.map(Effect.either(run(scripts.state, key, args)), (answer): BreakerState => {
      const reply = Either.isRight(answer) && isStrings(answer.right) ? answer.right : ["C", "0"]
      if (reply[0] === "O") return { _tag: "Open", until: Number(reply[1]) }
      if (reply[0] === "H") return { _tag: "HalfOpen" }
      return { _tag: "Closed", failures: Number(reply[1] ?? 0) }
    })

  return { guard, state }
}
