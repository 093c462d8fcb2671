import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Option, Ref, Stream, TestClock } from "effect"
import { MemoryBackendLive, RateLimited } from "../src/index.js"
import type { LimiterConfig } from "../src/index.js"

// skew: 0 where the timings are exact: no time is kept for network jitter.
const config: LimiterConfig = {
  buckets: {
    rpm: { quotas: [{ metric: "requests", limit: 3, window: "1 second" }], skew: 0 },
    tokens: { quotas: [{ metric: "tokens", limit: 1000, window: "1 minute" }], skew: 0 },
    small: { quotas: [{ metric: "requests", limit: 1, window: "1 second" }], maxQueue: 2, skew: 0 },
    sliding: { quotas: [{ metric: "requests", limit: 2, window: "1 second", algorithm: "sliding-window" }], skew: 0 },
    concurrent: { quotas: [{ metric: "requests", limit: 2, algorithm: "concurrency" }] }
  }
}

const Live = RateLimited.layer(config).pipe(Layer.provide(MemoryBackendLive))
const run = <A, E>(effect: Effect.Effect<A, E, RateLimited.RateLimited>) => Effect.provide(effect, Live)

/** Runs `n` submits to `bucket` concurrently and returns when each started, in ms. */
const startTimes = (meta: RateLimited.Meta, n: number) =>
  Effect.gen(function*() {
    const fibers = yield* Effect.forEach(
      Array.from({ length: n }),
      () => Effect.fork(RateLimited.submit(meta, Clock.currentTimeMillis)),
      { concurrency: "unbounded" }
    )
    yield* TestClock.adjust("10 seconds")
    return yield* Effect.forEach(fibers, Fiber.join)
  })

describe("RateLimited", () => {
  it.effect("admits at once while the charge fits, then at the refill rate", () =>
    run(Effect.gen(function*() {
      const starts = yield* startTimes({ bucket: "rpm" }, 6)
      assert.deepStrictEqual(starts, [0, 0, 0, 334, 667, 1000]) // 1 per 333.3 ms, never early
    })))

  it.effect("a sliding window admits the next call a full window after the oldest", () =>
    run(Effect.gen(function*() {
      const starts = yield* startTimes({ bucket: "sliding" }, 5)
      assert.deepStrictEqual(starts, [0, 0, 1000, 1000, 2000])
    })))

  it.effect("a large charge is not starved by small ones arriving after it", () =>
    run(Effect.gen(function*() {
      yield* RateLimited.submit({ bucket: "tokens", usage: { tokens: 900 } }, Effect.void)
      const big = yield* Effect.fork(RateLimited.submit({ bucket: "tokens", usage: { tokens: 1000 } }, Clock.currentTimeMillis))
      yield* TestClock.adjust(1)
      const smalls = yield* Effect.forEach([1, 2, 3], () =>
        Effect.fork(RateLimited.submit({ bucket: "tokens", usage: { tokens: 50 } }, Clock.currentTimeMillis)))
      yield* TestClock.adjust("3 minutes")
      const bigAt = yield* Fiber.join(big)
      for (const small of smalls) assert.isTrue((yield* Fiber.join(small)) >= bigAt)
      assert.strictEqual(bigAt, 54_000) // 900 tokens drain at 1000 per minute: all 1000 fit after 54 s
    })))

  it.effect("a refund at settlement reaches the caller already waiting", () =>
    run(Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const first = yield* Effect.fork(
        RateLimited.submit({ bucket: "tokens", usage: { tokens: 1000 } }, Deferred.await(release), {
          actualUsage: () => ({ tokens: 100 })
        })
      )
      yield* TestClock.adjust(1)
      const second = yield* Effect.fork(RateLimited.submit({ bucket: "tokens", usage: { tokens: 800 } }, Clock.currentTimeMillis))
      yield* TestClock.adjust(1000)
      assert.isTrue(Option.isNone(yield* Fiber.poll(second)))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(first)
      yield* TestClock.adjust(1)
      assert.strictEqual(yield* Fiber.join(second), 1001)
    })))

  it.effect("interrupting a waiting call leaves the capacity as it was", () =>
    run(Effect.gen(function*() {
      yield* RateLimited.submit({ bucket: "tokens", usage: { tokens: 1000 } }, Effect.void)
      const before = yield* RateLimited.status("tokens")
      const waiting = yield* Effect.fork(RateLimited.submit({ bucket: "tokens", usage: { tokens: 500 } }, Effect.void))
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* RateLimited.status("tokens")).queued, 1)
      yield* Fiber.interrupt(waiting)
      const after = yield* RateLimited.status("tokens")
      assert.strictEqual(after.queued, 0)
      assert.strictEqual(after.open, 0)
      assert.closeTo(after.quotas[0].used, before.quotas[0].used - 1000 / 60_000, 1e-9)
    })))

  it.effect("a failed call keeps its charge and frees its concurrency slot", () =>
    run(Effect.gen(function*() {
      const exit = yield* Effect.exit(RateLimited.submit({ bucket: "tokens", usage: { tokens: 400 } }, Effect.fail("boom")))
      assert.isTrue(Exit.isFailure(exit))
      assert.strictEqual((yield* RateLimited.status("tokens")).quotas[0].used, 400)
      yield* Effect.exit(RateLimited.submit({ bucket: "concurrent" }, Effect.fail("boom")))
      assert.strictEqual((yield* RateLimited.status("concurrent")).quotas[0].used, 0)
    })))

  it.effect("concurrency admits the next call when one in flight settles", () =>
    run(Effect.gen(function*() {
      const gates = yield* Effect.forEach([0, 1, 2], () => Deferred.make<void>())
      const started = yield* Ref.make<Array<number>>([])
      const fibers = yield* Effect.forEach(gates, (gate, i) =>
        Effect.fork(RateLimited.submit({ bucket: "concurrent" }, Effect.zipRight(Ref.update(started, (s) => [...s, i]), Deferred.await(gate)))))
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(yield* Ref.get(started), [0, 1])
      yield* Deferred.succeed(gates[1], undefined)
      yield* TestClock.adjust(1)
      assert.deepStrictEqual(yield* Ref.get(started), [0, 1, 2])
      yield* Deferred.succeed(gates[0], undefined)
      yield* Deferred.succeed(gates[2], undefined)
      yield* Effect.forEach(fibers, Fiber.join)
    })))

  it.effect("maxWait fails fast with retryAfterMs and books nothing", () =>
    run(Effect.gen(function*() {
      yield* RateLimited.submit({ bucket: "tokens", usage: { tokens: 1000 } }, Effect.void)
      const error = yield* Effect.flip(
        RateLimited.submit({ bucket: "tokens", usage: { tokens: 500 } }, Effect.void, { maxWait: "10 seconds" })
      )
      assert.strictEqual(error._tag, "CapacityExceeded")
      assert.strictEqual(error._tag === "CapacityExceeded" && error.reason, "max-wait")
      assert.strictEqual(error._tag === "CapacityExceeded" ? error.retryAfterMs : 0, 30_000)
      const status = yield* RateLimited.status("tokens")
      assert.strictEqual(status.queued, 0)
      assert.strictEqual(status.open, 0)
    })))

  it.effect("maxWait 0 admits a call that fits now and refuses one that does not", () =>
    run(Effect.gen(function*() {
      assert.strictEqual(yield* RateLimited.submit({ bucket: "tokens", usage: { tokens: 1000 } }, Effect.succeed("in"), { maxWait: 0 }), "in")
      const error = yield* Effect.flip(RateLimited.submit({ bucket: "tokens", usage: { tokens: 1 } }, Effect.void, { maxWait: 0 }))
      assert.strictEqual(error._tag, "CapacityExceeded")
    })))

  it.effect("maxQueue refuses the call that would overflow the queue", () =>
    run(Effect.gen(function*() {
      yield* RateLimited.submit({ bucket: "small" }, Effect.void)
      yield* Effect.fork(RateLimited.submit({ bucket: "small" }, Effect.void))
      yield* Effect.fork(RateLimited.submit({ bucket: "small" }, Effect.void))
      yield* TestClock.adjust(1)
      const error = yield* Effect.flip(RateLimited.submit({ bucket: "small" }, Effect.void))
      assert.strictEqual(error._tag, "QueueOverflow")
    })))

  it.effect("a charge larger than a quota can never fit and fails at once", () =>
    run(Effect.gen(function*() {
      const error = yield* Effect.flip(RateLimited.submit({ bucket: "tokens", usage: { tokens: 1001 } }, Effect.void))
      assert.strictEqual(error._tag, "CapacityExceeded")
      assert.strictEqual(error.message, `bucket "tokens": the charge on "tokens" is larger than the quota's capacity and can never fit`)
    })))

  it.effect("bad usages and unknown buckets are typed errors naming what was wrong", () =>
    run(Effect.gen(function*() {
      const unknown = yield* Effect.flip(RateLimited.submit({ bucket: "nope" }, Effect.void))
      assert.strictEqual(unknown._tag, "UnknownBucket")
      const negative = yield* Effect.flip(RateLimited.submit({ bucket: "tokens", usage: { tokens: -5 } }, Effect.void))
      assert.strictEqual(negative.message, `bucket "tokens": invalid usage: usage.tokens: expected a non-negative integer, got -5`)
      const typo = yield* Effect.flip(RateLimited.submit({ bucket: "tokens", usage: { tokns: 5 } }, Effect.void))
      assert.include(typo.message, "usage.tokns: not a metric of this bucket (known: tokens)")
      const status = yield* RateLimited.status("tokens")
      assert.strictEqual(status.open, 0)
      assert.strictEqual(status.quotas[0].used, 0)
    })))

  it.effect("a scoped reservation is released when its scope closes unsettled", () =>
    run(Effect.gen(function*() {
      yield* Effect.scoped(RateLimited.reserve({ bucket: "tokens", usage: { tokens: 700 } }))
      assert.strictEqual((yield* RateLimited.status("tokens")).quotas[0].used, 0)
      yield* Effect.scoped(Effect.flatMap(RateLimited.reserve({ bucket: "tokens", usage: { tokens: 700 } }), (p) => p.settle({ tokens: 300 })))
      assert.strictEqual((yield* RateLimited.status("tokens")).quotas[0].used, 300)
    })))

  it.effect("a stream settles with the usage its last chunk reports", () =>
    run(Effect.gen(function*() {
      const chunks = yield* Stream.runCollect(
        RateLimited.submitStream(
          { bucket: "tokens", usage: { tokens: 900 } },
          Stream.make<Array<{ text: string; usage?: { tokens: number } }>>({ text: "a" }, { text: "b", usage: { tokens: 120 } }),
          { usageOf: (chunk) => chunk.usage }
        )
      )
      assert.strictEqual(chunks.length, 2)
      assert.strictEqual((yield* RateLimited.status("tokens")).quotas[0].used, 120)
    })))
})
