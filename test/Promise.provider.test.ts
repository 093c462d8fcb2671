import { Effect, Exit, Schema, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Emulator from "../src/emulator/Emulator.js"
import { createRateLimiter } from "../src/index.js"
import type { RateLimiter } from "../src/index.js"

// A real provider emulator on a loopback socket: OpenAI style, 5 requests per second.
let scope: Scope.CloseableScope
let emulator: Emulator.RunningEmulator
beforeAll(async () => {
  scope = Effect.runSync(Scope.make())
  emulator = await Effect.runPromise(Scope.extend(
    Emulator.serve({ style: "openai", windowMs: 1000, limits: { requests: 5, tokens: 100_000 } }, { port: 0 }),
    scope
  ))
})
afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

const body = (maxTokens: number) =>
  JSON.stringify({ model: "gpt-4o-2024-08-06", messages: [{ role: "user", content: "Hello there" }], max_tokens: maxTokens, x_completion_tokens: 7 })

const post = (limiter: RateLimiter, maxTokens = 50) =>
  limiter.fetch(`${emulator.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: body(maxTokens) })

/** Anthropic's split token quotas on the family bucket of claude-sonnet-4-20250514. */
const claudeLimiter = () =>
  createRateLimiter({
    provider: "anthropic",
    buckets: {
      "claude-sonnet-4.x": {
        quotas: [{ metric: "input_tokens", limit: 10_000, window: "1 minute" }, { metric: "output_tokens", limit: 2_000, window: "1 minute" }]
      }
    }
  })

/** A message of 1000 max_tokens that generates 7. */
const postMessage = (limiter: RateLimiter, stream: boolean) =>
  limiter.fetch(`${emulator.url}/v1/messages`, {
    method: "POST",
    body: JSON.stringify({ model: "claude-sonnet-4-20250514", max_tokens: 1000, x_completion_tokens: 7, stream, messages: [{ role: "user", content: "Hi" }] })
  })

describe("createRateLimiter with a provider", () => {
  it("fetch charges by the request body, runs under the model's family bucket and settles with the reported usage", async () => {
    await Effect.runPromise(emulator.reset)
    const limiter = claudeLimiter()
    const response = await postMessage(limiter, false)
    expect(response.status).toBe(200)
    const answer = Schema.decodeUnknownSync(Schema.Struct({ usage: Schema.Struct({ output_tokens: Schema.Number }) }))(await response.json())
    expect(answer.usage.output_tokens).toBe(7) // the caller's body is untouched
    const status = await limiter.status("claude-sonnet-4.x")
    expect(status.open).toBe(0)
    expect(status.quotas[1].used).toBeLessThanOrEqual(7) // 1000 charged, 993 refunded
    await limiter.close()
  })

  it("fetch of a streamed response settles when its body ends, with the usage its events reported", async () => {
    await Effect.runPromise(emulator.reset)
    const limiter = claudeLimiter()
    const response = await postMessage(limiter, true)
    expect(response.headers.get("content-type")).toContain("text/event-stream")
    const before = await limiter.status("claude-sonnet-4.x")
    expect(before.open).toBe(1) // still streaming: the 1000 output tokens stay charged
    expect(before.quotas[1].used).toBeGreaterThan(990)
    const text = await response.text()
    expect(text).toContain("message_delta") // the caller reads every event
    const after = await limiter.status("claude-sonnet-4.x")
    expect(after.open).toBe(0)
    expect(after.quotas[1].used).toBeLessThanOrEqual(7) // settled with the 7 the stream reported
    await limiter.close()
  })

  it("a streamed response the caller abandons is settled with what it reported so far", async () => {
    await Effect.runPromise(emulator.reset)
    const limiter = claudeLimiter()
    const response = await postMessage(limiter, true)
    await response.body?.cancel()
    const status = await limiter.status("claude-sonnet-4.x")
    expect(status.open).toBe(0)
    await limiter.close()
  })

  it("a breaker opens after refusals: later calls reject with CircuitOpen without running", async () => {
    const limiter = createRateLimiter({
      provider: "openai",
      retry: { maxAttempts: 1 },
      breaker: { failureThreshold: 2, failureWindow: "1 minute", openFor: "1 minute" },
      buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 100, window: "1 minute" }] } }
    })
    const refused = async () => new Response("{}", { status: 429, headers: { "retry-after-ms": "1" } })
    expect((await limiter.submit({ bucket: "gpt-4o" }, refused)).status).toBe(429)
    expect((await limiter.submit({ bucket: "gpt-4o" }, refused)).status).toBe(429)
    let ran = false
    const error = await limiter.submit({ bucket: "gpt-4o" }, async () => (ran = true)).catch((e: unknown) => e)
    expect(error).toMatchObject({ _tag: "CircuitOpen", key: "gpt-4o" })
    expect(ran).toBe(false)
    await limiter.close()
  })

  it("a 429 is retried after its hint; the caller sees only the final response", async () => {
    await Effect.runPromise(emulator.reset)
    // The limiter believes in 50 requests per second; the provider allows 5: the 6th gets a 429.
    const limiter = createRateLimiter({
      provider: "openai",
      retry: { maxAttempts: 5, baseDelay: "10 millis" },
      buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 50, window: "1 second" }] } }
    })
    const responses = await Promise.all(Array.from({ length: 8 }, () => post(limiter)))
    expect(responses.map((r) => r.status)).toEqual(Array(8).fill(200))
    const stats = await Effect.runPromise(emulator.stats)
    expect(stats.rejected429).toBeGreaterThan(0)
    expect(stats.admitted).toBe(8)
    expect((await limiter.status("gpt-4o")).open).toBe(0)
    await limiter.close()
  })

  it("with the provider's limits configured and a few ms of skew for the network, nothing is refused", async () => {
    await Effect.runPromise(emulator.reset)
    const limiter = createRateLimiter({
      provider: "openai",
      buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 5, window: "1 second" }], skew: "5 millis" } }
    })
    const responses = await Promise.all(Array.from({ length: 12 }, () => post(limiter)))
    expect(responses.every((r) => r.status === 200)).toBe(true)
    const stats = await Effect.runPromise(emulator.stats)
    expect(stats.rejected429).toBe(0)
    expect(stats.violations).toBe(0)
    await limiter.close()
  })

  it("fetch without a provider is a clear error; a request without a model passes through", async () => {
    const plain = createRateLimiter({ buckets: {} })
    await expect(plain.fetch("http://127.0.0.1:1/", { method: "POST", body: "{}" })).rejects.toThrow("needs a provider")
    await plain.close()
    const limiter = createRateLimiter({ provider: "openai" })
    const models = await limiter.fetch(`${emulator.url}/v1/models`)
    expect(models.status).toBe(200)
    await limiter.close()
  })
})
