/**
 * The Redis library against the pure math: one random sequence of operations (reserve, settle, release, observe,
 * status, lowering the limits and changing token buckets' windows, pauses) runs through Redis, and the same sequence is replayed through `BucketState` at the `now` each
 * call reported; once with the library's functions, once with its scripts (a server without Functions). Every answer must match, and the state must match at every status and at the end.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, FastCheck } from "effect"
import { Redis } from "ioredis"
import type { BackendStatus } from "../../src/Backend.js"
import { BucketState, type ReserveOutcome } from "../../src/internal/bucketState.js"
import { capacityOf } from "../../src/internal/meters.js"
import { makeStore, type RedisStore, tokens } from "../../src/internal/redis/store.js"
import type { Bucket, Quota } from "../../src/Quota.js"

const nextToken = tokens()
import { redisServer } from "../support/redisServer.js"

const TOLERANCE = 1e-6

const bucketOf = (name: string, quotas: ReadonlyArray<Quota>, safetyRatio = 1, burstMultiplier = 1, skew = 0): Bucket => ({
  name,
  quotas,
  safetyRatio,
  burstMultiplier,
  skew,
  maxQueue: 1000
})

const shapes: ReadonlyArray<Bucket> = [
  bucketOf("token-bucket", [{ metric: "tokens", limit: 10, windowMs: 300, algorithm: "token-bucket", refunds: true }], 0.9, 1.5, 7),
  bucketOf("sliding-window", [{ metric: "tokens", limit: 10, windowMs: 300, algorithm: "sliding-window", refunds: true }], 1, 1, 7),
  bucketOf("fixed-window", [{ metric: "tokens", limit: 10, windowMs: 250, algorithm: "fixed-window", refunds: false }]),
  bucketOf("concurrency", [{ metric: "requests", limit: 3, windowMs: 0, algorithm: "concurrency", refunds: true }]),
  bucketOf("multi", [
    { metric: "requests", limit: 5, windowMs: 250, algorithm: "token-bucket", refunds: true },
    { metric: "tokens", limit: 20, windowMs: 400, algorithm: "sliding-window", refunds: true },
    { metric: "tokens", limit: 30, windowMs: 500, algorithm: "fixed-window", refunds: false },
    { metric: "requests", limit: 2, windowMs: 0, algorithm: "concurrency", refunds: true }
  ], 0.9, 2)
]

type Op =
  | { readonly kind: "reserve"; readonly charge: ReadonlyArray<number>; readonly maxWaitMs: number }
  | { readonly kind: "settle"; readonly pick: number; readonly closed: boolean; readonly actual: ReadonlyArray<number | undefined> }
  | { readonly kind: "release"; readonly pick: number; readonly closed: boolean }
  | { readonly kind: "status"; readonly demand: ReadonlyArray<number> }
  | { readonly kind: "observe"; readonly used: ReadonlyArray<number | undefined>; readonly retryAfterMs: number }
  | { readonly kind: "sleep"; readonly ms: number }
  /**
   * Each quota runs at this share of its configured limit from now on (a provider reported lower limits), and a
   * token bucket over `windows` times its configured window (a provider reported another window).
   */
  | { readonly kind: "retune"; readonly shares: ReadonlyArray<number>; readonly windows?: ReadonlyArray<number> }

const opsFor = (bucket: Bucket): FastCheck.Arbitrary<ReadonlyArray<Op>> => {
  const n = bucket.quotas.length
  const top = Math.max(...bucket.quotas.map((q) => capacityOf(q, bucket.safetyRatio, bucket.burstMultiplier)))
  // Mostly small charges, sometimes zero, sometimes above capacity (too large).
  const amount = FastCheck.oneof(
    { arbitrary: FastCheck.integer({ min: 1, max: Math.max(1, Math.ceil(top / 2)) }), weight: 6 },
    { arbitrary: FastCheck.constant(0), weight: 2 },
    { arbitrary: FastCheck.integer({ min: 1, max: top + 2 }), weight: 1 }
  )
  const amounts = FastCheck.array(amount, { minLength: n, maxLength: n })
  // Mostly an open reservation; sometimes one already closed, which must be not-found on both sides.
  const closed = FastCheck.integer({ min: 0, max: 9 }).map((n) => n === 0)
  const actual = FastCheck.array(FastCheck.option(FastCheck.integer({ min: 0, max: top }), { nil: undefined }), { minLength: n, maxLength: n })
  const op: FastCheck.Arbitrary<Op> = FastCheck.oneof(
    {
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("reserve" as const),
        charge: amounts,
        maxWaitMs: FastCheck.constantFrom(0, 50, 400, Infinity)
      }),
      weight: 5
    },
    { arbitrary: FastCheck.record({ kind: FastCheck.constant("settle" as const), pick: FastCheck.nat(), closed, actual }), weight: 3 },
    { arbitrary: FastCheck.record({ kind: FastCheck.constant("release" as const), pick: FastCheck.nat(), closed }), weight: 2 },
    {
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("status" as const),
        demand: FastCheck.array(FastCheck.integer({ min: 0, max: 3 * top }), { minLength: n, maxLength: n })
      }),
      weight: 2
    },
    {
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("observe" as const),
        used: actual,
        retryAfterMs: FastCheck.constantFrom(-Infinity, -Infinity, 0, 60, 250)
      }),
      weight: 1
    },
    { arbitrary: FastCheck.record({ kind: FastCheck.constant("sleep" as const), ms: FastCheck.integer({ min: 1, max: 120 }) }), weight: 3 },
    {
      arbitrary: FastCheck.record({
        kind: FastCheck.constant("retune" as const),
        shares: FastCheck.array(FastCheck.constantFrom(0.3, 0.5, 0.8, 1), { minLength: n, maxLength: n }),
        windows: FastCheck.array(FastCheck.constantFrom(0.25, 0.5, 1, 1, 2, 4), { minLength: n, maxLength: n })
      }),
      weight: 1
    }
  )
  return FastCheck.array(op, { minLength: 20, maxLength: 40 })
}

const close = (a: number, b: number): boolean => a === b || Math.abs(a - b) <= TOLERANCE

const describeOutcome = (outcome: ReserveOutcome): string =>
  outcome._tag === "Reserved" ? `Reserved at ${outcome.at}` : outcome._tag === "Wait" ? `Wait ${outcome.retryAfterMs}` : `TooLarge ${outcome.metric}`

const sameOutcome = (redis: ReserveOutcome, pure: ReserveOutcome): boolean => {
  if (redis._tag === "Reserved" && pure._tag === "Reserved") return close(redis.at, pure.at)
  if (redis._tag === "Wait" && pure._tag === "Wait") return close(redis.retryAfterMs, pure.retryAfterMs)
  if (redis._tag === "TooLarge" && pure._tag === "TooLarge") return redis.metric === pure.metric
  return false
}

const statusMismatch = (redis: BackendStatus, pure: BackendStatus): string | undefined => {
  if (redis.open !== pure.open) return `open ${redis.open} vs ${pure.open}`
  if (redis.booked !== pure.booked) return `booked ${redis.booked} vs ${pure.booked}`
  if (!close(redis.waitMs, pure.waitMs)) return `waitMs ${redis.waitMs} vs ${pure.waitMs}`
  for (let i = 0; i < pure.quotas.length; i++) {
    const [r, p] = [redis.quotas[i], pure.quotas[i]]
    if (!close(r.used, p.used)) return `quota ${i} used ${r.used} vs ${p.used}`
    if (!close(r.remaining, p.remaining)) return `quota ${i} remaining ${r.remaining} vs ${p.remaining}`
    if (r.capacity !== p.capacity || r.limit !== p.limit) return `quota ${i} capacity/limit ${r.capacity}/${r.limit} vs ${p.capacity}/${p.limit}`
  }
  return undefined
}

let runs = 0

/** Runs `ops` through Redis and through `BucketState`; throws at the first answer that differs. */
const replay = (store: RedisStore, shape: Bucket, ops: ReadonlyArray<Op>) =>
  Effect.gen(function*() {
    const configured: Bucket = { ...shape, name: `${shape.name}-${++runs}` }
    let bucket = configured
    const pure = new BucketState(bucket)
    /** Reservations as (Redis id, pure id): open ones, and closed ones to exercise not-found. */
    const open: Array<readonly [string, string]> = []
    const closed: Array<readonly [string, string]> = []
    const trail: Array<string> = []
    const fail = (message: string) =>
      Effect.die(new Error(`${bucket.name}: ${message}\nlast operations:\n${trail.slice(-8).join("\n")}`))
    for (const op of ops) {
      switch (op.kind) {
        case "sleep":
          yield* Effect.sleep(op.ms)
          break
        case "retune":
          // Redis learns the new limits from the configuration the next script call brings.
          bucket = {
            ...configured,
            quotas: configured.quotas.map((q, i) => ({
              ...q,
              limit: Math.max(1, Math.floor(q.limit * op.shares[i])),
              // Only a token bucket takes another window (BucketState keeps the others' state for their own).
              windowMs: q.algorithm === "token-bucket" && op.windows !== undefined
                ? Math.max(1, Math.round(q.windowMs * op.windows[i]))
                : q.windowMs
            }))
          }
          pure.retune(bucket)
          trail.push(`retune ${bucket.quotas.map((q) => `${q.limit}/${q.windowMs}ms`).join(" ")}`)
          break
        case "reserve": {
          const { now, value } = yield* store.reserve(bucket, op.charge, op.maxWaitMs, nextToken())
          const expected = pure.reserve(op.charge, now, op.maxWaitMs)
          trail.push(`reserve ${JSON.stringify(op.charge)} maxWait ${op.maxWaitMs} at ${now}: ${describeOutcome(value)}`)
          if (!sameOutcome(value, expected)) yield* fail(`reserve: Redis ${describeOutcome(value)}, pure ${describeOutcome(expected)}`)
          if (value._tag === "Reserved" && expected._tag === "Reserved") open.push([value.id, expected.id])
          break
        }
        case "settle":
        case "release": {
          const from = op.closed && closed.length > 0 ? closed : open
          if (from.length === 0) break
          const [redisId, pureId] = from[op.pick % from.length]
          if (from === open) closed.push(...open.splice(op.pick % open.length, 1))
          const { now, value } = op.kind === "settle"
            ? yield* store.settle(bucket, redisId, op.actual)
            : yield* store.release(bucket, redisId)
          const expected = op.kind === "settle" ? pure.settle(pureId, op.actual, now) : pure.release(pureId, now)
          trail.push(`${op.kind} ${redisId} ${op.kind === "settle" ? JSON.stringify(op.actual) : ""} at ${now}: ${value}`)
          if (value !== expected) yield* fail(`${op.kind} ${redisId}: Redis ${value}, pure ${expected}`)
          break
        }
        case "observe": {
          const { now } = yield* store.observe(bucket, op.used, op.retryAfterMs)
          pure.observe(op.used, now + op.retryAfterMs, now)
          trail.push(`observe ${JSON.stringify(op.used)} retryAfter ${op.retryAfterMs} at ${now}`)
          break
        }
        case "status": {
          const { now, value } = yield* store.status(bucket, op.demand)
          const mismatch = statusMismatch(value, pure.status(now, op.demand))
          trail.push(`status ${JSON.stringify(op.demand)} at ${now}`)
          if (mismatch !== undefined) yield* fail(`status ${JSON.stringify(op.demand)}: ${mismatch}`)
          break
        }
      }
    }
    // And the end state, whatever the sequence was.
    const demand = bucket.quotas.map(() => 1)
    const { now, value } = yield* store.status(bucket, demand)
    const mismatch = statusMismatch(value, pure.status(now, demand))
    if (mismatch !== undefined) yield* fail(`final status: ${mismatch}`)
  })

/** A server without Functions, as Redis 6 is: FCALL and FUNCTION renamed away. */
const withoutFunctions = ["--rename-command", "FCALL", "", "--rename-command", "FUNCTION", ""]

/** A store on a fresh server, in `mode`. */
const storeIn = (mode: "function" | "script", args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const server = yield* redisServer({ args: [...args] })
    const client = yield* Effect.acquireRelease(
      Effect.sync(() => new Redis(server.port, { host: "127.0.0.1", lazyConnect: true })),
      (c) => Effect.promise(() => c.quit())
    )
    yield* Effect.promise(() => client.connect())
    const store = makeStore(client, { namespace: "differential", reservationTtlMs: 60_000, commandTimeoutMs: 2_000 })
    yield* Effect.orDie(store.load)
    assert.strictEqual(store.mode(), mode)
    return store
  })

/** A token bucket guessed at 10 a minute (interval 6 s), and a sliding window beside it. */
const guessed = bucketOf("guessed-window", [
  { metric: "requests", limit: 10, windowMs: 60_000, algorithm: "token-bucket", refunds: true },
  { metric: "tokens", limit: 100, windowMs: 60_000, algorithm: "sliding-window", refunds: true }
])

/**
 * Booked under the guessed 60 s window, then the provider says 2 s: the time in use is a share of the window, so
 * it shrinks with it (TokenBucket.retune), both for what is charged and for a booking still pending, and back.
 */
const windowRetune: ReadonlyArray<Op> = [
  { kind: "reserve", charge: [6, 1], maxWaitMs: 0 },
  // Fits once 6 s of the 60 s have passed: pending, not yet charged.
  { kind: "reserve", charge: [5, 1], maxWaitMs: Infinity },
  { kind: "reserve", charge: [1, 0], maxWaitMs: 0 },
  { kind: "status", demand: [1, 0] },
  { kind: "retune", shares: [1, 1], windows: [1 / 30, 1] },
  { kind: "status", demand: [1, 0] },
  { kind: "status", demand: [8, 0] },
  { kind: "reserve", charge: [1, 0], maxWaitMs: 0 },
  { kind: "reserve", charge: [3, 0], maxWaitMs: 0 },
  { kind: "sleep", ms: 30 },
  { kind: "reserve", charge: [2, 1], maxWaitMs: 400 },
  { kind: "release", pick: 0, closed: false },
  { kind: "status", demand: [4, 0] },
  { kind: "settle", pick: 0, closed: false, actual: [2, 1] },
  { kind: "status", demand: [4, 0] },
  // And a limit learnt with the window, then the guess again.
  { kind: "retune", shares: [0.5, 1], windows: [1 / 15, 1] },
  { kind: "reserve", charge: [1, 0], maxWaitMs: 0 },
  { kind: "status", demand: [3, 0] },
  { kind: "retune", shares: [1, 1], windows: [1, 1] },
  { kind: "status", demand: [3, 0] },
  { kind: "reserve", charge: [2, 0], maxWaitMs: 0 },
  { kind: "observe", used: [4, undefined], retryAfterMs: -Infinity },
  { kind: "status", demand: [1, 0] }
]

describe("Redis library and the pure math", () => {
  for (const [mode, args] of [["function", []], ["script", withoutFunctions]] as const) {
    it.scopedLive(`give the same answers after a token bucket's window is retuned (${mode}s)`, () =>
      Effect.gen(function*() {
        const store = yield* storeIn(mode, args)
        yield* Effect.orDie(replay(store, guessed, windowRetune))
      }), 30_000)

    it.scopedLive(`give the same answers on random operation sequences (${mode}s)`, () =>
      Effect.gen(function*() {
        const store = yield* storeIn(mode, args)
        const before = runs
        // Each shape in parallel; a few runs each, as real time passes between operations.
        yield* Effect.forEach(
          shapes,
          (shape) =>
            Effect.promise(() =>
              FastCheck.assert(
                FastCheck.asyncProperty(opsFor(shape), (ops) => Effect.runPromise(Effect.orDie(replay(store, shape, ops)))),
                { numRuns: 8, endOnFailure: true }
              )
            ),
          { concurrency: "unbounded", discard: true }
        )
        assert.isTrue(runs - before >= shapes.length * 8)
      }), 60_000)
  }
})
