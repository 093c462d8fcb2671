/**
 * Shutting a limiter on Redis down while calls run. Disposing the runtime (`ManagedRuntime.dispose`), closing the
 * scope the layer was built in, or `close()` of the Promise adapter must let the running calls finish and return
 * their results (not `BackendUnavailable` because the connection went first), and must leave nothing held in
 * Redis: a slot held past shutdown is held for `reservationTtl` (10 minutes by default) in every other process.
 * With the Promise adapter, a permit held across `close()` is given back by it, and what is called on the closed
 * limiter rejects with an `Error` named `LimiterClosed`, never with a bare value.
 */
import { Cause, Effect, Exit, Fiber, Layer, ManagedRuntime } from "effect"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { createRateLimiter, RateLimited, RedisBackendLive } from "../../../src/index.js"
import type { LimiterConfig } from "../../../src/Quota.js"
import { RedisServer } from "../../support/redisServer.js"

const CALLS = 10
/** How long each call's work takes; shutdown starts while every call is in it. */
const WORK_MS = 300
/** How long the calls and the shutdown may take: the work, and room for a busy machine. */
const BOUND_MS = WORK_MS + 3_000

const config: LimiterConfig = { buckets: { slots: { quotas: [{ metric: "requests", limit: CALLS, algorithm: "concurrency" }] } } }

let server: RedisServer | undefined
let runs = 0

beforeAll(async () => {
  server = await RedisServer.start()
})

afterAll(async () => {
  await server?.close()
})

const redisUrl = (): string => {
  if (server === undefined) throw new Error("redis-server did not start")
  return server.url
}

const namespace = () => `shutdown-${process.pid}-${Date.now()}-${++runs}`

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves with `promise`'s outcome, or rejects once `ms` have passed. */
const within = <A>(promise: Promise<A>, ms: number, what: string): Promise<A> =>
  Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`${what}: not done within ${ms} ms`)))])

const limiterLayer = (ns: string) => RateLimited.layer(config).pipe(Layer.provide(RedisBackendLive({ url: redisUrl(), namespace: ns })))

/** Waits until `count()` reaches `n` (the calls are all in their work), at most 5 s. */
const until = async (count: () => number, n: number) => {
  const deadline = Date.now() + 5_000
  while (count() < n) {
    if (Date.now() > deadline) throw new Error(`only ${count()} of ${n} calls started`)
    await sleep(5)
  }
}

/**
 * What a fresh limiter on the namespace sees: `open` and `used` of the bucket once they are 0 (asked for at most
 * 2 s), and whether it then takes every slot at once.
 */
const heldAfter = async (ns: string) => {
  const runtime = ManagedRuntime.make(limiterLayer(ns))
  try {
    const deadline = Date.now() + 2_000
    let status = await runtime.runPromise(RateLimited.status("slots"))
    while ((status.open > 0 || status.quotas[0]!.used > 0) && Date.now() < deadline) {
      await sleep(50)
      status = await runtime.runPromise(RateLimited.status("slots"))
    }
    const all = await runtime.runPromise(
      Effect.either(
        Effect.scoped(
          Effect.forEach(Array.from({ length: CALLS }), () => RateLimited.reserve({ bucket: "slots" }, { maxWait: "1 second" }), {
            concurrency: "unbounded"
          })
        )
      )
    )
    return { open: status.open, used: status.quotas[0]!.used, tookAll: all._tag === "Right" }
  } finally {
    await runtime.dispose()
  }
}

const describeExit = (exit: Exit.Exit<string, unknown>): string => {
  if (Exit.isSuccess(exit)) return exit.value
  const error = Cause.squash(exit.cause)
  return `failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`
}

const expected = Array.from({ length: CALLS }, (_, i) => `result ${i}`)

/** The call's work: counts itself as started, then answers after WORK_MS. */
const work = (i: number, started: { n: number }) =>
  Effect.zipRight(Effect.sync(() => started.n++), Effect.as(Effect.sleep(WORK_MS), `result ${i}`))

describe("Effect: disposing the ManagedRuntime while 10 calls run", () => {
  let outcome: { results: ReadonlyArray<string>; held: Awaited<ReturnType<typeof heldAfter>> } | undefined

  beforeAll(async () => {
    const ns = namespace()
    const runtime = ManagedRuntime.make(limiterLayer(ns))
    const started = { n: 0 }
    const calls = expected.map((_, i) => runtime.runPromiseExit(RateLimited.submit({ bucket: "slots" }, work(i, started))))
    await until(() => started.n, CALLS)
    await within(runtime.dispose(), BOUND_MS, "dispose")
    const exits = await within(Promise.all(calls), BOUND_MS, "the calls")
    outcome = { results: exits.map(describeExit), held: await heldAfter(ns) }
  }, 30_000)

  it("the calls finish and return their results", () => {
    assert.deepStrictEqual(outcome?.results, expected)
  })

  it("no slot is left held in Redis", () => {
    assert.deepStrictEqual(outcome?.held, { open: 0, used: 0, tookAll: true })
  })
})

describe("Effect: the scope the layer was built in closes while 10 calls run", () => {
  let outcome: { results: ReadonlyArray<string>; held: Awaited<ReturnType<typeof heldAfter>> } | undefined

  beforeAll(async () => {
    const ns = namespace()
    const started = { n: 0 }
    const exits = await Effect.runPromise(
      Effect.gen(function*() {
        // The calls are the application's, not the scope's: they outlive it.
        const fibers = yield* Effect.scoped(
          Effect.gen(function*() {
            const context = yield* Layer.build(limiterLayer(ns))
            const fibers = yield* Effect.forEach(expected, (_, i) =>
              Effect.forkDaemon(Effect.exit(Effect.provide(RateLimited.submit({ bucket: "slots" }, work(i, started)), context))))
            yield* Effect.promise(() => until(() => started.n, CALLS))
            return fibers
          })
        )
        return yield* Effect.forEach(fibers, Fiber.join)
      }).pipe(Effect.timeout(BOUND_MS))
    )
    outcome = { results: exits.map(describeExit), held: await heldAfter(ns) }
  }, 30_000)

  it("the calls finish and return their results", () => {
    assert.deepStrictEqual(outcome?.results, expected)
  })

  it("no slot is left held in Redis", () => {
    assert.deepStrictEqual(outcome?.held, { open: 0, used: 0, tookAll: true })
  })
})

/** Whether `promise` rejects with an `Error` named `LimiterClosed`; what it did otherwise. */
const rejectsClosed = async (promise: Promise<unknown>): Promise<string> =>
  within(promise, BOUND_MS, "a call on the closed limiter").then(
    (value) => `resolved with ${JSON.stringify(value)}`,
    (error: unknown) =>
      error instanceof Error
        ? error.name === "LimiterClosed" ? "LimiterClosed" : `an Error named ${error.name}: ${error.message}`
        : `a bare ${typeof error}: ${String(error)}`
  )

describe("Promise: close() while calls run and a permit is held", () => {
  let outcome:
    | {
      results: ReadonlyArray<string>
      held: Awaited<ReturnType<typeof heldAfter>>
      settle: string
      status: string
      submit: string
      reserve: string
    }
    | undefined

  beforeAll(async () => {
    const ns = namespace()
    // A permit its holder never settles holds close() for shutdownTimeout (30 s by default), as a running call
    // would: this one waits a second for it, then settles it itself.
    const limiter = createRateLimiter({ ...config, shutdownTimeout: "1 second", backend: { redis: redisUrl(), namespace: ns } })
    let started = 0
    const running = expected.slice(1).map((value) =>
      limiter.submit({ bucket: "slots" }, async () => {
        started++
        await sleep(WORK_MS)
        return value
      }).then((result) => result, (error: unknown) => `failed: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`)
    )
    // One slot held by a permit its holder never settles before close.
    const permit = await limiter.reserve({ bucket: "slots" })
    await until(() => started, CALLS - 1)
    await within(limiter.close(), BOUND_MS, "close")
    const results = await within(Promise.all(running), BOUND_MS, "the calls")
    outcome = {
      results,
      held: await heldAfter(ns),
      settle: await rejectsClosed(permit.settle()),
      status: await rejectsClosed(limiter.status("slots")),
      submit: await rejectsClosed(limiter.submit({ bucket: "slots" }, async () => "too late")),
      reserve: await rejectsClosed(limiter.reserve({ bucket: "slots" }))
    }
  }, 30_000)

  it("the running calls finish and return their results", () => {
    assert.deepStrictEqual(outcome?.results, expected.slice(1))
  })

  it("the permit held across close() does not keep its slot once close() is done, nor do the calls", () => {
    assert.deepStrictEqual(outcome?.held, { open: 0, used: 0, tookAll: true })
  })

  it("after close(), permit.settle(), status(), submit() and reserve() reject with an Error named LimiterClosed", () => {
    const { reserve, settle, status, submit } = outcome ?? {}
    assert.deepStrictEqual({ settle, status, submit, reserve }, {
      settle: "LimiterClosed",
      status: "LimiterClosed",
      submit: "LimiterClosed",
      reserve: "LimiterClosed"
    })
  })
})
