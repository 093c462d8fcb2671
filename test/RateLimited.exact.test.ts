/**
 * Exact accounting at the edges of a call, on the Effect API over the memory backend, in virtual time: an
 * interrupt at any moment (queued, at the instant of admission, running), a stream that fails after its first
 * chunks, `maxWait` on a full concurrency quota, a permit nobody settles, and shutdown while calls run.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, FastCheck as fc, Fiber, FiberId, Layer, Random, Scope, Stream, TestClock } from "effect"
import { Backend, MemoryBackend, MemoryBackendLive, RateLimited } from "../src/index.js"
import type { LimiterConfig } from "../src/index.js"

const SLOTS = 5

const config: LimiterConfig = {
  buckets: {
    slots: { quotas: [{ metric: "requests", limit: SLOTS, algorithm: "concurrency" }] },
    split: {
      quotas: [
        { metric: "input_tokens", limit: 10_000, window: "1 minute" },
        { metric: "output_tokens", limit: 2_000, window: "1 minute" }
      ]
    }
  },
  reservationTtl: "1 minute",
  shutdownTimeout: "5 seconds"
}

const Live = RateLimited.layer(config).pipe(Layer.provide(MemoryBackendLive))

/** Every slot is free: `SLOTS` reservations can be taken at once, and nothing is open. */
const assertAllFree = Effect.gen(function*() {
  const status = yield* RateLimited.status("slots")
  assert.strictEqual(status.open, 0, "open reservations")
  assert.strictEqual(status.quotas[0].used, 0, "slots in use")
  yield* Effect.scoped(Effect.forEach(Array.from({ length: SLOTS }), () => RateLimited.reserve({ bucket: "slots" }, { maxWait: 0 })))
})

/**
 * `calls` submits arriving over time, each running 0-3 ms and each, by its fate, left alone, cut short by
 * `Effect.timeout`, or interrupted by another fiber after 0-4 ms, so that interrupts land while queued, while
 * running, and on the very tick a freed slot hands the caller its reservation.
 */
const storm = (calls: number) =>
  Effect.gen(function*() {
    const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
    for (let i = 0; i < calls; i++) {
      const runMs = yield* Random.nextIntBetween(0, 4)
      const fate = yield* Random.nextIntBetween(0, 3)
      const afterMs = yield* Random.nextIntBetween(0, 5)
      // Yielding after every few operations (fewer than 16 never gets past the yield itself), a fiber can be
      // interrupted between almost any two of them.
      const opsBeforeYield = yield* Random.nextIntBetween(16, 40)
      const call = RateLimited.submit({ bucket: "slots" }, Effect.sleep(runMs))
      const fiber = yield* Effect.fork(Effect.withMaxOpsBeforeYield(fate === 1 ? Effect.timeout(call, afterMs) : call, opsBeforeYield))
      fibers.push(fiber)
      // A few yields after the tick: the interrupt then lands anywhere among the driver's hand-over and the
      // caller's resumption.
      const yields = yield* Random.nextIntBetween(0, 4)
      if (fate === 2) yield* Effect.fork(Effect.sleep(afterMs).pipe(Effect.zipRight(Effect.repeatN(Effect.yieldNow(), yields)), Effect.zipRight(Fiber.interrupt(fiber)), Effect.withMaxOpsBeforeYield(opsBeforeYield)))
      if (i % 8 === 7) yield* TestClock.adjust(1)
    }
    for (let t = 0; t < calls && fibers.some((f) => f.unsafePoll() === null); t++) yield* TestClock.adjust(1)
    const hung = fibers.filter((f) => f.unsafePoll() === null).length
    assert.strictEqual(hung, 0, "callers still waiting after every slot should have come back")
  })

describe("RateLimited: exact under interruption, failure and shutdown", () => {
  it.effect("an interrupt storm on a concurrency quota loses no slot and hangs nobody", () =>
    Effect.gen(function*() {
      for (let round = 0; round < 3; round++) {
        yield* Effect.provide(Effect.zipRight(storm(800), assertAllFree), Live).pipe(Effect.withRandom(Random.make(round)))
      }
    }), 60_000)

  it.effect("interrupted at the instant of admission, a caller gives its reservation back", () =>
    Effect.provide(
      Effect.gen(function*() {
        // Fill every slot, queue one caller, then free a slot and interrupt the caller on the same tick, after
        // 0 to 5 yields: before the driver hands it the slot, between the hand-over and its resumption, after.
        for (let yields = 0; yields <= 5; yields++) {
          const holders = yield* Effect.forEach(Array.from({ length: SLOTS }), () => Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.sleep(10))))
          yield* TestClock.adjust(0)
          const waiting = yield* Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.never))
          yield* TestClock.adjust(0)
          yield* Effect.fork(Effect.sleep(10).pipe(Effect.zipRight(Effect.repeatN(Effect.yieldNow(), yields)), Effect.zipRight(Fiber.interrupt(waiting))))
          yield* TestClock.adjust(10)
          yield* Effect.forEach(holders, Fiber.join)
          assert.isTrue(Exit.isInterrupted(yield* Fiber.await(waiting)))
          yield* assertAllFree
        }
      }),
      Live
    ))

  it.effect("a caller interrupted while the backend books its reservation gives the reservation back", () =>
    Effect.gen(function*() {
      // A backend that answers a booking at the very moment its caller is interrupted: the interrupt reaches
      // the caller's fiber before the driver hands the reservation over.
      const memory = yield* MemoryBackend.make
      let target: Fiber.RuntimeFiber<unknown, unknown> | undefined
      const { local: _sync, ...remote } = memory
      const racing = Backend.Backend.of({
        ...remote,
        reserve: (bucket, charge, maxWaitMs) =>
          Effect.tap(memory.reserve(bucket, charge, maxWaitMs), () => Effect.sync(() => target?.unsafeInterruptAsFork(FiberId.none)))
      })
      yield* Effect.provide(
        Effect.gen(function*() {
          const holders = yield* Effect.forEach(Array.from({ length: SLOTS }), () => Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.sleep(10))))
          yield* TestClock.adjust(0)
          const waiting = yield* Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.never))
          yield* TestClock.adjust(0)
          target = waiting
          yield* TestClock.adjust(10)
          yield* Effect.forEach(holders, Fiber.join)
          assert.isTrue(Exit.isInterrupted(yield* Fiber.await(waiting)))
          target = undefined
          yield* assertAllFree
        }),
        RateLimited.layer(config).pipe(Layer.provide(Layer.succeed(Backend.Backend, racing)))
      )
    }))

  it.effect("a stream that fails after its chunks settles with the usage they reported", () =>
    Effect.provide(
      Effect.gen(function*() {
        type Chunk = { readonly usage?: { readonly input_tokens: number; readonly output_tokens: number } }
        const chunks: Stream.Stream<Chunk, string> = Stream.concat(
          Stream.make<Array<Chunk>>({ usage: { input_tokens: 900, output_tokens: 5 } }),
          Stream.fail("connection reset")
        )
        const exit = yield* Effect.exit(Stream.runDrain(
          RateLimited.submitStream({ bucket: "split", usage: { input_tokens: 1_000, output_tokens: 1_024 } }, chunks, { usageOf: (c) => c.usage })
        ))
        assert.isTrue(Exit.isFailure(exit))
        const status = yield* RateLimited.status("split")
        assert.strictEqual(status.open, 0)
        assert.closeTo(status.quotas[0].used, 900, 1)
        assert.closeTo(status.quotas[1].used, 5, 1)
      }),
      Live
    ))

  it.effect("a stream that dies settles with the usage it reported too", () =>
    Effect.provide(
      Effect.gen(function*() {
        const chunks = Stream.concat(Stream.make({ usage: { input_tokens: 300, output_tokens: 7 } }), Stream.die("bug"))
        yield* Effect.exit(Stream.runDrain(
          RateLimited.submitStream({ bucket: "split", usage: { input_tokens: 500, output_tokens: 500 } }, chunks, { usageOf: (c) => c.usage })
        ))
        const status = yield* RateLimited.status("split")
        assert.closeTo(status.quotas[0].used, 300, 1)
        assert.closeTo(status.quotas[1].used, 7, 1)
      }),
      Live
    ))

  it.effect("maxWait on a full concurrency quota waits for a slot instead of failing at once", () =>
    Effect.provide(
      Effect.gen(function*() {
        const holders = yield* Effect.forEach(Array.from({ length: SLOTS }), (_, i) => Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.sleep(i === 0 ? 100 : 10_000))))
        yield* TestClock.adjust(0)
        const waiting = yield* Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.succeed("in"), { maxWait: "1 second" }))
        yield* TestClock.adjust(100)
        assert.deepStrictEqual(yield* Fiber.await(waiting), Exit.succeed("in"))
        // And one that no slot reaches in time fails when its maxWait is up, not before.
        holders.push(yield* Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.sleep(10_000))))
        yield* TestClock.adjust(0)
        const late = yield* Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.void, { maxWait: "1 second" }))
        yield* TestClock.adjust(999)
        assert.isNull(late.unsafePoll())
        yield* TestClock.adjust(2)
        const error = yield* Effect.flip(Fiber.join(late))
        assert.strictEqual(error._tag, "CapacityExceeded")
        // Closing the limiter waits for running calls: these end here.
        yield* Fiber.interruptAll(holders)
      }),
      Live
    ))

  it.effect("a permit nobody settles is settled by the orphan sweeper after reservationTtl", () =>
    Effect.provide(
      Effect.gen(function*() {
        const forgotten = yield* Scope.make()
        yield* Scope.extend(RateLimited.reserve({ bucket: "slots" }), forgotten)
        assert.strictEqual((yield* RateLimited.status("slots")).open, 1)
        yield* TestClock.adjust("59 seconds")
        assert.strictEqual((yield* RateLimited.status("slots")).open, 1)
        yield* TestClock.adjust("20 seconds")
        yield* assertAllFree
      }),
      Live
    ))

  it.effect("closing the limiter interrupts waiting calls, lets running ones finish, and frees every slot", () =>
    Effect.gen(function*() {
      const backend = yield* Layer.build(MemoryBackendLive)
      const scope = yield* Scope.make()
      const service = yield* Scope.extend(Effect.provide(RateLimited.make(config), backend), scope)
      const running = yield* Effect.forEach(Array.from({ length: SLOTS }), (_, i) => Effect.fork(service.submit({ bucket: "slots" }, Effect.as(Effect.sleep(1_000), i))))
      yield* TestClock.adjust(0)
      const waiting = yield* Effect.fork(service.submit({ bucket: "slots" }, Effect.void))
      yield* TestClock.adjust(0)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust(0)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.await(waiting)))
      assert.isNull(closing.unsafePoll(), "closing waits for the running calls")
      yield* TestClock.adjust(1_000)
      assert.deepStrictEqual(yield* Effect.forEach(running, Fiber.join), [0, 1, 2, 3, 4])
      yield* Fiber.join(closing)
      const after = yield* Effect.flip(service.submit({ bucket: "slots" }, Effect.void))
      assert.strictEqual(after._tag, "LimiterClosed")
    }).pipe(Effect.scoped))

  it.effect("closing settles what is still running after shutdownTimeout, keeping its charge", () =>
    Effect.gen(function*() {
      const backend = yield* Layer.build(MemoryBackendLive)
      const scope = yield* Scope.make()
      const service = yield* Scope.extend(Effect.provide(RateLimited.make(config), backend), scope)
      yield* Effect.fork(service.submit({ bucket: "slots" }, Effect.never))
      yield* TestClock.adjust(0)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* TestClock.adjust(0)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(closing)
      // The same backend, seen by a new limiter: nothing is held.
      const next = yield* Effect.provide(RateLimited.make(config), backend)
      assert.strictEqual((yield* next.status("slots")).open, 0)
    }).pipe(Effect.scoped))

  it.effect("bad calls are typed errors naming the field, and change nothing", () =>
    Effect.provide(
      Effect.gen(function*() {
        const before = yield* RateLimited.status("slots")
        const bad: ReadonlyArray<readonly [unknown, unknown, string]> = [
          [{ bucket: 42 }, undefined, "meta.bucket"],
          [null, undefined, "meta"],
          [{ bucket: "slots" }, "abc", "options.maxWait"],
          [{ bucket: "slots" }, -5, "options.maxWait"],
          [{ bucket: "slots", usage: { requests: 1.5 } }, undefined, "usage.requests"],
          [{ bucket: "slots", usage: "lots" }, undefined, "usage"]
        ]
        for (const [meta, maxWait, field] of bad) {
          // Deliberately ill-typed input, as untyped callers may pass it.
          const submit = RateLimited.submit as (meta: unknown, effect: Effect.Effect<void>, options: unknown) => Effect.Effect<void, { readonly message: string }, RateLimited.RateLimited>
          const error = yield* Effect.flip(submit(meta, Effect.void, { maxWait }))
          assert.include(error.message, field)
        }
        assert.deepStrictEqual(yield* RateLimited.status("slots"), before)
      }),
      Live
    ))

  it.effect.prop(
    "whatever interleaving of outcomes, every quota ends at exactly what the kept calls were charged",
    [fc.array(fc.record({ tokens: fc.integer({ min: 0, max: 2_000 }), used: fc.integer({ min: 0, max: 2_000 }), fate: fc.constantFrom("ok", "fail", "interrupt", "stream-fail", "settle-twice") }), { maxLength: 40 })],
    ([calls]) =>
      Effect.provide(
        Effect.gen(function*() {
          for (const call of calls) {
            const meta = { bucket: "split", usage: { input_tokens: call.tokens } }
            // What the provider may have counted, so what the call keeps.
            let kept: number
            if (call.fate === "ok") {
              yield* RateLimited.submit(meta, Effect.succeed(call.used), { actualUsage: (used) => ({ input_tokens: used }) })
              kept = call.used
            } else if (call.fate === "fail") {
              yield* Effect.exit(RateLimited.submit(meta, Effect.fail("boom"), { actualUsage: () => ({ input_tokens: 0 }) }))
              kept = call.tokens
            } else if (call.fate === "interrupt") {
              const fiber = yield* Effect.fork(RateLimited.submit(meta, Effect.never))
              yield* TestClock.adjust(0)
              yield* Fiber.interrupt(fiber)
              kept = call.tokens
            } else if (call.fate === "stream-fail") {
              const chunks = Stream.concat(Stream.make({ input_tokens: call.used }), Stream.fail("reset"))
              yield* Effect.exit(Stream.runDrain(RateLimited.submitStream(meta, chunks, { usageOf: (c) => c })))
              kept = call.used
            } else {
              yield* Effect.scoped(Effect.gen(function*() {
                const permit = yield* RateLimited.reserve(meta)
                yield* permit.settle({ input_tokens: call.used })
                const again = yield* Effect.flip(permit.settle({ input_tokens: 0 }))
                assert.strictEqual(again._tag, "ReservationNotFound")
              }))
              kept = call.used
            }
            const status = yield* RateLimited.status("split")
            assert.strictEqual(status.open, 0)
            assert.closeTo(status.quotas[0].used, kept, 1e-6, call.fate)
            // Refill before the next call, so that each is measured alone.
            yield* TestClock.adjust("1 minute")
          }
        }),
        Live
      ),
    { fastCheck: { numRuns: 30 } }
  )
})
