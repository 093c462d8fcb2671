/**
 * A Redis user whose ACL refuses Functions (FUNCTION, FCALL, FCALL_RO), as some managed services set users up:
 * the backend falls back to scripts (EVALSHA), and a normal run on them is exact. Two limiters on two
 * connections share each namespace, as two processes would: a concurrency quota runs exactly its limit at once,
 * a rate quota admits exactly its limit, refunds come back to the unit, and the scripts being flushed mid-run
 * changes nothing.
 */
import { Effect, Either, Layer, ManagedRuntime } from "effect"
import { afterAll, assert, beforeAll, describe, it } from "vitest"
import { RateLimited, RedisBackendLive } from "../../../src/index.js"
import type { LimiterConfig } from "../../../src/Quota.js"
import { commandCalls, RedisServer } from "../../support/redisServer.js"

const config: LimiterConfig = {
  buckets: {
    slots: { quotas: [{ metric: "requests", limit: 3, algorithm: "concurrency" }] },
    // Windows far longer than the test: nothing drains meanwhile, so every count is exact.
    requests: { quotas: [{ metric: "requests", limit: 10, window: "1 minute", algorithm: "sliding-window" }] },
    tokens: { quotas: [{ metric: "tokens", limit: 1_000, window: "1 minute", algorithm: "sliding-window" }] }
  }
}

type Runtime = ManagedRuntime.ManagedRuntime<RateLimited.RateLimited, unknown>

let server: RedisServer | undefined
let runs = 0
const runtimes: Array<Runtime> = []

beforeAll(async () => {
  server = await RedisServer.start()
  assert.strictEqual((await server.cli("acl", "setuser", "limited", "on", ">pw", "~*", "&*", "+@all", "-function", "-fcall", "-fcall_ro")).trim(), "OK")
})

afterAll(async () => {
  await Promise.all(runtimes.map((runtime) => runtime.dispose()))
  await server?.close()
})

const redis = (): RedisServer => {
  if (server === undefined) throw new Error("redis-server did not start")
  return server
}

/** Two limiters as the limited user on one new namespace: two processes sharing its quotas. */
const pair = (): readonly [Runtime, Runtime] => {
  const ns = `acl-${process.pid}-${Date.now()}-${++runs}`
  const make = (): Runtime => {
    const runtime = ManagedRuntime.make(
      RateLimited.layer(config).pipe(Layer.provide(RedisBackendLive({ url: `redis://limited:pw@127.0.0.1:${redis().port}`, namespace: ns })))
    )
    runtimes.push(runtime)
    return runtime
  }
  return [make(), make()]
}

describe("a user without FUNCTION and FCALL", () => {
  it("is refused Functions, and the backend runs every operation as a script", async () => {
    const cliAsLimited = (...args: ReadonlyArray<string>) => redis().cli("--user", "limited", "--pass", "pw", "--no-auth-warning", ...args)
    assert.match(await cliAsLimited("function", "list"), /NOPERM/)
    assert.match(await cliAsLimited("fcall", "anything", "0"), /NOPERM/)
    await redis().cli("config", "resetstat")
    const [a, b] = pair()
    for (const runtime of [a, b]) {
      assert.strictEqual(await runtime.runPromise(RateLimited.submit({ bucket: "requests" }, Effect.succeed("ran"))), "ran")
    }
    const calls = commandCalls(await redis().cli("info", "commandstats"))
    assert.strictEqual(calls.fcall ?? 0, 0, "FCALL ran")
    assert.isAtLeast(calls.evalsha ?? 0, 4, "EVALSHA calls: a reserve and a settle per call")
    assert.strictEqual((await redis().cli("function", "list")).trim(), "", "a library was loaded")
  })

  it("a concurrency quota of 3 runs exactly 3 calls at once across two limiters, and all its slots come back", async () => {
    const [a, b] = pair()
    let running = 0
    let peak = 0
    const work = (i: number) =>
      Effect.gen(function*() {
        running++
        peak = Math.max(peak, running)
        yield* Effect.sleep("30 millis")
        running--
        return i
      })
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? a : b).runPromise(RateLimited.submit({ bucket: "slots" }, work(i))))
    )
    assert.deepStrictEqual(results, Array.from({ length: 30 }, (_, i) => i))
    assert.strictEqual(peak, 3, "calls at once")
    const status = await a.runPromise(RateLimited.status("slots"))
    assert.deepStrictEqual({ open: status.open, used: status.quotas[0]!.used }, { open: 0, used: 0 })
  })

  it("a rate quota of 10 admits exactly 10 across two limiters, then refuses, as both see it", async () => {
    const [a, b] = pair()
    const call = (runtime: Runtime) =>
      runtime.runPromise(Effect.either(RateLimited.submit({ bucket: "requests" }, Effect.succeed("ran"), { maxWait: "100 millis" })))
    const first = await Promise.all([...Array.from({ length: 6 }, () => call(a)), ...Array.from({ length: 4 }, () => call(b))])
    assert.deepStrictEqual(first.map((r) => (Either.isRight(r) ? r.right : r.left._tag)), Array.from({ length: 10 }, () => "ran"))
    for (const runtime of [a, b]) {
      const refused = await call(runtime)
      assert.isTrue(Either.isLeft(refused) && refused.left._tag === "CapacityExceeded", JSON.stringify(refused))
      const status = await runtime.runPromise(RateLimited.status("requests"))
      assert.deepStrictEqual({ open: status.open, used: status.quotas[0]!.used, remaining: status.quotas[0]!.remaining }, {
        open: 0,
        used: 10,
        remaining: 0
      })
    }
  })

  it("settling below the charge refunds to the unit, across two limiters, and the scripts being flushed mid-run changes nothing", async () => {
    const [a, b] = pair()
    const used = async () => (await b.runPromise(RateLimited.status("tokens"))).quotas[0]!.used
    // Charged 600, used 200: 400 come back.
    const answer = await a.runPromise(
      RateLimited.submit({ bucket: "tokens", usage: { tokens: 600 } }, Effect.succeed({ total: 200 }), {
        actualUsage: (r) => ({ tokens: r.total })
      })
    )
    assert.deepStrictEqual(answer, { total: 200 })
    assert.strictEqual(await used(), 200)

    // Scripts gone: the next calls load them again.
    assert.strictEqual((await redis().cli("script", "flush")).trim(), "OK")

    // 800 more fit exactly; then not one token more.
    const held = await b.runPromise(
      Effect.either(
        Effect.scoped(
          Effect.gen(function*() {
            const permit = yield* RateLimited.reserve({ bucket: "tokens", usage: { tokens: 800 } }, { maxWait: "100 millis" })
            const more = yield* Effect.either(
              RateLimited.submit({ bucket: "tokens", usage: { tokens: 1 } }, Effect.void, { maxWait: "100 millis" })
            )
            yield* permit.settle({ tokens: 300 })
            return more._tag === "Left" ? more.left._tag : "admitted"
          })
        )
      )
    )
    assert.deepStrictEqual(held, Either.right("CapacityExceeded"))
    assert.strictEqual(await used(), 500)
    assert.strictEqual((await redis().cli("script", "flush")).trim(), "OK")
    assert.strictEqual(await a.runPromise(RateLimited.submit({ bucket: "tokens", usage: { tokens: 500 } }, Effect.succeed("fits"))), "fits")
    const status = await a.runPromise(RateLimited.status("tokens"))
    assert.deepStrictEqual({ open: status.open, used: status.quotas[0]!.used, remaining: status.quotas[0]!.remaining }, {
      open: 0,
      used: 1_000,
      remaining: 0
    })
  })
})
