/**
 * The Promise adapter at the edges: garbage at every entry point gives a typed error naming the field (a
 * rejection, never a synchronous throw) and changes nothing; a permit nobody settles comes back after
 * reservationTtl; an interrupt storm through AbortSignal loses no slot; after close, every method rejects with
 * `LimiterClosed`. Live clock, short windows.
 */
import { afterEach, describe, expect, it } from "vitest"
import { ConfigurationError, createRateLimiter, InvalidCall, InvalidUsage, LimiterClosed, UnknownBucket } from "../src/index.js"
import type { RateLimiter, RateLimiterConfig } from "../src/index.js"

const config: RateLimiterConfig = {
  buckets: {
    slots: { quotas: [{ metric: "requests", limit: 3, algorithm: "concurrency" }] },
    tokens: { quotas: [{ metric: "tokens", limit: 1_000, window: "1 minute" }] }
  },
  reservationTtl: "300 millis",
  shutdownTimeout: "1 second"
}

let limiter: RateLimiter | undefined
afterEach(() => limiter?.close())

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe("createRateLimiter at the edges", () => {
  it("bad calls reject with a typed error naming the field, change nothing, and close still resolves", async () => {
    const rateLimiter = createRateLimiter(config)
    limiter = rateLimiter
    const before = await rateLimiter.status("slots")
    // Deliberately ill-typed, as untyped callers may pass them.
    const submit = rateLimiter.submit as (meta: unknown, call: unknown, options?: unknown) => Promise<unknown>
    const cases: ReadonlyArray<readonly [unknown, unknown, unknown, string, new(...args: never) => Error]> = [
      [{ bucket: "slots" }, async () => 1, { maxWait: "abc" }, "options.maxWait", InvalidCall],
      [{ bucket: "slots" }, async () => 1, { maxWait: -1 }, "options.maxWait", InvalidCall],
      [{ bucket: 42 }, async () => 1, undefined, "meta.bucket", InvalidCall],
      [null, async () => 1, undefined, "meta", InvalidCall],
      [{ bucket: "slots" }, "not a function", undefined, "call", InvalidCall],
      [{ bucket: "slots" }, async () => 1, { signal: "soon" }, "options.signal", InvalidCall],
      [{ bucket: "tokens", usage: { tokens: -1 } }, async () => 1, undefined, "usage.tokens", InvalidUsage],
      [{ bucket: "nope" }, async () => 1, undefined, "nope", UnknownBucket]
    ]
    for (const [meta, call, options, field, type] of cases) {
      let outcome: unknown
      try {
        outcome = await submit(meta, call, options).then(() => "resolved", (error: unknown) => error)
      } catch (thrown) {
        outcome = `threw synchronously: ${String(thrown)}`
      }
      expect(outcome, field).toBeInstanceOf(type)
      expect((outcome as Error).message).toContain(field)
    }
    const reserve = rateLimiter.reserve as (meta: unknown, options?: unknown) => Promise<unknown>
    await expect(reserve({ bucket: "slots" }, { maxWait: "abc" })).rejects.toBeInstanceOf(InvalidCall)
    expect(await rateLimiter.status("slots")).toEqual(before)
    await rateLimiter.close()
  })

  it("bad Redis options throw a ConfigurationError naming the field at creation", () => {
    expect(() => createRateLimiter({ ...config, backend: { redis: { url: "redis://127.0.0.1:1", onUnavailable: "fail_closed" as "fail-closed" } } }))
      .toThrow(ConfigurationError)
    try {
      createRateLimiter({ ...config, backend: { redis: { localShare: 2 } } })
    } catch (error) {
      expect(String(error)).toContain("backend.redis.localShare")
    }
  })

  it("a permit nobody settles gives its slot back after reservationTtl", async () => {
    limiter = createRateLimiter(config)
    await limiter.reserve({ bucket: "slots" })
    expect((await limiter.status("slots")).open).toBe(1)
    await sleep(500)
    const status = await limiter.status("slots")
    expect(status.open).toBe(0)
    expect(status.quotas[0].used).toBe(0)
  })

  it("an abort storm on a concurrency quota loses no slot", async () => {
    limiter = createRateLimiter({ ...config, reservationTtl: "10 minutes" })
    const active = limiter
    const calls = Array.from({ length: 2_000 }, (_, i) => {
      const controller = new AbortController()
      const call = active.submit({ bucket: "slots" }, (signal) =>
        new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => resolve(i), i % 3)
          signal.addEventListener("abort", () => {
            clearTimeout(timer)
            reject(signal.reason)
          })
        }), { signal: controller.signal })
      // Abort a third of them, at 0-3 ms: while waiting, on the tick they are admitted, or while running.
      if (i % 3 === 1) setTimeout(() => controller.abort(), i % 4)
      return call.then(() => "ok", (error: unknown) => (error instanceof Error ? error.name : "other"))
    })
    const outcomes = await Promise.all(calls)
    expect(outcomes.every((o) => o === "ok" || o === "AbortError")).toBe(true)
    const status = await active.status("slots")
    expect(status.open).toBe(0)
    expect(status.quotas[0].used).toBe(0)
    // All three slots at once, at once.
    const permits = await Promise.all([1, 2, 3].map(() => active.reserve({ bucket: "slots" }, { maxWait: 0 })))
    await Promise.all(permits.map((p) => p.release()))
  })

  it("after close, every method rejects with LimiterClosed, and a permit held across it is settled", async () => {
    const rateLimiter = createRateLimiter(config)
    const permit = await rateLimiter.reserve({ bucket: "slots" })
    await rateLimiter.close()
    await expect(permit.settle()).rejects.toBeInstanceOf(LimiterClosed)
    await expect(rateLimiter.status("slots")).rejects.toBeInstanceOf(LimiterClosed)
    await expect(rateLimiter.submit({ bucket: "slots" }, async () => 1)).rejects.toBeInstanceOf(LimiterClosed)
    await expect(rateLimiter.reserve({ bucket: "slots" })).rejects.toBeInstanceOf(LimiterClosed)
    await expect(rateLimiter.close()).resolves.toBeUndefined()
  })
})
