/**
 * The Effect API over a real Redis, at the edges of a call: an interrupt storm, a caller interrupted while
 * Redis books its reservation, and `maxWait: 0` on an empty bucket. Live clock (Redis's time does not follow
 * TestClock).
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, FiberId, Layer, Random, Scope } from "effect"
import { Backend, RateLimited, RedisBackend } from "../src/index.js"
import type { LimiterConfig } from "../src/index.js"
import { commandCalls, redisServer } from "./support/redisServer.js"

const SLOTS = 5

const config: LimiterConfig = {
  buckets: {
    slots: { quotas: [{ metric: "requests", limit: SLOTS, algorithm: "concurrency" }] },
    one: { quotas: [{ metric: "requests", limit: 1, algorithm: "concurrency" }] },
    rpm: { quotas: [{ metric: "requests", limit: 100, window: "1 minute" }] }
  },
  shutdownTimeout: "2 seconds"
}

let namespaces = 0
const limiterOn = (url: string, namespace = `edges${++namespaces}`) =>
  RateLimited.layer(config).pipe(Layer.provide(RedisBackend.layer({ url, namespace })))

/** Nothing open, no slot in use, and all of them can be taken at once. */
const assertAllFree = Effect.gen(function*() {
  const status = yield* RateLimited.status("slots")
  assert.strictEqual(status.open, 0, "open reservations")
  assert.strictEqual(status.quotas[0].used, 0, "slots in use")
  yield* Effect.scoped(Effect.forEach(Array.from({ length: SLOTS }), () => RateLimited.reserve({ bucket: "slots" }, { maxWait: 0 })))
})

describe("RateLimited on Redis: exact at the edges of a call", () => {
  it.scopedLive("an interrupt storm loses no slot and hangs nobody", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      yield* Effect.provide(
        Effect.gen(function*() {
          const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
          for (let i = 0; i < 600; i++) {
            const runMs = yield* Random.nextIntBetween(0, 3)
            const fate = yield* Random.nextIntBetween(0, 3)
            const afterMs = yield* Random.nextIntBetween(0, 4)
            const call = RateLimited.submit({ bucket: "slots" }, Effect.sleep(runMs))
            const fiber = yield* Effect.fork(fate === 1 ? Effect.timeout(call, afterMs) : call)
            fibers.push(fiber)
            if (fate === 2) yield* Effect.fork(Effect.zipRight(Effect.sleep(afterMs), Fiber.interrupt(fiber)))
            if (i % 20 === 19) yield* Effect.sleep(1)
          }
          yield* Effect.forEach(fibers, (fiber) => Effect.timeoutFail(Fiber.await(fiber), { duration: "10 seconds", onTimeout: () => "hung" }))
          yield* assertAllFree
        }),
        limiterOn(server.url)
      )
    }).pipe(Effect.withRandom(Random.make(7))), 30_000)

  it.scopedLive("a caller interrupted while Redis books its reservation gives it back", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      let target: Fiber.RuntimeFiber<unknown, unknown> | undefined
      const racing = Layer.effect(
        Backend.Backend,
        Effect.map(Backend.Backend, (redis) => ({
          ...redis,
          reserve: (bucket, charge, maxWaitMs) =>
            Effect.tap(redis.reserve(bucket, charge, maxWaitMs), () => Effect.sync(() => target?.unsafeInterruptAsFork(FiberId.none)))
        }) satisfies Backend.BackendService)
      ).pipe(Layer.provide(RedisBackend.layer({ url: server.url, namespace: `edges${++namespaces}` })))
      yield* Effect.provide(
        Effect.gen(function*() {
          const holders = yield* Effect.forEach(Array.from({ length: SLOTS }), () => Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.sleep(200))))
          yield* Effect.sleep(100)
          const waiting = yield* Effect.fork(RateLimited.submit({ bucket: "slots" }, Effect.never))
          yield* Effect.sleep(20)
          target = waiting
          yield* Effect.forEach(holders, Fiber.join)
          assert.isTrue(Exit.isInterrupted(yield* Fiber.await(waiting)))
          target = undefined
          yield* assertAllFree
        }),
        RateLimited.layer(config).pipe(Layer.provide(racing))
      )
    }), 30_000)

  it.scopedLive("maxWait: 0 admits every call that fits an empty bucket", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      yield* Effect.provide(
        Effect.gen(function*() {
          const exits = yield* Effect.forEach(
            Array.from({ length: 20 }),
            () => Effect.exit(RateLimited.submit({ bucket: "rpm" }, Effect.void, { maxWait: 0 })),
            { concurrency: "unbounded" }
          )
          assert.strictEqual(exits.filter(Exit.isSuccess).length, 20)
        }),
        limiterOn(server.url)
      )
    }), 30_000)

  it.scopedLive("room another limiter makes reaches a waiter at once, and waiting asks Redis about once per poll", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const namespace = `edges${++namespaces}`
      // Two limiters on one namespace: two processes, as Redis sees them.
      const a = yield* Layer.build(limiterOn(server.url, namespace))
      const b = yield* Layer.build(limiterOn(server.url, namespace))
      const held = yield* Scope.make()
      yield* RateLimited.reserve({ bucket: "one" }).pipe(Scope.extend(held), Effect.provide(a))
      const waiting = yield* Effect.fork(Effect.provide(RateLimited.submit({ bucket: "one" }, Clock.currentTimeMillis), b))
      yield* Effect.sleep(300)
      const fcalls = Effect.map(Effect.promise(() => server.cli("info", "commandstats")), (info) => commandCalls(info).fcall ?? 0)
      const before = yield* fcalls
      yield* Effect.sleep(2_000)
      const asked = (yield* fcalls) - before
      const releasedAt = yield* Clock.currentTimeMillis
      yield* Scope.close(held, Exit.void)
      const admittedAt = yield* Fiber.join(waiting)
      // The default poll is 500 ms: 4 in 2 seconds, and a margin.
      assert.isAtMost(asked, 6, "reserves while waiting 2 seconds")
      assert.isBelow(admittedAt - releasedAt, 100, "ms from the release to the admission")
    }), 30_000)
})
