import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Layer, TestClock } from "effect"
import { MemoryBackendLive, RateLimited } from "../src/index.js"
import type { LimiterConfig, ProviderResponse } from "../src/index.js"

interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body?: unknown
}

const config: LimiterConfig = {
  mode: "basic",
  provider: "openai",
  retry: { maxAttempts: 3, baseDelay: "100 millis" },
  basic: { maxModels: 2, idleAfter: "1 minute" }
}

const run = <A, E>(effect: Effect.Effect<A, E, RateLimited.RateLimited>) =>
  Effect.provide(effect, RateLimited.layer(config).pipe(Layer.provide(MemoryBackendLive)))

const response = <E>(exit: Exit.Exit<Answer, E>): ProviderResponse | undefined => (Exit.isSuccess(exit) ? exit.value : undefined)

const tooMany = (seconds: number): Answer => ({
  status: 429,
  headers: { "retry-after": String(seconds) },
  body: { error: { message: "Rate limit reached for requests", code: "rate_limit_exceeded" } }
})

/** Answers 429 the first time, then 200; records when each attempt started. */
const flaky = (first: Answer) => {
  const starts: Array<number> = []
  const call = Effect.map(Clock.currentTimeMillis, (now): Answer => {
    starts.push(now)
    return starts.length === 1 ? first : { status: 200, headers: {} }
  })
  return { call, starts }
}

const startedAt = (model: string) => RateLimited.submit({ bucket: model }, Clock.currentTimeMillis)

/** Blocks `model` for an hour by answering its first call with a 429. */
const blockForAnHour = (model: string) =>
  Effect.gen(function*() {
    const provider = flaky(tooMany(3600))
    yield* Effect.fork(RateLimited.submit({ bucket: model }, provider.call, { response }))
    yield* TestClock.adjust(1)
  })

describe("basic mode", () => {
  it.effect("any model runs at once, with no quotas configured", () =>
    run(Effect.gen(function*() {
      assert.deepStrictEqual(yield* Effect.all([startedAt("gpt-4o"), startedAt("gpt-4o"), startedAt("o3")]), [0, 0, 0])
    })))

  it.effect("a 429 blocks its model for the retry hint, for every caller, and is retried; other models go on", () =>
    run(Effect.gen(function*() {
      const provider = flaky(tooMany(5))
      const first = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o" }, provider.call, { response }))
      yield* TestClock.adjust(1)
      const same = yield* Effect.fork(startedAt("gpt-4o"))
      assert.strictEqual(yield* startedAt("o3"), 1)
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual((yield* Fiber.join(first)).status, 200)
      assert.isAtLeast(provider.starts[1], 5_000)
      assert.isAtLeast(yield* Fiber.join(same), 5_000)
    })))

  it.effect("a limit the headers report exhausted blocks the model until its reset", () =>
    run(Effect.gen(function*() {
      const exhausted: Answer = { status: 200, headers: { "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s" } }
      yield* RateLimited.submit({ bucket: "gpt-4o" }, Effect.succeed(exhausted), { response })
      const next = yield* Effect.fork(startedAt("gpt-4o"))
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* Fiber.join(next), 2_000)
    })))

  it.effect("at most maxModels models are tracked: the least recently used one is forgotten", () =>
    run(Effect.gen(function*() {
      yield* blockForAnHour("a")
      yield* startedAt("b")
      yield* startedAt("c") // a third model: "a", used least recently, is dropped with its block
      const now = yield* Clock.currentTimeMillis
      assert.strictEqual(yield* startedAt("a"), now)
    })))

  it.effect("a model idle for idleAfter is dropped", () =>
    run(Effect.gen(function*() {
      yield* blockForAnHour("a")
      yield* TestClock.adjust("3 minutes")
      const now = yield* Clock.currentTimeMillis
      assert.strictEqual(yield* startedAt("a"), now) // its state went with it
    })))
})
