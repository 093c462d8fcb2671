import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Layer, Ref, TestClock } from "effect"
import { Backend, BackendUnavailable, MemoryBackend, MemoryBackendLive, RateLimited } from "../src/index.js"
import type { LimiterConfig, ProviderResponse } from "../src/index.js"

interface Answer {
  readonly status: number
  readonly headers: Record<string, string>
  readonly body?: unknown
}

const ok: Answer = { status: 200, headers: {} }
const tooMany = (retryAfterSeconds: number): Answer => ({
  status: 429,
  headers: { "retry-after": String(retryAfterSeconds) },
  body: { error: { message: "Rate limit reached for gpt-4o on requests per min (RPM)", type: "requests", code: "rate_limit_exceeded" } }
})

const config: LimiterConfig = {
  provider: "openai",
  retry: { maxAttempts: 3, baseDelay: "100 millis", maxDelay: "1 second" },
  buckets: {
    "gpt-4o": {
      quotas: [
        { metric: "requests", limit: 60, window: "1 minute" },
        { metric: "tokens", limit: 30_000, window: "1 minute", refunds: false }
      ],
      // Exact timings: no time kept for network jitter.
      skew: 0
    }
  }
}

/** The memory backend, except that it cannot take what a provider said (Redis away under fail-closed, say). */
const observeFails = Layer.effect(
  Backend.Backend,
  Effect.map(MemoryBackend.make, (backend) => ({ ...backend, observe: () => Effect.fail(new BackendUnavailable({ cause: "down" })) }))
)

const run = <A, E>(effect: Effect.Effect<A, E, RateLimited.RateLimited>, overrides: Partial<LimiterConfig> = {}) =>
  Effect.provide(effect, RateLimited.layer({ ...config, ...overrides }).pipe(Layer.provide(MemoryBackendLive)))

/** A provider that gives the scripted answers in turn, recording when each attempt was made. */
const scripted = (answers: ReadonlyArray<Answer>) =>
  Effect.gen(function*() {
    const attempts = yield* Ref.make<Array<number>>([])
    const call = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const made = yield* Ref.getAndUpdate(attempts, (a) => [...a, now])
      return answers[Math.min(made.length, answers.length - 1)]
    })
    return { call, attempts: Ref.get(attempts) }
  })

const response = <E>(exit: Exit.Exit<Answer, E>): ProviderResponse | undefined =>
  Exit.isSuccess(exit) ? exit.value : undefined

describe("RateLimited with a provider", () => {
  it.effect("a 429 for a call it admitted makes the bucket keep more time for jitter, up to a bound, and answered calls give it back", () =>
    run(Effect.gen(function*() {
      const skew = Effect.map(RateLimited.status("fast"), (status) => status.skewMs)
      assert.strictEqual(yield* skew, 0)
      // Three attempts, three 429s: 0 -> 50 -> 100 -> 200 ms; three more, held at a quarter of the 1 s window.
      const refused = yield* scripted([tooMany(1)])
      for (let i = 0; i < 2; i++) {
        const fiber = yield* Effect.fork(Effect.exit(RateLimited.submit({ bucket: "fast" }, refused.call, { response })))
        yield* TestClock.adjust("10 seconds")
        yield* Fiber.join(fiber)
        assert.strictEqual(yield* skew, i === 0 ? 200 : 250)
      }
      const answered = yield* Effect.fork(Effect.forEach(
        Array.from({ length: 300 }),
        () => RateLimited.submit({ bucket: "fast" }, Effect.succeed(ok), { response }),
        { discard: true }
      ))
      yield* TestClock.adjust("10 minutes")
      yield* Fiber.join(answered)
      const after = yield* skew
      assert.isBelow(after, 250 * 0.25, "300 answered calls give back most of it")
      assert.isAbove(after, 0, "slowly")
    }), { buckets: { fast: { quotas: [{ metric: "requests", limit: 10, window: "1 second" }], skew: 0 } } }))

  it.effect("a 429 is retried after its retry-after, and the bucket is blocked for every caller meanwhile", () =>
    run(Effect.gen(function*() {
      const provider = yield* scripted([tooMany(2), ok])
      const first = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 10 } }, provider.call, { response }))
      yield* TestClock.adjust(1)
      const other = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 10 } }, Clock.currentTimeMillis))
      yield* TestClock.adjust("10 seconds")
      assert.deepStrictEqual(yield* Fiber.join(first), ok)
      const attempts = yield* provider.attempts
      assert.strictEqual(attempts.length, 2)
      assert.isAtLeast(attempts[1], 2_000)
      assert.isAtLeast(yield* Fiber.join(other), 2_000)
    }), { retry: { maxAttempts: 3, baseDelay: "100 millis", maxDelay: "5 seconds" } }))

  it.effect("maxDelay caps the wait between attempts, a longer retry hint included, for the bucket's other callers too", () =>
    run(Effect.gen(function*() {
      // The provider says 10 s, the configuration at most 1 s.
      const provider = yield* scripted([tooMany(10), tooMany(10), ok])
      const first = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 10 } }, provider.call, { response }))
      yield* TestClock.adjust(1)
      const other = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 10 } }, Clock.currentTimeMillis))
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(yield* Fiber.join(first), ok)
      const attempts = yield* provider.attempts
      assert.strictEqual(attempts.length, 3)
      assert.isAtMost(attempts[1] - attempts[0], 1_000)
      assert.isAtMost(attempts[2] - attempts[1], 1_000)
      assert.isAtMost(yield* Fiber.join(other), 1_000)
    })))

  it.effect("after the last attempt the call fails with RateLimitedByProvider carrying the last headers", () =>
    run(Effect.gen(function*() {
      const provider = yield* scripted([tooMany(1)])
      const fiber = yield* Effect.fork(Effect.flip(RateLimited.submit({ bucket: "gpt-4o" }, provider.call, { response })))
      yield* TestClock.adjust("1 minute")
      const error = yield* Fiber.join(fiber)
      assert.strictEqual(error._tag, "RateLimitedByProvider")
      if (error._tag !== "RateLimitedByProvider") return
      assert.strictEqual(error.status, 429)
      assert.strictEqual(error.attempts, 3)
      assert.strictEqual(error.headers["retry-after"], "1")
      assert.strictEqual((yield* provider.attempts).length, 3)
      assert.strictEqual((yield* RateLimited.status("gpt-4o")).open, 0)
    })))

  it.effect("a request too large is not retried: the call's own outcome comes back", () =>
    run(Effect.gen(function*() {
      const tooLarge: Answer = {
        status: 429,
        headers: {},
        body: { error: { message: "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 31538.", code: "rate_limit_exceeded" } }
      }
      const provider = yield* scripted([tooLarge])
      const answer = yield* RateLimited.submit({ bucket: "gpt-4o" }, provider.call, { response })
      assert.strictEqual(answer.status, 429)
      assert.strictEqual((yield* provider.attempts).length, 1)
    })))

  it.effect("headers reporting less remaining than we believe tighten the bucket", () =>
    run(Effect.gen(function*() {
      // Someone else on the key used 59 of the 60 requests this minute.
      const crowded: Answer = {
        status: 200,
        headers: { "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "1", "x-ratelimit-reset-requests": "59s" }
      }
      const provider = yield* scripted([crowded])
      yield* RateLimited.submit({ bucket: "gpt-4o" }, provider.call, { response })
      const status = yield* RateLimited.status("gpt-4o")
      assert.strictEqual(status.quotas[0].used, 59)
      const next = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o" }, Clock.currentTimeMillis))
      const after = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o" }, Clock.currentTimeMillis))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(next), 0)
      assert.strictEqual(yield* Fiber.join(after), 1_000) // one request per second refills
    })))

  it.effect("a bucket with one quota on a metric takes that metric's report whatever its window", () =>
    run(Effect.gen(function*() {
      // OpenAI reports per minute; this bucket runs a scaled window of 2 seconds on requests.
      const crowded: Answer = { status: 200, headers: { "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "2" } }
      const provider = yield* scripted([crowded])
      yield* RateLimited.submit({ bucket: "scaled" }, provider.call, { response })
      assert.strictEqual((yield* RateLimited.status("scaled")).quotas[0].used, 8)
    }), { buckets: { scaled: { quotas: [{ metric: "requests", limit: 10, window: "2 seconds" }], skew: 0 } } }))

  it.effect("a limit the provider reports below the configured one wins, and what is booked stays booked", () =>
    run(Effect.gen(function*() {
      // Configured at 30,000 tokens a minute; the key's real limit is 10,000, and 4,000 of it are in use.
      const lower: Answer = {
        status: 200,
        headers: { "x-ratelimit-limit-tokens": "10000", "x-ratelimit-remaining-tokens": "6000", "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59" }
      }
      const provider = yield* scripted([lower])
      yield* RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 4_000 } }, provider.call, { response })
      const status = yield* RateLimited.status("gpt-4o")
      assert.strictEqual(status.quotas[1].limit, 10_000)
      assert.strictEqual(status.quotas[0].limit, 60) // the same as configured: unchanged
      assert.strictEqual(status.quotas[1].used, 4_000)
      // 12,000 tokens fitted the configured quota; they can never fit the provider's.
      const tooLarge = yield* Effect.flip(RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 12_000 } }, Effect.void))
      assert.strictEqual(tooLarge._tag, "CapacityExceeded")
      // 6,000 fit now, the next 6,000 only once 2,000 have refilled at 10,000 a minute: 12 seconds.
      yield* RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 6_000 } }, Effect.void)
      const later = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 2_000 } }, Clock.currentTimeMillis))
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(yield* Fiber.join(later), 12_000)
    })))

  it.effect("a bucket nobody configured starts with one call in flight and learns its limits from the headers", () =>
    run(Effect.gen(function*() {
      // 100 requests and 10,000 tokens a minute; this call used 2,000 tokens, which refill in 12 s.
      const reported: Answer = {
        status: 200,
        headers: {
          "x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": "99", "x-ratelimit-reset-requests": "600ms",
          "x-ratelimit-limit-tokens": "10000", "x-ratelimit-remaining-tokens": "8000", "x-ratelimit-reset-tokens": "12s"
        }
      }
      const slow = Effect.zipRight(Effect.sleep("1 second"), Effect.succeed(reported))
      const first = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o-mini", usage: { tokens: 2_000 } }, slow, { response }))
      yield* TestClock.adjust(1)
      const second = yield* Effect.fork(RateLimited.submit({ bucket: "gpt-4o-mini", usage: { tokens: 10 } }, Clock.currentTimeMillis))
      yield* TestClock.adjust(500)
      assert.strictEqual((yield* RateLimited.status("gpt-4o-mini")).queued, 1) // waits for the first answer
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(first)
      assert.strictEqual(yield* Fiber.join(second), 1_000) // admitted as soon as the first answered
      const status = yield* RateLimited.status("gpt-4o-mini")
      const tokens = status.quotas.find((q) => q.metric === "tokens" && q.algorithm === "token-bucket")
      assert.strictEqual(tokens?.limit, 10_000)
      // 10,000 x 12.001 s / 1,999: a minute, erring a little long.
      assert.strictEqual(tokens?.windowMs, Math.ceil((10_000 * 12_001) / 1_999))
      assert.strictEqual(status.quotas.find((q) => q.algorithm === "concurrency")?.limit, 1_000_000_000)
    }), { buckets: {} }))

  it.effect("callers queued under a learning bucket's first guess of the window move up once the real one is learnt", () =>
    run(Effect.gen(function*() {
      // Anthropic style: 10,000 input tokens a minute at first sight (the first answer shows none used, so no
      // window), then an answer whose reset says they refill in about 2.6 s.
      const report = (remaining: number, resetAt: number): Answer => ({
        status: 200,
        headers: {
          "anthropic-ratelimit-input-tokens-limit": "10000",
          "anthropic-ratelimit-input-tokens-remaining": String(remaining),
          "anthropic-ratelimit-input-tokens-reset": new Date(resetAt).toISOString()
        }
      })
      const usage = { input_tokens: 4_000 }
      yield* RateLimited.submit({ bucket: "claude", usage }, Effect.succeed(report(10_000, 0)), { response })
      const slow = Effect.zipRight(Effect.sleep(100), Effect.succeed(report(2_000, 2_000)))
      const second = yield* Effect.fork(RateLimited.submit({ bucket: "claude", usage }, slow, { response }))
      const third = yield* Effect.fork(RateLimited.submit({ bucket: "claude", usage }, Clock.currentTimeMillis))
      // Past the 10,000: under the first guess (a minute) it would wait about 20 s for the refill.
      const fourth = yield* Effect.fork(RateLimited.submit({ bucket: "claude", usage }, Clock.currentTimeMillis))
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* RateLimited.status("claude")).queued, 1)
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(second)
      assert.strictEqual(yield* Fiber.join(third), 0)
      const window = (yield* RateLimited.status("claude")).quotas.find((q) => q.metric === "input_tokens")?.windowMs ?? 0
      assert.isBelow(window, 5_000)
      // The refill at the learnt rate: 10,000 tokens per window, a tenth of it kept in hand.
      assert.isBelow(yield* Fiber.join(fourth), window)
    }), { provider: "anthropic", buckets: {} }))

  it.effect("a backend that cannot take what the provider said still gets the call settled", () =>
    Effect.gen(function*() {
      const headers: Answer = { status: 200, headers: { "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "10" } }
      const provider = yield* scripted([headers])
      const outcome = yield* Effect.flip(RateLimited.submit({ bucket: "gpt-4o", usage: { tokens: 10 } }, provider.call, { response }))
      assert.strictEqual(outcome._tag, "BackendUnavailable")
      assert.strictEqual((yield* RateLimited.status("gpt-4o")).open, 0)
    }).pipe(Effect.provide(RateLimited.layer(config).pipe(Layer.provide(observeFails)))))

  it.effect("repeated refusals open the circuit: later calls fail fast with CircuitOpen", () =>
    run(Effect.gen(function*() {
      const provider = yield* scripted([tooMany(1)])
      for (let i = 0; i < 2; i++) {
        const fiber = yield* Effect.fork(Effect.flip(RateLimited.submit({ bucket: "gpt-4o" }, provider.call, { response })))
        yield* TestClock.adjust("1 minute")
        assert.strictEqual((yield* Fiber.join(fiber))._tag, "RateLimitedByProvider")
      }
      const error = yield* Effect.flip(RateLimited.submit({ bucket: "gpt-4o" }, provider.call, { response }))
      assert.strictEqual(error._tag, "CircuitOpen")
    }), { breaker: { failureThreshold: 2, failureWindow: "5 minutes", openFor: "5 minutes" } }))
})
