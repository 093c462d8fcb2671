import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Exit, Fiber, Layer, Scope } from "effect"
import { Redis } from "ioredis"
import * as RedisBackend from "../../src/Backend/Redis.js"
import type { BackendService, ReserveResult } from "../../src/Backend.js"
import { CapacityExceeded, ReservationNotFound } from "../../src/Errors.js"
import * as RateLimited from "../../src/RateLimited.js"
import { bucketTag, scriptKeys } from "../../src/internal/redis/keys.js"
import { readFileSync } from "node:fs"
import { calls } from "../../src/internal/redis/library.js"
import { classify, configArg } from "../../src/internal/redis/store.js"
import type { Bucket, LimiterConfig, Quota } from "../../src/Quota.js"
import { commandCalls, redisServer, type RedisServer } from "../support/redisServer.js"

const bucketOf = (name: string, ...quotas: ReadonlyArray<Quota>): Bucket => ({
  name,
  quotas,
  safetyRatio: 1,
  burstMultiplier: 1,
  skew: 0,
  maxQueue: 1000
})

const requests = (limit: number, windowMs = 60_000): Quota => ({
  metric: "requests",
  limit,
  windowMs,
  algorithm: "token-bucket",
  refunds: true
})

const tokens = (limit: number, windowMs = 60_000): Quota => ({ metric: "tokens", limit, windowMs, algorithm: "sliding-window", refunds: true })

const slots = (limit: number): Quota => ({ metric: "requests", limit, windowMs: 0, algorithm: "concurrency", refunds: true })

/** A plain client for looking at the server from outside. */
const inspector = (server: RedisServer) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const client = new Redis(server.port, { host: "127.0.0.1", lazyConnect: true })
      await client.connect()
      return client
    }),
    (client) => Effect.promise(() => client.quit())
  )

const reservedId = (result: ReserveResult): string => {
  if (result._tag !== "Reserved") throw new Error(`expected a reservation, got ${JSON.stringify(result)}`)
  return result.reservation.id
}

const backendOn = (server: RedisServer, options: RedisBackend.RedisBackendOptions = {}) =>
  RedisBackend.make({ url: server.url, ...options })

describe("RedisBackend", () => {
  it.scopedLive("reserves, settles, releases, and maps outcomes to the typed errors", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { namespace: "basics" })
      const chat = bucketOf("chat", requests(2), tokens(100))

      const first = yield* backend.reserve(chat, [1, 60], 0)
      assert.strictEqual(first._tag, "Reserved")
      const second = yield* backend.reserve(chat, [1, 60], 0)
      assert.strictEqual(second._tag, "Wait") // 120 tokens > 100 in the window
      yield* backend.settle(chat, reservedId(first), [undefined, 20]) // refund 40
      const third = yield* backend.reserve(chat, [1, 60], 0)
      const thirdId = reservedId(third)
      const status = yield* backend.status(chat, [1, 1])
      assert.strictEqual(status.open, 1)
      assert.closeTo(status.quotas[0].used, 2, 0.01) // the token bucket drains as time passes
      assert.strictEqual(status.quotas[1].used, 80)
      assert.strictEqual(status.quotas[1].remaining, 20)
      assert.strictEqual(status.quotas[0].capacity, 2)

      yield* backend.release(chat, thirdId)
      const after = yield* backend.status(chat, [0, 0])
      assert.closeTo(after.quotas[0].used, 1, 0.01)
      assert.strictEqual(after.quotas[1].used, 20)
      assert.strictEqual(after.open, 0)

      const twice = yield* Effect.either(backend.settle(chat, thirdId, []))
      assert.isTrue(Either.isLeft(twice) && twice.left instanceof ReservationNotFound)
      const unknown = yield* Effect.either(backend.release(chat, "no-such-id"))
      assert.isTrue(Either.isLeft(unknown) && unknown.left instanceof ReservationNotFound)

      const huge = yield* Effect.either(backend.reserve(chat, [1, 101], 0))
      assert.isTrue(Either.isLeft(huge) && huge.left instanceof CapacityExceeded && huge.left.reason === "too-large" && huge.left.metric === "tokens")

      const wait = yield* backend.reserve(bucketOf("slots", slots(1)), [1], 0)
      assert.strictEqual(wait._tag, "Reserved")
      const blocked = yield* backend.reserve(bucketOf("slots", slots(1)), [1], 1000)
      assert.deepStrictEqual(blocked, { _tag: "Wait", retryAfterMs: Infinity })
    }))

  it.scopedLive("books in the future within maxWait, at the time the pure math gives", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server)
      const rpm = bucketOf("rpm", requests(2, 1000)) // one request per 500 ms
      const a = yield* backend.reserve(rpm, [1], 0)
      const b = yield* backend.reserve(rpm, [1], 0)
      const c = yield* backend.reserve(rpm, [1], 2000)
      assert.isTrue(a._tag === "Reserved" && b._tag === "Reserved" && c._tag === "Reserved")
      if (a._tag === "Reserved" && c._tag === "Reserved") {
        assert.closeTo(c.reservation.at - a.reservation.at, 500, 20)
      }
      const status = yield* backend.status(rpm, [1])
      assert.strictEqual(status.booked, 1)
      assert.isAbove(status.waitMs, 400)
    }))

  it.scopedLive("observe: a retry hint blocks every process sharing the bucket; reported usage raises ours", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const one = yield* backendOn(server, { namespace: "observe" })
      const two = yield* backendOn(server, { namespace: "observe" })
      const chat = bucketOf("chat", requests(10, 1000), tokens(1000, 1000), slots(5))
      reservedId(yield* two.reserve(chat, [1, 100, 1], 0))

      yield* one.observe(chat, [6, 700, 3], 300) // concurrency learns nothing from headers
      const status = yield* two.status(chat, [1, 1, 1])
      assert.closeTo(status.quotas[0].used, 6, 0.1)
      assert.strictEqual(status.quotas[1].used, 700)
      assert.strictEqual(status.quotas[2].used, 1)
      assert.closeTo(status.waitMs, 300, 20)
      const blocked = yield* two.reserve(chat, [1, 1, 1], 0)
      assert.isTrue(blocked._tag === "Wait" && blocked.retryAfterMs > 250 && blocked.retryAfterMs <= 300, JSON.stringify(blocked))
      const later = yield* two.reserve(chat, [1, 1, 1], 1000)
      assert.isTrue(later._tag === "Reserved")

      // A lower report never lowers ours.
      yield* one.observe(chat, [0, 0, undefined], 0)
      assert.strictEqual((yield* two.status(chat, [0, 0, 0])).quotas[1].used, 701)
    }))

  it.scopedLive("one FCALL per operation, nothing else", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { namespace: "roundtrips" })
      const look = yield* inspector(server)
      const bucket = bucketOf("rt", requests(1_000_000), tokens(1_000_000), slots(1_000))
      const N = 50
      const before = commandCalls(yield* Effect.promise(() => look.info("commandstats")))
      const ids: Array<string> = []
      for (let i = 0; i < N; i++) ids.push(reservedId(yield* backend.reserve(bucket, [1, 10, 1], 0)))
      for (const id of ids) yield* backend.settle(bucket, id, [undefined, 5, undefined])
      const after = commandCalls(yield* Effect.promise(() => look.info("commandstats")))
      const delta = (command: string) => (after[command] ?? 0) - (before[command] ?? 0)
      assert.strictEqual(delta("fcall"), 2 * N)
      for (const other of ["evalsha", "eval", "function|load", "script|load"]) assert.strictEqual(delta(other), 0, other)
    }))

  it.scopedLive("a server that lost the library (FUNCTION FLUSH) gets it again, and the call runs once", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { namespace: "flushed" })
      const look = yield* inspector(server)
      const bucket = bucketOf("flushed", slots(10))
      reservedId(yield* backend.reserve(bucket, [4], 0))
      yield* Effect.promise(() => look.call("FUNCTION", "FLUSH"))
      reservedId(yield* backend.reserve(bucket, [4], 0))
      assert.strictEqual((yield* backend.reserve(bucket, [4], 0))._tag, "Wait")
      assert.strictEqual((yield* backend.status(bucket, [0])).quotas[0].used, 8)
      const stats = commandCalls(yield* Effect.promise(() => look.info("commandstats")))
      assert.strictEqual(stats["function|load"], 2)
    }))

  it.scopedLive("runs as scripts for a user whose ACL refuses FUNCTION", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      yield* Effect.promise(() => server.cli("ACL", "SETUSER", "limited", "on", ">secret", "~*", "&*", "+@all", "-function"))
      const backend = yield* RedisBackend.make({ url: `redis://limited:secret@127.0.0.1:${server.port}`, namespace: "acl" })
      const bucket = bucketOf("acl", slots(2))
      reservedId(yield* backend.reserve(bucket, [1], 0))
      reservedId(yield* backend.reserve(bucket, [1], 0))
      assert.strictEqual((yield* backend.reserve(bucket, [1], 0))._tag, "Wait")
      const look = yield* inspector(server)
      const stats = commandCalls(yield* Effect.promise(() => look.info("commandstats")))
      assert.strictEqual(stats.evalsha, 3)
      assert.strictEqual(stats.fcall ?? 0, 0)
    }))

  it.scopedLive("a bucket another writer changed is read afresh, not from what this server's library remembers", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { namespace: "writers" })
      const look = yield* inspector(server)
      const bucket = bucketOf("shared", slots(3))
      reservedId(yield* backend.reserve(bucket, [1], 0))
      // The same operation as a script runs in Redis's other Lua VM, which shares no memory with the library.
      const keys = scriptKeys("writers", bucket)
      const reply = yield* Effect.promise(() => look.eval(calls.reserve.lua, keys.length, ...keys, configArg(bucket, 600_000), "1", "0", "t0", "", ""))
      assert.isTrue(Array.isArray(reply) && reply[0] === "R", JSON.stringify(reply))
      reservedId(yield* backend.reserve(bucket, [1], 0))
      assert.strictEqual((yield* backend.reserve(bucket, [1], 0))._tag, "Wait")
      assert.strictEqual((yield* backend.status(bucket, [0])).open, 3)
    }))

  it.scopedLive("a token bucket's state as 0.1.0 wrote it (without its window) is read, not dropped", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { namespace: "legacy" })
      const look = yield* inspector(server)
      const tokens: Quota = { metric: "tokens", limit: 1_000, windowMs: 60_000, algorithm: "token-bucket", refunds: true }
      const bucket = bucketOf("legacy", tokens, slots(3))
      reservedId(yield* backend.reserve(bucket, [600, 1], 0))
      const [stateKey] = scriptKeys("legacy", bucket)
      const state = yield* Effect.promise(() => look.hgetBuffer(stateKey, "state"))
      assert.isNotNull(state)
      // "tc " + the header (48 bytes) + the token bucket (56, its window last) + the concurrency quota (8).
      const prefix = 3 + 48
      const legacy = Buffer.concat([state!.subarray(0, prefix + 48), state!.subarray(prefix + 56)])
      yield* Effect.promise(() => look.hset(stateKey, "state", legacy))
      const status = yield* backend.status(bucket, [0, 0])
      assert.isAtLeast(status.quotas[0].used, 590, "what was booked before the upgrade")
      assert.strictEqual(status.quotas[1].used, 1)
      assert.strictEqual((yield* backend.reserve(bucket, [500, 1], 0))._tag, "Wait")
    }))

  it.scopedLive("an error raised in the Lua names the file and line it comes from, as a function and as a script", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { namespace: "lines" })
      const look = yield* inspector(server)
      const bucket = bucketOf("lines", slots(3))
      reservedId(yield* backend.reserve(bucket, [1], 0)) // the library is loaded
      const keys = scriptKeys("lines", bucket)
      // Amounts that are not numbers: reserve compares nil with the quota's capacity.
      const args = [configArg(bucket, 600_000), "x", "x", "t0", "", ""]
      const lines = readFileSync(new URL("../../src/internal/redis/lua/reserve.lua", import.meta.url), "utf8").split("\n")
      for (const send of [() => look.fcall(calls.reserve.function, keys.length, ...keys, ...args), () => look.eval(calls.reserve.lua, keys.length, ...keys, ...args)]) {
        const error = yield* Effect.flip(Effect.tryPromise({ try: send, catch: classify }))
        const at = /\(lua\/reserve\.lua:(\d+)\)$/.exec(error.message)
        assert.isNotNull(at, error.message)
        assert.include(lines[Number(at![1]) - 1], "amount > Q[i].cap", error.message)
      }
    }))

  it.scopedLive("more buckets and configurations than the library remembers: each still reads its own state", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { namespace: "many" })
      // 1,100 buckets, 300 configurations: past both memos' bounds, so each is cleared at least once.
      const buckets = Array.from({ length: 1_100 }, (_, i) => bucketOf(`b${i}`, slots(2 + (i % 300))))
      yield* Effect.forEach(buckets, (bucket) => Effect.map(backend.reserve(bucket, [2], 0), reservedId), { concurrency: 32, discard: true })
      for (const bucket of buckets.slice(0, 20)) {
        const status = yield* backend.status(bucket, [0])
        assert.strictEqual(status.quotas[0].used, 2, bucket.name)
        assert.strictEqual(status.open, 1, bucket.name)
      }
      assert.strictEqual((yield* backend.reserve(buckets[0], [1], 0))._tag, "Wait")
    }))

  it.scopedLive("runs as scripts on a server without Functions (Redis 6)", () =>
    Effect.gen(function*() {
      const server = yield* redisServer({ args: ["--rename-command", "FCALL", "", "--rename-command", "FUNCTION", ""] })
      const backend = yield* backendOn(server, { namespace: "scripts" })
      const look = yield* inspector(server)
      const bucket = bucketOf("old", requests(10))
      const id = reservedId(yield* backend.reserve(bucket, [6], 0))
      assert.strictEqual((yield* backend.reserve(bucket, [6], 0))._tag, "Wait")
      yield* backend.release(bucket, id)
      reservedId(yield* backend.reserve(bucket, [6], 0))
      yield* Effect.promise(() => look.script("FLUSH"))
      assert.strictEqual((yield* backend.reserve(bucket, [6], 0))._tag, "Wait")
      const stats = commandCalls(yield* Effect.promise(() => look.info("commandstats")))
      // Four reserves and a release found their scripts; the last reserve found none (rejected, not counted) and
      // sent the script itself.
      assert.strictEqual(stats.evalsha, 5)
      assert.strictEqual(stats.eval, 1)
    }))

  it.scopedLive("namespaces are separate, odd names stay inside their namespace, and every key has a TTL", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const look = yield* inspector(server)
      const a = yield* backendOn(server, { namespace: "team-a" })
      const b = yield* backendOn(server, { namespace: "team-b" })
      const shared = bucketOf("shared", requests(1))
      reservedId(yield* a.reserve(shared, [1], 0))
      assert.strictEqual((yield* a.reserve(shared, [1], 0))._tag, "Wait")
      assert.strictEqual((yield* b.status(shared, [1])).quotas[0].used, 0)
      reservedId(yield* b.reserve(shared, [1], 0))

      // "a" + "b:c" and "a:b" + "c" must not meet.
      const x = yield* backendOn(server, { namespace: "a" })
      const y = yield* backendOn(server, { namespace: "a:b" })
      reservedId(yield* x.reserve(bucketOf("b:c", requests(1)), [1], 0))
      assert.strictEqual((yield* y.status(bucketOf("c", requests(1)), [1])).quotas[0].used, 0)

      const odd = bucketOf("a:b{c} d", requests(5), slots(2))
      const id = reservedId(yield* a.reserve(odd, [1, 1], 0))
      yield* a.settle(odd, id, [])
      reservedId(yield* a.reserve(odd, [1, 1], 0)) // one left open
      const keys = yield* Effect.promise(() => look.keys("*"))
      const tag = bucketTag("team-a", "a:b{c} d")
      assert.strictEqual(tag, "{team-a:a%3Ab%7Bc%7D%20d}")
      const oddKeys = keys.filter((key) => key.startsWith(`${tag}:`))
      assert.deepStrictEqual(oddKeys, [`${tag}:s`]) // the state, holding the open reservation
      assert.strictEqual(yield* Effect.promise(() => look.hlen(`${tag}:s`)), 2)
      for (const key of keys) {
        // Every key is "{namespace:bucket}:suffix" with exactly one tag, so it hashes by the tag.
        assert.match(key, /^\{[^{}]+\}:[a-z0-9:]+$/, key)
        const ttl = yield* Effect.promise(() => look.pttl(key))
        assert.isAbove(ttl, 0, `${key} has no TTL`)
      }
      assert.isTrue(keys.every((key) => !key.includes("{c}")))
    }))

  it.scopedLive("an orphaned reservation gives its concurrency slot back after reservationTtl", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { reservationTtl: "300 millis" })
      const one = bucketOf("one-slot", slots(1), requests(100, 1000))
      const orphan = reservedId(yield* backend.reserve(one, [1, 1], 0))
      assert.deepStrictEqual(yield* backend.reserve(one, [1, 1], 0), { _tag: "Wait", retryAfterMs: Infinity })
      yield* Effect.sleep("350 millis")
      const status = yield* backend.status(one, [1, 0])
      assert.strictEqual(status.open, 0)
      assert.strictEqual(status.quotas[0].used, 0)
      reservedId(yield* backend.reserve(one, [1, 1], 0))
      const late = yield* Effect.either(backend.settle(one, orphan, []))
      assert.isTrue(Either.isLeft(late) && late.left instanceof ReservationNotFound)
    }))

  it.scopedLive("a settle that comes after its reservation expired finds it reclaimed, and the slot comes back once", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const backend = yield* backendOn(server, { reservationTtl: "300 millis" })
      const one = bucketOf("late", slots(1))
      const orphan = reservedId(yield* backend.reserve(one, [1], 0))
      yield* Effect.sleep("350 millis")
      // The first call after the expiry: it reclaims the reservation it came to settle.
      const late = yield* Effect.either(backend.settle(one, orphan, [1]))
      assert.isTrue(Either.isLeft(late) && late.left instanceof ReservationNotFound)
      const status = yield* backend.status(one, [1])
      assert.strictEqual(status.open, 0)
      assert.strictEqual(status.quotas[0].used, 0)
      reservedId(yield* backend.reserve(one, [1], 0))
      assert.strictEqual((yield* backend.reserve(one, [1], 0))._tag, "Wait")
    }))

  it.scopedLive("a caller interrupted while Redis answers does not leak its booking", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const look = yield* inspector(server)
      const backend: BackendService = yield* backendOn(server, { commandTimeout: "2 seconds" })
      const one = bucketOf("interrupted", slots(1))
      const scriptCalls = Effect.map(Effect.promise(() => look.info("commandstats")), (info) => commandCalls(info).fcall ?? 0)
      const before = yield* scriptCalls
      server.pause()
      const fiber = yield* Effect.fork(backend.reserve(one, [1], 0))
      yield* Effect.sleep("50 millis")
      const interrupted = yield* Effect.fork(Fiber.interrupt(fiber))
      yield* Effect.sleep("50 millis")
      server.resume()
      const exit = yield* Fiber.join(interrupted)
      assert.isTrue(Exit.isInterrupted(exit))
      // The reserve call ran once Redis woke up, and a release gave its booking back.
      assert.strictEqual((yield* scriptCalls) - before, 2)
      const status = yield* backend.status(one, [1])
      assert.strictEqual(status.open, 0)
      assert.strictEqual(status.quotas[0].used, 0)
    }))

  it.scopedLive("the layer's scope owns the connection", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const look = yield* inspector(server)
      const clients = () => Effect.promise(async () => String(await look.client("LIST")).trim().split("\n").length)
      const before = yield* clients()
      const scope = yield* Scope.make()
      yield* Scope.extend(backendOn(server), scope)
      assert.strictEqual(yield* clients(), before + 1)
      yield* Scope.close(scope, Exit.void)
      yield* Effect.sleep("50 millis")
      assert.strictEqual(yield* clients(), before)

      // fail-closed with nothing listening: the layer fails at once.
      yield* Effect.promise(() => server.stop())
      const started = Date.now()
      const failed = yield* Effect.either(Effect.scoped(backendOn(server, { connectTimeout: "1 second" })))
      assert.isTrue(Either.isLeft(failed) && failed.left._tag === "BackendUnavailable")
      assert.isBelow(Date.now() - started, 1500)
    }))

  it.scopedLive("runs RateLimited.submit across two limiters sharing one Redis", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const config = { buckets: { chat: { quotas: [{ metric: "requests", limit: 4, window: 800 }] } } }
      const limiter = () => RateLimited.layer(config).pipe(Layer.provide(RedisBackend.layer({ url: server.url, namespace: "e2e" })))
      // Two processes' worth of limiters, each with its own connection: together they stay at 4 per 800 ms.
      const [one, two] = yield* Effect.all([Layer.build(limiter()), Layer.build(limiter())])
      const started = Date.now()
      const startTimes = yield* Effect.forEach(
        [one, two, one, two, one, two],
        (context) => RateLimited.submit({ bucket: "chat" }, Effect.sync(() => Date.now() - started)).pipe(Effect.provide(context)),
        { concurrency: "unbounded" }
      )
      const sorted = [...startTimes].sort((a, b) => a - b)
      assert.isBelow(sorted[3], 150) // the first four at once
      assert.isAtLeast(sorted[4], 190) // then one per 200 ms
      assert.isAtLeast(sorted[5], 390)
    }))

  it.scopedLive("shares its circuits: refusals one limiter sees open the circuit for the other, and one probe closes it", () =>
    Effect.gen(function*() {
      const server = yield* redisServer()
      const config: LimiterConfig = {
        provider: "openai",
        retry: { maxAttempts: 1 },
        breaker: { failureThreshold: 2, failureWindow: "10 seconds", openFor: "300 millis" },
        buckets: { chat: { quotas: [{ metric: "requests", limit: 1_000, window: "1 minute" }] } }
      }
      const limiter = () => RateLimited.layer(config).pipe(Layer.provide(RedisBackend.layer({ url: server.url, namespace: "breaker" })))
      const [one, two] = yield* Effect.all([Layer.build(limiter()), Layer.build(limiter())])
      const refused = Effect.succeed({ status: 429, headers: { "retry-after": "0" } })
      const ok = Effect.succeed({ status: 200, headers: {} })
      const call = (answer: typeof ok) =>
        Effect.flip(RateLimited.submit({ bucket: "chat" }, answer, { response: Exit.getOrElse(() => undefined) }))
      // Two refusals in the first limiter's process...
      assert.strictEqual((yield* Effect.provide(call(refused), one))._tag, "RateLimitedByProvider")
      assert.strictEqual((yield* Effect.provide(call(refused), one))._tag, "RateLimitedByProvider")
      // ...and the second one's calls fail fast.
      const open = yield* Effect.provide(call(ok), two)
      assert.strictEqual(open._tag, "CircuitOpen")
      // Once openFor has passed, one call probes; it succeeds and the circuit closes for both.
      yield* Effect.sleep("350 millis")
      const probe = yield* Effect.provide(RateLimited.submit({ bucket: "chat" }, ok, { response: Exit.getOrElse(() => undefined) }), two)
      assert.strictEqual(probe.status, 200)
      const after = yield* Effect.provide(RateLimited.submit({ bucket: "chat" }, ok, { response: Exit.getOrElse(() => undefined) }), one)
      assert.strictEqual(after.status, 200)
    }))
})
