/**
 * Reserves whose answer was lost: every reserve carries a token chosen by the client, so that it can be given
 * back by that token whether or not it ran, and a reserve that arrives after its release (a stalled connection)
 * books nothing. Against a real redis-server, on its clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { makeStore, tokens } from "../../src/internal/redis/store.js"
import type { Bucket } from "../../src/Quota.js"
import { redisServer } from "../support/redisServer.js"

const slots: Bucket = {
  name: "slots",
  quotas: [{ metric: "requests", limit: 2, windowMs: 0, algorithm: "concurrency", refunds: true }],
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: Number.MAX_SAFE_INTEGER
}

const storeOn = (ttlMs: number) =>
  Effect.gen(function*() {
    const server = yield* redisServer()
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new Redis(server.port, { host: "127.0.0.1", lazyConnect: true })),
      (c) => Effect.promise(() => c.quit())
    )
    yield* Effect.promise(() => client.connect())
    const store = makeStore(client, { namespace: "tokens", reservationTtlMs: ttlMs, commandTimeoutMs: 2_000 })
    yield* Effect.orDie(store.load)
    return { client, store }
  })

const used = (store: ReturnType<typeof makeStore>) => Effect.map(Effect.orDie(store.status(slots, [1])), ({ value }) => value.quotas[0].used)

describe("RedisStore: reservations by the client's token", () => {
  it.scopedLive("a reserve that ran is released by its token", () =>
    Effect.gen(function*() {
      const { store } = yield* storeOn(60_000)
      const next = tokens()
      const token = next()
      const { value } = yield* Effect.orDie(store.reserve(slots, [1], 0, token))
      assert.strictEqual(value._tag, "Reserved")
      assert.strictEqual(yield* used(store), 1)
      assert.isTrue((yield* Effect.orDie(store.releaseToken(slots, token))).value)
      assert.strictEqual(yield* used(store), 0)
    }))

  it.scopedLive("a reserve that arrives after its token was released books nothing", () =>
    Effect.gen(function*() {
      const { store } = yield* storeOn(60_000)
      const token = tokens()()
      assert.isFalse((yield* Effect.orDie(store.releaseToken(slots, token))).value)
      const { value } = yield* Effect.orDie(store.reserve(slots, [1], 0, token))
      assert.strictEqual(value._tag, "Wait")
      assert.strictEqual(yield* used(store), 0)
      assert.strictEqual((yield* Effect.orDie(store.status(slots, [1]))).value.open, 0)
    }))

  it.scopedLive("tombstones go once reservationTtl has passed", () =>
    Effect.gen(function*() {
      const { client, store } = yield* storeOn(300)
      const token = tokens()()
      yield* Effect.orDie(store.releaseToken(slots, token))
      const fields = () => Effect.promise(() => client.hkeys("{tokens:slots}:s"))
      assert.include(yield* fields(), `x${token}`)
      yield* Effect.sleep(400)
      // Any call on the bucket sweeps what has expired.
      yield* Effect.orDie(store.status(slots, [1]))
      assert.notInclude(yield* fields(), `x${token}`)
      // And the token can no longer block anything: a new reserve with it books.
      assert.strictEqual((yield* Effect.orDie(store.reserve(slots, [1], 0, token))).value._tag, "Reserved")
    }))

  it.scopedLive("a token of the wrong shape is refused, and books nothing", () =>
    Effect.gen(function*() {
      const { store } = yield* storeOn(60_000)
      for (const token of ["", "a-b", "x".repeat(65), "state"]) {
        const exit = yield* Effect.exit(store.reserve(slots, [1], 0, token))
        if (token === "state") {
          // Letters only, like any token: it books under "<ms>-state", which is no field of the state.
          assert.isTrue(exit._tag === "Success")
          continue
        }
        assert.strictEqual(exit._tag, "Failure", token)
      }
      assert.strictEqual(yield* used(store), 1)
    }))
})
