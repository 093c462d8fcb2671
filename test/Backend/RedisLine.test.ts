/**
 * The waiting line a bucket keeps in Redis (lua/line.lua), operation by operation: the oldest place goes first,
 * a later caller goes ahead only on quotas the places before it do not charge, a place goes when its caller
 * is admitted, leaves or stops asking, and room made for the line is published on the bucket's channel.
 * Against a real redis-server, on its clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { wakeChannel } from "../../src/internal/redis/keys.js"
import { makeStore, tokens } from "../../src/internal/redis/store.js"
import type { Bucket } from "../../src/Quota.js"
import { redisServer } from "../support/redisServer.js"

/** 1,000 tokens a second in a bucket of 1,000, and 10 images a second in a bucket of 10. */
const chat: Bucket = {
  name: "chat",
  quotas: [
    { metric: "tokens", limit: 1_000, windowMs: 1_000, algorithm: "token-bucket", refunds: true },
    { metric: "images", limit: 10, windowMs: 1_000, algorithm: "token-bucket", refunds: true }
  ],
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: Number.MAX_SAFE_INTEGER
}

const storeOn = Effect.gen(function*() {
  const server = yield* redisServer()
  const connect = Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis(server.port, { host: "127.0.0.1", lazyConnect: true })
      await client.connect()
      return client
    }),
    (c) => Effect.promise(() => c.quit())
  )
  const client = yield* connect
  const store = makeStore(client, { namespace: "line", reservationTtlMs: 60_000, commandTimeoutMs: 2_000 })
  yield* Effect.orDie(store.load)
  const token = tokens()
  const reserve = (charge: ReadonlyArray<number>, place?: string, ttlMs = 5_000) =>
    Effect.map(Effect.orDie(store.reserve(chat, charge, 0, token(), place === undefined ? undefined : { name: place, ttlMs })), (r) => r.value)
  return { server, store, reserve, connect }
})

describe("RedisStore: the waiting line", () => {
  it.scopedLive("the oldest place goes first; a smaller call that would fit sooner waits behind it", () =>
    Effect.gen(function*() {
      const { reserve } = yield* storeOn
      assert.strictEqual((yield* reserve([1_000, 0]))._tag, "Reserved")
      const big = yield* reserve([1_000, 0], "big")
      assert.strictEqual(big._tag, "Wait")
      yield* Effect.sleep(150)
      // 150 tokens have come back: enough for the small call, which would delay the big one.
      const small = yield* reserve([100, 0], "small")
      assert.strictEqual(small._tag, "Wait")
      assert.isAbove(small._tag === "Wait" ? small.retryAfterMs : 0, 700, "the small call waits for the big one")
      yield* Effect.sleep(small._tag === "Wait" ? small.retryAfterMs + 10 : 0)
      assert.strictEqual((yield* reserve([100, 0], "small"))._tag, "Wait", "still behind the big one, which has not asked again")
      assert.strictEqual((yield* reserve([1_000, 0], "big"))._tag, "Reserved")
      yield* Effect.sleep(120)
      assert.strictEqual((yield* reserve([100, 0], "small"))._tag, "Reserved")
    }))

  it.scopedLive("a later call goes ahead on a quota the places before it do not charge", () =>
    Effect.gen(function*() {
      const { reserve } = yield* storeOn
      assert.strictEqual((yield* reserve([1_000, 0]))._tag, "Reserved")
      assert.strictEqual((yield* reserve([1_000, 0], "big"))._tag, "Wait")
      assert.strictEqual((yield* reserve([0, 1], "image"))._tag, "Reserved", "images cannot delay a call charging only tokens")
      assert.strictEqual((yield* reserve([1, 1], "both"))._tag, "Wait", "a token can")
    }))

  it.scopedLive("a place goes when its caller leaves, or when its process stops asking", () =>
    Effect.gen(function*() {
      const { reserve, store } = yield* storeOn
      assert.strictEqual((yield* reserve([1_000, 0]))._tag, "Reserved")
      assert.strictEqual((yield* reserve([1_000, 0], "gone", 300))._tag, "Wait")
      assert.strictEqual((yield* reserve([1_000, 0], "leaving"))._tag, "Wait")
      yield* Effect.sleep(200)
      assert.strictEqual((yield* reserve([100, 0]))._tag, "Wait")
      yield* Effect.sleep(150)
      // "gone" expired without asking again; "leaving" is still there.
      assert.strictEqual((yield* reserve([100, 0]))._tag, "Wait")
      assert.isTrue((yield* Effect.orDie(store.leave(chat, "leaving"))).value)
      assert.isFalse((yield* Effect.orDie(store.leave(chat, "leaving"))).value)
      assert.strictEqual((yield* reserve([100, 0]))._tag, "Reserved")
    }))

  it.scopedLive("a call too large for a quota loses its place", () =>
    Effect.gen(function*() {
      const { reserve } = yield* storeOn
      assert.strictEqual((yield* reserve([1_000, 0]))._tag, "Reserved")
      assert.strictEqual((yield* reserve([1_000, 0], "big"))._tag, "Wait")
      assert.strictEqual((yield* reserve([2_000, 0], "big"))._tag, "TooLarge")
      yield* Effect.sleep(120)
      assert.strictEqual((yield* reserve([100, 0]))._tag, "Reserved")
    }))

  it.scopedLive("room made while someone waits is published on the bucket's channel, and only then", () =>
    Effect.gen(function*() {
      const { connect, reserve, store } = yield* storeOn
      const listener = yield* connect
      const messages: Array<string> = []
      listener.on("message", (channel: string) => messages.push(channel))
      yield* Effect.promise(() => listener.subscribe(wakeChannel("line", "chat")))
      const first = yield* reserve([500, 0])
      assert.strictEqual(first._tag, "Reserved")
      yield* Effect.orDie(store.settle(chat, first._tag === "Reserved" ? first.id : "", [100, undefined]))
      yield* Effect.sleep(50)
      assert.deepStrictEqual(messages, [], "nobody waits: nothing published")
      const second = yield* reserve([500, 0])
      assert.strictEqual((yield* reserve([1_000, 0], "big"))._tag, "Wait")
      yield* Effect.orDie(store.settle(chat, second._tag === "Reserved" ? second.id : "", [100, undefined]))
      yield* Effect.sleep(50)
      assert.deepStrictEqual(messages, [wakeChannel("line", "chat")])
    }))
})
