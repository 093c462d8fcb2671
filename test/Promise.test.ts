import { afterEach, describe, expect, it } from "vitest"
import { BackendUnavailable, CapacityExceeded, ConfigurationError, createRateLimiter, LimiterClosed, QueueOverflow, ReservationNotFound, UnknownBucket } from "../src/index.js"
import type { RateLimiter } from "../src/index.js"

// One token an hour: the first call takes it, every later one has to wait, so nothing here depends on timing.
const config = {
  buckets: {
    hourly: { quotas: [{ metric: "requests", limit: 1, window: "1 hour" }], maxQueue: 1 },
    tokens: { quotas: [{ metric: "tokens", limit: 1000, window: "1 minute" }] }
  }
}

let limiter: RateLimiter
afterEach(() => limiter?.close())

describe("createRateLimiter", () => {
  it("runs the call, returns its result and settles with the actual usage", async () => {
    limiter = createRateLimiter(config)
    const result = await limiter.submit({ bucket: "tokens", usage: { tokens: 800 } }, async () => ({ used: 300 }), {
      actualUsage: (r) => ({ tokens: r.used })
    })
    expect(result).toEqual({ used: 300 })
    const status = await limiter.status("tokens")
    expect(status.open).toBe(0)
    expect(status.quotas[0].used).toBeGreaterThan(299)
    expect(status.quotas[0].used).toBeLessThanOrEqual(300)
  })

  it("throws a ConfigurationError naming every bad field", () => {
    expect(() => createRateLimiter({ buckets: { a: { quotas: [{ metric: "requests", limit: -5, window: "0 seconds" }] } } }))
      .toThrowError(ConfigurationError)
    const error = (() => {
      try {
        createRateLimiter({ buckets: { a: { quotas: [{ metric: "requests", limit: -5, window: "sometimes" }] } } })
      } catch (error) {
        return error
      }
    })()
    expect(error).toBeInstanceOf(ConfigurationError)
    expect((error as ConfigurationError).issues).toEqual([
      "buckets.a.quotas[0].limit: expected a positive integer, got -5",
      `buckets.a.quotas[0].window: expected a positive duration ("1 minute", "10 seconds") or milliseconds, got "sometimes"`
    ])
  })

  it("rejects with the tagged errors as Error subclasses", async () => {
    limiter = createRateLimiter(config)
    const unknown = await limiter.submit({ bucket: "nope" }, async () => 1).catch((e: unknown) => e)
    expect(unknown).toBeInstanceOf(UnknownBucket)
    expect(unknown).toBeInstanceOf(Error)
    expect((unknown as UnknownBucket).name).toBe("UnknownBucket")
    expect((unknown as UnknownBucket).known).toEqual(["hourly", "tokens"])
    const tooLarge = await limiter.submit({ bucket: "tokens", usage: { tokens: 5000 } }, async () => 1).catch((e: unknown) => e)
    expect(tooLarge).toBeInstanceOf(CapacityExceeded)
  })

  it("an aborted waiting call rejects with AbortError and leaves nothing booked", async () => {
    limiter = createRateLimiter(config)
    await limiter.submit({ bucket: "hourly" }, async () => "first")
    const controller = new AbortController()
    const waiting = limiter.submit({ bucket: "hourly" }, async () => "second", { signal: controller.signal })
    await new Promise((resolve) => setImmediate(resolve))
    expect((await limiter.status("hourly")).queued).toBe(1)
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" })
    const status = await limiter.status("hourly")
    expect(status.queued).toBe(0)
    expect(status.open).toBe(0)
  })

  it("maxWait fails fast with retryAfterMs; maxQueue refuses overflow", async () => {
    limiter = createRateLimiter(config)
    await limiter.submit({ bucket: "hourly" }, async () => "first")
    const error = await limiter.submit({ bucket: "hourly" }, async () => "x", { maxWait: "1 second" }).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CapacityExceeded)
    expect((error as CapacityExceeded).retryAfterMs).toBeGreaterThan(3_500_000)
    const controller = new AbortController()
    const waiting = limiter.submit({ bucket: "hourly" }, async () => "second", { signal: controller.signal })
    await expect(limiter.submit({ bucket: "hourly" }, async () => "third")).rejects.toBeInstanceOf(QueueOverflow)
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ name: "AbortError" })
  })

  it("the signal reaches a running call", async () => {
    limiter = createRateLimiter(config)
    const controller = new AbortController()
    const running = limiter.submit({ bucket: "tokens", usage: { tokens: 10 } }, (signal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("stopped")))), { signal: controller.signal })
    await new Promise((resolve) => setImmediate(resolve))
    controller.abort()
    await expect(running).rejects.toThrow("stopped")
    const status = await limiter.status("tokens")
    expect(status.open).toBe(0)
    expect(status.quotas[0].used).toBeGreaterThan(9) // it ran, so it keeps its charge
  })

  it("a reservation settles exactly once", async () => {
    limiter = createRateLimiter(config)
    const permit = await limiter.reserve({ bucket: "tokens", usage: { tokens: 500 } })
    await permit.settle({ tokens: 100 })
    await expect(permit.settle({ tokens: 100 })).rejects.toBeInstanceOf(ReservationNotFound)
    await expect(permit.release()).rejects.toBeInstanceOf(ReservationNotFound)
    expect((await limiter.status("tokens")).open).toBe(0)
  })

  it("a Redis backend that cannot be reached fails calls with BackendUnavailable, not the process", async () => {
    limiter = createRateLimiter({ ...config, backend: { redis: { url: "redis://127.0.0.1:1", connectTimeout: "200 millis" } } })
    await new Promise((resolve) => setTimeout(resolve, 300)) // the start has failed by now, with nobody listening
    const error = await limiter.submit({ bucket: "tokens" }, async () => 1).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(BackendUnavailable)
  })

  it("close rejects waiting calls and lets running ones finish", async () => {
    limiter = createRateLimiter(config)
    let finish: (value: string) => void = () => undefined
    const running = limiter.submit({ bucket: "hourly" }, () => new Promise<string>((resolve) => (finish = resolve)))
    await new Promise((resolve) => setImmediate(resolve))
    const waiting = limiter.submit({ bucket: "hourly" }, async () => "never")
    await new Promise((resolve) => setImmediate(resolve))
    const closing = limiter.close()
    await expect(waiting).rejects.toBeInstanceOf(LimiterClosed)
    finish("done")
    await expect(running).resolves.toBe("done")
    await closing
    await expect(limiter.submit({ bucket: "hourly" }, async () => 1)).rejects.toBeInstanceOf(LimiterClosed)
  })
})
