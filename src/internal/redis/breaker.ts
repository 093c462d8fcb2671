/**
 * A circuit breaker whose state lives in Redis, so that every process of the backend sees one circuit per key:
 * the failures of one process open it for all. Two scripts, one round trip each, on Redis's clock: `enter`
 * before a call (closed, the one probe of a half-open circuit, or open), `record` after it. The keys share the
 * bucket's hash tag (see `lua/layout.lua`; the scripts are in `lua/breaker/`). When Redis does not answer, the
 * breaker stands aside: calls are not refused for it.
 *
 * @internal
 */
import { createHash } from "node:crypto"
import { Effect, Either, Exit } from "effect"
import type { BreakerState, CircuitBreakerService } from "../../CircuitBreaker.js"
import { CircuitOpen } from "../../Errors.js"
import { bucketTag } from "./keys.js"
import { LuaSource, remember } from "./luaSource.js"
import type { RedisClient, RedisStore } from "./store.js"

const isStrings = (reply: unknown): reply is ReadonlyArray<string> =>
  Array.isArray(reply) && reply.every((item) => typeof item === "string")

/** A script of the breaker: `breaker/clock.lua`, then the file of what it does. */
const scriptOf = (file: string) => {
  const source = LuaSource.of(["breaker/clock.lua", `breaker/${file}`])
  const script = { lua: source.text, sha: createHash("sha1").update(source.text).digest("hex") }
  remember(script.sha, source)
  return script
}
const scripts = { enter: scriptOf("enter.lua"), record: scriptOf("record.lua"), state: scriptOf("state.lua") }

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
