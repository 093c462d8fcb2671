/**
 * Redis going away mid-run: killed (connections refused) or hung (nothing answers), then back with its state
 * lost. Each failure policy does what it says within a bounded time, and the same backend works again after.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Metric } from "effect"
import * as RedisBackend from "../../src/Backend/Redis.js"
import type { BackendService, ReserveResult } from "../../src/Backend.js"
import { BackendUnavailable } from "../../src/Errors.js"
import type { Bucket } from "../../src/Quota.js"
import { redisServer } from "../support/redisServer.js"

const bucket: Bucket = {
  name: "faults",
  quotas: [{ metric: "requests", limit: 10, windowMs: 60_000, algorithm: "token-bucket", refunds: true }],
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: 1000
}

/** The bound on one call while Redis is away: 3 attempts of at most 300 ms, and the delays between them. */
const COMMAND_TIMEOUT = 300
const BOUND_MS = 3 * COMMAND_TIMEOUT + 2 * 100 + 150

const options = (url: string, onUnavailable: RedisBackend.UnavailablePolicy): RedisBackend.RedisBackendOptions => ({
  url,
  namespace: onUnavailable,
  onUnavailable,
  localShare: 0.5,
  commandTimeout: `${COMMAND_TIMEOUT} millis`,
  retry: { times: 2, base: "20 millis", maxDelay: "100 millis" }
})

const timed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const start = Date.now()
    const result = yield* Effect.either(effect)
    return { result, ms: Date.now() - start }
  })

const isRedisId = (result: ReserveResult) =>
  result._tag === "Reserved" && !result.reservation.id.startsWith("open:") && !result.reservation.id.startsWith("local:")

/** Retries until the backend books in Redis again (the client reconnects on its own). */
const untilBackInRedis = (backend: BackendService) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 8_000
    for (;;) {
      const result = yield* Effect.either(backend.reserve(bucket, [1], 0))
      if (Either.isRight(result) && isRedisId(result.right)) return result.right
      if (Date.now() > deadline) return yield* Effect.dieMessage(`still not back in Redis: ${JSON.stringify(result)}`)
      yield* Effect.sleep("50 millis")
    }
  })

const count = (counter: typeof RedisBackend.failOpenAdmissions) => Effect.map(Metric.value(counter), (state) => state.count)

describe("RedisBackend when Redis goes away", () => {
  it.scopedLive("fail-closed fails in bounded time, fail-open admits, local admits within its share; all recover", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const closed = yield* RedisBackend.make(options(server.url, "fail-closed"))
      const open = yield* RedisBackend.make(options(server.url, "fail-open"))
      const local = yield* RedisBackend.make(options(server.url, "local"))
      for (const backend of [closed, open, local]) assert.isTrue(isRedisId(yield* backend.reserve(bucket, [1], 0)))
      const held = yield* local.reserve(bucket, [1], 0) // a Redis reservation still open during the outage

      // Killed: connections are refused.
      yield* Effect.promise(() => server.stop())

      const reserve = yield* timed(closed.reserve(bucket, [1], 0))
      assert.isTrue(Either.isLeft(reserve.result) && reserve.result.left instanceof BackendUnavailable, JSON.stringify(reserve.result))
      assert.isBelow(reserve.ms, BOUND_MS)
      const status = yield* timed(closed.status(bucket, [1]))
      assert.isTrue(Either.isLeft(status.result) && status.result.left instanceof BackendUnavailable)
      assert.isBelow(status.ms, BOUND_MS)

      const openBefore = yield* count(RedisBackend.failOpenAdmissions)
      for (let i = 0; i < 20; i++) {
        const admitted = yield* timed(open.reserve(bucket, [1], 0))
        assert.isTrue(Either.isRight(admitted.result) && admitted.result.right._tag === "Reserved")
        assert.isBelow(admitted.ms, BOUND_MS)
        if (Either.isRight(admitted.result) && admitted.result.right._tag === "Reserved") {
          yield* open.settle(bucket, admitted.result.right.reservation.id, [1])
        }
      }
      assert.strictEqual((yield* count(RedisBackend.failOpenAdmissions)) - openBefore, 20)

      // The local share is half of 10: five calls now, the sixth waits (a token every 12 s at the half rate).
      const localBefore = yield* count(RedisBackend.localAdmissions)
      const localIds: Array<string> = []
      for (let i = 0; i < 6; i++) {
        const result = yield* local.reserve(bucket, [1], 0)
        if (result._tag === "Reserved") localIds.push(result.reservation.id)
        else assert.strictEqual(i, 5)
      }
      assert.strictEqual(localIds.length, 5)
      assert.isTrue(localIds.every((id) => id.startsWith("local:")))
      assert.strictEqual((yield* count(RedisBackend.localAdmissions)) - localBefore, 5)
      const localStatus = yield* local.status(bucket, [1])
      assert.strictEqual(localStatus.quotas[0].capacity, 5)
      assert.isAbove(localStatus.waitMs, 10_000)
      // A Redis reservation cannot be settled without Redis; under `local` that is not the caller's problem.
      if (held._tag === "Reserved") yield* local.settle(bucket, held.reservation.id, [1])

      // Back, empty.
      yield* Effect.promise(() => server.restart())
      for (const backend of [closed, open, local]) yield* untilBackInRedis(backend)
      const fresh = yield* closed.status(bucket, [1])
      assert.closeTo(fresh.quotas[0].used, 1, 0.2) // only the reservation made since the restart (draining)
      // Local reservations are still settled locally.
      for (const id of localIds) yield* local.settle(bucket, id, [1])
    }), 60_000)

  it.scopedLive("a hung Redis: every call ends within the bound", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const closed = yield* RedisBackend.make(options(server.url, "fail-closed"))
      const open = yield* RedisBackend.make(options(server.url, "fail-open"))
      const id = (yield* closed.reserve(bucket, [1], 0))
      assert.isTrue(isRedisId(id))
      server.pause()

      const reserve = yield* timed(closed.reserve(bucket, [1], 0))
      assert.isTrue(Either.isLeft(reserve.result) && reserve.result.left instanceof BackendUnavailable)
      // A reserve that may have run is not retried: one command timeout.
      assert.isBelow(reserve.ms, COMMAND_TIMEOUT + 150)
      assert.isAtLeast(reserve.ms, COMMAND_TIMEOUT - 20)

      if (id._tag === "Reserved") {
        const settle = yield* timed(closed.settle(bucket, id.reservation.id, [1]))
        assert.isTrue(Either.isLeft(settle.result) && settle.result.left instanceof BackendUnavailable)
        assert.isBelow(settle.ms, BOUND_MS)
      }
      const admitted = yield* timed(open.reserve(bucket, [1], 0))
      assert.isTrue(Either.isRight(admitted.result) && admitted.result.right._tag === "Reserved")
      assert.isBelow(admitted.ms, BOUND_MS)

      // The shared circuit breaker stands aside after one command timeout, and the call runs.
      const breaker = closed.breaker?.({ failureThreshold: 1, failureWindow: 10_000, openFor: 10_000 })
      assert.isDefined(breaker)
      const guarded = yield* timed(breaker.guard("chat", Effect.succeed("ran")))
      assert.isTrue(Either.isRight(guarded.result) && guarded.result.right === "ran")
      assert.isBelow(guarded.ms, COMMAND_TIMEOUT + 150)

      server.resume()
      yield* untilBackInRedis(closed)
      yield* untilBackInRedis(open)
    }), 60_000)

  it.scopedLive("starting while Redis is down: fail-open and local start and use Redis once it is up", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      yield* Effect.promise(() => server.stop())
      const local = yield* RedisBackend.make({ ...options(server.url, "local"), connectTimeout: "300 millis" })
      const first = yield* local.reserve(bucket, [1], 0)
      assert.isTrue(first._tag === "Reserved" && first.reservation.id.startsWith("local:"))
      yield* Effect.promise(() => server.restart())
      yield* untilBackInRedis(local)
    }), 60_000)

  it.scopedLive("a settle that timed out but ran: the retry finds nothing open, and the settle still succeeds", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* RedisBackend.make({
        url: server.url,
        namespace: "uncertain",
        commandTimeout: "200 millis",
        retry: { times: 2, base: "20 millis", maxDelay: "40 millis" }
      })
      const reserved = yield* backend.reserve(bucket, [1], 0)
      assert.isTrue(isRedisId(reserved))
      if (reserved._tag !== "Reserved") return
      server.pause()
      const settle = yield* Effect.fork(Effect.either(backend.settle(bucket, reserved.reservation.id, [1])))
      // The first attempt times out at 200 ms and is sent again; Redis then runs both, in order.
      yield* Effect.sleep("260 millis")
      server.resume()
      const result = yield* settle.await
      assert.isTrue(result._tag === "Success" && Either.isRight(result.value), JSON.stringify(result))
      assert.strictEqual((yield* backend.status(bucket, [1])).open, 0)
    }))
})
