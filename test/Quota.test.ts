import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Either, Fiber, Layer, TestClock } from "effect"
import { MemoryBackendLive, Provider, Quota, RateLimited } from "../src/index.js"
import type { LimiterConfig, QuotaInput } from "../src/index.js"

const issuesOf = (config: unknown) =>
  Effect.runSync(Effect.flip(Quota.decodeConfig(config))).issues

describe("Quota.decodeConfig", () => {
  it("names every bad field with its path", () => {
    assert.deepStrictEqual(
      issuesOf({
        buckets: {
          "gpt-4o": {
            quotas: [
              { metric: "requests", limit: 500, window: "1 minute" },
              { metric: "tokens", limit: -5, window: 0, algorithm: "leaky" }
            ],
            safetyRatio: 1.5
          }
        }
      }),
      [
        "buckets.gpt-4o.quotas[1].limit: expected a positive integer, got -5",
        `buckets.gpt-4o.quotas[1].window: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got 0`,
        `buckets.gpt-4o.quotas[1].algorithm: expected one of "token-bucket", "sliding-window", "fixed-window", "concurrency", got "leaky"`,
        "buckets.gpt-4o.safetyRatio: expected a number in (0, 1], got 1.5"
      ]
    )
  })

  it("rejects fractional and non-finite limits, missing windows, empty quota lists and unknown fields", () => {
    assert.deepStrictEqual(issuesOf({ buckets: { a: { quotas: [{ metric: "tokens", limit: 1.5, window: 1000 }] } } }), [
      "buckets.a.quotas[0].limit: expected a positive integer, got 1.5"
    ])
    assert.deepStrictEqual(issuesOf({ buckets: { a: { quotas: [{ metric: "tokens", limit: NaN, window: 1000 }] } } }), [
      "buckets.a.quotas[0].limit: expected a positive integer, got NaN"
    ])
    assert.deepStrictEqual(issuesOf({ buckets: { a: { quotas: [{ metric: "tokens", limit: 10 }] } } }), [
      `buckets.a.quotas[0].window: required for the "token-bucket" algorithm`
    ])
    assert.strictEqual(issuesOf({ buckets: { a: { quotas: [] } } }).length, 1)
    assert.include(issuesOf({ buckets: { a: { quotas: [{ metric: "x", limit: 1, window: 1, colour: "red" }] } } })[0], "colour")
  })

  it("accepts durations, milliseconds and defaults", () => {
    const buckets = Effect.runSync(Quota.decodeConfig({
      buckets: { a: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }, { metric: "slots", limit: 4, algorithm: "concurrency" }] } }
    }))
    const a = buckets.get("a")
    assert.deepStrictEqual(a?.quotas[0], { metric: "requests", limit: 60, windowMs: 60_000, algorithm: "token-bucket", refunds: true })
    assert.strictEqual(a?.safetyRatio, 1)
    assert.strictEqual(a?.burstMultiplier, 1)
    assert.strictEqual(a?.skew, 150)
  })

  it("keeps 150 ms for network jitter by default, at most a tenth of the shortest rate window", () => {
    const skewOf = (quotas: ReadonlyArray<QuotaInput>, skew?: string | number) =>
      Effect.runSync(Quota.decodeConfig({ buckets: { a: { quotas, ...(skew === undefined ? {} : { skew }) } } })).get("a")?.skew
    assert.strictEqual(skewOf([{ metric: "requests", limit: 5, window: "1 second" }, { metric: "tokens", limit: 9, window: "1 minute" }]), 100)
    assert.strictEqual(skewOf([{ metric: "requests", limit: 5, window: 900, algorithm: "sliding-window" }]), 90)
    assert.strictEqual(skewOf([{ metric: "requests", limit: 5, algorithm: "concurrency" }]), 150)
    assert.strictEqual(skewOf([{ metric: "requests", limit: 5, window: "1 second" }], 0), 0)
    assert.strictEqual(skewOf([{ metric: "requests", limit: 5, window: "1 second" }], "400 millis"), 400)
  })

  it("charges requests 1 by default and 0 for metrics left out", () => {
    const bucket = Effect.runSync(Quota.decodeConfig({
      buckets: { a: { quotas: [{ metric: "requests", limit: 60, window: 1000 }, { metric: "tokens", limit: 600, window: 1000 }] } }
    })).get("a")
    assert.isDefined(bucket)
    if (bucket === undefined) return
    assert.deepStrictEqual(Quota.chargeOf(bucket, undefined), Either.right([1, 0]))
    assert.deepStrictEqual(Quota.chargeOf(bucket, { requests: 0, tokens: 5 }), Either.right([0, 5]))
    assert.deepStrictEqual(Quota.actualOf(bucket, { tokens: 3 }), Either.right([undefined, 3]))
  })
})

describe("Quota.decodeSettings: the provider", () => {
  const quotas: ReadonlyArray<QuotaInput> = [
    { metric: "requests", limit: 60, window: "1 minute" },
    { metric: "tokens", limit: 30_000, window: "1 minute" },
    { metric: "input_tokens", limit: 30_000, window: "1 minute" },
    { metric: "tokens", limit: 900_000, window: "1 day", algorithm: "fixed-window", refunds: true },
    { metric: "dollars", limit: 100, window: "1 day" }
  ]
  const refundsOf = (provider?: unknown) =>
    Effect.runSync(Quota.decodeSettings({ ...(provider === undefined ? {} : { provider }), buckets: { chat: { quotas } } }))
      .buckets.get("chat")?.quotas.map((quota) => quota.refunds)

  it("a quota without refunds follows the provider's charging rule on the metrics it charges; refunds given always win", () => {
    // OpenAI keeps what it charged on requests and tokens; input_tokens and dollars are not its metrics.
    assert.deepStrictEqual(refundsOf("openai"), [false, false, true, true, true])
    // Anthropic gives unused output back, on requests, input_tokens and output_tokens.
    assert.deepStrictEqual(refundsOf("anthropic"), [true, true, true, true, true])
    assert.deepStrictEqual(refundsOf(), [true, true, true, true, true])
    assert.deepStrictEqual(refundsOf(Provider.make({ name: "gateway" })), [false, false, true, true, true])
    assert.deepStrictEqual(refundsOf(Provider.make({ name: "gateway", charging: { refunds: true } })), [true, true, true, true, true])
  })

  it.effect("with provider openai, a call settled below its charge keeps the charge", () =>
    Effect.gen(function*() {
      yield* RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 800 } }, Effect.void, { actualUsage: () => ({ tokens: 100 }) })
      assert.strictEqual((yield* RateLimited.status("gpt-4o")).quotas[1].used, 800)
    }).pipe(
      Effect.provide(
        RateLimited.layer({ provider: "openai", buckets: { "gpt-4o": { quotas: quotas.slice(0, 2) } } }).pipe(Layer.provide(MemoryBackendLive))
      )
    ))

  it("resolves a name to the registry's provider, and takes a provider object as it is", () => {
    const named = Effect.runSync(Quota.decodeSettings({ provider: "anthropic" }))
    assert.strictEqual(named.provider, Provider.providers.anthropic)
    const own = Provider.make({ name: "gateway" })
    assert.strictEqual(Effect.runSync(Quota.decodeSettings({ provider: own })).provider, own)
    assert.isUndefined(Effect.runSync(Quota.decodeSettings({})).provider)
  })

  it("names what a provider object lacks, and lists the known names for a bad name", () => {
    const { parseHeaders: _, ...noHeaders } = Provider.make({ name: "gateway" })
    assert.deepStrictEqual(issuesOf({ provider: { ...noHeaders, charging: { metrics: ["tokens"], refunds: "no", rule: "" } } }), [
      "provider: not a Provider: missing or invalid charging.refunds (a boolean), parseHeaders (a function) (Provider.make fills in what is left out)"
    ])
    assert.deepStrictEqual(issuesOf({ provider: { name: "" } }), [
      "provider: not a Provider: missing or invalid name (a non-empty string), charging (an object), chargeOf (a function), usageOf (a function), " +
      "streamUsage (a function), parseHeaders (a function), retryAfter (a function), family (a function), quotas (a function) " +
      "(Provider.make fills in what is left out)"
    ])
    assert.deepStrictEqual(issuesOf({ provider: "openia" }), [
      `provider: expected a known provider (${Provider.names.join(", ")}) or a Provider, got "openia"`
    ])
    assert.deepStrictEqual(issuesOf({ provider: 5 }), [`provider: expected a known provider (${Provider.names.join(", ")}) or a Provider, got 5`])
  })
})

const config: LimiterConfig = {
  buckets: {
    // skew: 0: the timings below are exact, with no time kept for network jitter.
    safe: { quotas: [{ metric: "requests", limit: 10, window: "1 second" }], safetyRatio: 0.5, skew: 0 },
    burst: { quotas: [{ metric: "requests", limit: 2, window: "1 second" }], burstMultiplier: 2, skew: 0 },
    twoWindows: {
      quotas: [
        { metric: "requests", limit: 3, window: "1 second" },
        { metric: "requests", limit: 4, window: "1 minute", algorithm: "sliding-window" }
      ],
      skew: 0
    },
    daily: { quotas: [{ metric: "tokens", limit: 1000, window: "1 day", algorithm: "fixed-window" }], skew: 0 },
    kept: { quotas: [{ metric: "tokens", limit: 1000, window: "1 minute", refunds: false }], skew: 0 },
    refunded: { quotas: [{ metric: "tokens", limit: 1000, window: "1 minute" }], skew: 0 }
  }
}

const run = <A, E>(effect: Effect.Effect<A, E, RateLimited.RateLimited>) =>
  Effect.provide(effect, RateLimited.layer(config).pipe(Layer.provide(MemoryBackendLive)))

const starts = (bucket: string, n: number, usage?: Record<string, number>) =>
  Effect.gen(function*() {
    const fibers = yield* Effect.forEach(Array.from({ length: n }), () =>
      Effect.fork(RateLimited.submit({ bucket, usage }, Clock.currentTimeMillis)))
    yield* TestClock.adjust("3 days")
    return yield* Effect.forEach(fibers, Fiber.join)
  })

describe("bucket options", () => {
  it.effect("a safety ratio runs the bucket at that fraction of its limit", () =>
    run(Effect.gen(function*() {
      assert.deepStrictEqual(yield* starts("safe", 7), [0, 0, 0, 0, 0, 200, 400])
      assert.strictEqual((yield* RateLimited.status("safe")).quotas[0].limit, 5)
    })))

  it.effect("a burst multiplier holds more, at the same rate", () =>
    run(Effect.gen(function*() {
      assert.deepStrictEqual(yield* starts("burst", 6), [0, 0, 0, 0, 500, 1000])
    })))

  it.effect("several windows on one metric: the tighter one binds at each moment", () =>
    run(Effect.gen(function*() {
      // 3 per second, but only 4 per minute: the 5th waits for the minute to slide past the first.
      assert.deepStrictEqual(yield* starts("twoWindows", 5), [0, 0, 0, 334, 60_000])
    })))

  it.effect("a daily fixed window resets at midnight UTC", () =>
    run(Effect.gen(function*() {
      yield* TestClock.setTime(Date.UTC(2026, 0, 1, 22, 0))
      const times = yield* starts("daily", 3, { tokens: 400 })
      assert.deepStrictEqual(times, [Date.UTC(2026, 0, 1, 22, 0), Date.UTC(2026, 0, 1, 22, 0), Date.UTC(2026, 0, 2)])
    })))

  it.effect("refunds: false keeps the charge; an excess is always charged", () =>
    run(Effect.gen(function*() {
      yield* RateLimited.submit({ bucket: "kept", usage: { tokens: 800 } }, Effect.void, { actualUsage: () => ({ tokens: 100 }) })
      assert.strictEqual((yield* RateLimited.status("kept")).quotas[0].used, 800)
      yield* RateLimited.submit({ bucket: "refunded", usage: { tokens: 100 } }, Effect.void, { actualUsage: () => ({ tokens: 900 }) })
      assert.strictEqual((yield* RateLimited.status("refunded")).quotas[0].used, 900)
      const next = yield* Effect.fork(RateLimited.submit({ bucket: "refunded", usage: { tokens: 500 } }, Clock.currentTimeMillis))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(next), 24_000) // 400 tokens had to drain at 1000 per minute
    })))

  it.effect("status reports the wait for a charge of a given size, behind the queue", () =>
    run(Effect.gen(function*() {
      yield* RateLimited.submit({ bucket: "refunded", usage: { tokens: 1000 } }, Effect.void)
      assert.strictEqual((yield* RateLimited.status("refunded", { tokens: 500 })).waitMs, 30_000)
      yield* Effect.fork(RateLimited.submit({ bucket: "refunded", usage: { tokens: 500 } }, Effect.void))
      yield* TestClock.adjust(1)
      const status = yield* RateLimited.status("refunded", { tokens: 500 })
      assert.strictEqual(status.queued, 1)
      assert.strictEqual(status.waitMs, 59_999) // both 500s must drain: 60 s from the start
    })))
})
