/**
 * The official SDKs (openai 7, @anthropic-ai/sdk 1) driven through `limiter.fetch` against the emulator over
 * real HTTP: every call they make either is charged and settled, or passes straight through, and a refusal
 * reaches the caller as the SDK's connection error with the quotaflow error as its `cause`.
 */
import Anthropic from "@anthropic-ai/sdk"
import { Effect } from "effect"
import OpenAI from "openai"
import { describe, expect, it } from "vitest"
import { CapacityExceeded, CircuitOpen, createRateLimiter, LimiterClosed } from "../src/index.js"
import type { RateLimiter, RateLimiterConfig } from "../src/index.js"
import { withEmulator } from "./support/emulator.js"

const openaiConfig: RateLimiterConfig = {
  provider: "openai",
  buckets: {
    "gpt-4o": { quotas: [{ metric: "requests", limit: 1_000, window: "1 day" }, { metric: "tokens", limit: 1_000_000, window: "1 day" }] },
    "text-embedding-3-small": { quotas: [{ metric: "requests", limit: 1_000, window: "1 day" }, { metric: "tokens", limit: 1_000_000, window: "1 day" }] }
  }
}

const anthropicConfig: RateLimiterConfig = {
  provider: "anthropic",
  buckets: {
    "claude-sonnet-4.x": {
      quotas: [
        { metric: "requests", limit: 1_000, window: "1 day" },
        { metric: "input_tokens", limit: 1_000_000, window: "1 day" },
        { metric: "output_tokens", limit: 100_000, window: "1 day" }
      ]
    }
  }
}

const openaiClient = (limiter: RateLimiter, url: string) => new OpenAI({ apiKey: "sk-test", baseURL: `${url}/v1`, fetch: limiter.fetch, maxRetries: 0 })
const anthropicClient = (limiter: RateLimiter, url: string) => new Anthropic({ apiKey: "sk-ant-test", baseURL: url, fetch: limiter.fetch, maxRetries: 0 })

const model = "claude-sonnet-4-20250514"
const messages = [{ role: "user" as const, content: "Hello there" }]

/** Requests charged on a bucket so far (its first quota; a day's refill is nothing in a test). */
const requestsUsed = async (limiter: RateLimiter, bucket: string) => Math.round((await limiter.status(bucket)).quotas[0].used)

describe("the openai SDK through limiter.fetch", () => {
  it("chat, stream, Responses API and embeddings are charged and settled; models pass through", () =>
    withEmulator({ style: "openai" }, async (emulator) => {
      const limiter = createRateLimiter(openaiConfig)
      const client = openaiClient(limiter, emulator.url)

      const chat = await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 20 })
      expect(chat.choices[0]?.message.content).toBeTruthy()
      expect(chat.usage?.completion_tokens).toBeGreaterThan(0)

      const stream = await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 20, stream: true, stream_options: { include_usage: true } })
      expect((await limiter.status("gpt-4o")).open).toBe(1) // streaming: still held
      let text = ""
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ""
      expect(text.length).toBeGreaterThan(0)
      expect((await limiter.status("gpt-4o")).open).toBe(0) // settled when the body ended

      const response = await client.responses.create({ model: "gpt-4o", input: "Hello there", max_output_tokens: 20 })
      expect(response.output_text.length).toBeGreaterThan(0)
      const embedding = await client.embeddings.create({ model: "text-embedding-3-small", input: "Hello there" })
      expect(embedding.data[0]?.embedding.length).toBeGreaterThan(0)

      const listed = await client.models.list()
      expect(listed.data.map((m) => m.id)).toContain("gpt-4o")
      expect((await client.models.retrieve("gpt-4o")).id).toBe("gpt-4o")

      expect(await requestsUsed(limiter, "gpt-4o")).toBe(3) // chat, stream, response; not the models
      expect(await requestsUsed(limiter, "text-embedding-3-small")).toBe(1)
      const stats = await Effect.runPromise(emulator.stats)
      expect(stats.admitted).toBe(4)
      await limiter.close()
    }))

  it("an abort while waiting is the SDK's APIUserAbortError, and nothing is sent", () =>
    withEmulator({ style: "openai" }, async (emulator) => {
      const limiter = createRateLimiter({ provider: "openai", buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 1, window: "1 minute" }] } } })
      const client = openaiClient(limiter, emulator.url)
      await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5 })
      const controller = new AbortController()
      const waiting = client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5 }, { signal: controller.signal }).catch((e: unknown) => e)
      await new Promise((resolve) => setTimeout(resolve, 50))
      expect((await limiter.status("gpt-4o")).queued).toBe(1)
      controller.abort()
      expect(await waiting).toBeInstanceOf(OpenAI.APIUserAbortError)
      const status = await limiter.status("gpt-4o")
      expect([status.queued, status.open]).toEqual([0, 0])
      expect((await Effect.runPromise(emulator.stats)).admitted).toBe(1)
      await limiter.close()
    }))

  it("a refusal is an APIConnectionError whose cause is the quotaflow error", () =>
    withEmulator({ style: "openai" }, async (emulator) => {
      const limiter = createRateLimiter({
        provider: "openai",
        buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 100, window: "1 minute" }, { metric: "tokens", limit: 1_000, window: "1 minute" }] } }
      })
      const client = openaiClient(limiter, emulator.url)
      const tooLarge = await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5_000 }).catch((e: unknown) => e)
      expect(tooLarge).toBeInstanceOf(OpenAI.APIConnectionError)
      if (!(tooLarge instanceof OpenAI.APIConnectionError)) return
      expect(tooLarge.cause).toBeInstanceOf(CapacityExceeded)
      expect(tooLarge.cause).toMatchObject({ _tag: "CapacityExceeded", reason: "too-large", metric: "tokens" })
      await limiter.close()
      const closed = await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5 }).catch((e: unknown) => e)
      expect(closed).toBeInstanceOf(OpenAI.APIConnectionError)
      expect(closed instanceof OpenAI.APIConnectionError && closed.cause).toBeInstanceOf(LimiterClosed)
      expect((await Effect.runPromise(emulator.stats)).admitted).toBe(0)
    }))

  it("many concurrent calls at the emulator's exact limits: zero 429s", () =>
    withEmulator({ style: "openai", windowMs: 1_000, limits: { requests: 10, tokens: 20_000 } }, async (emulator) => {
      const limiter = createRateLimiter({
        provider: "openai",
        buckets: {
          "gpt-4o": {
            quotas: [{ metric: "requests", limit: 10, window: "1 second" }, { metric: "tokens", limit: 20_000, window: "1 second" }],
            // Booked this much later than the emulator would take them: the jitter of 30 connections opening.
            skew: "50 millis"
          }
        }
      })
      const client = openaiClient(limiter, emulator.url)
      // The process's first request is slow to leave (module loading, a first connection): one first, so that
      // the 30 leave as they are admitted.
      await client.models.list()
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) =>
        client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: `Question ${i}` }], max_tokens: 50 })))
      expect(answers.every((a) => a.choices.length === 1)).toBe(true)
      const stats = await Effect.runPromise(emulator.stats)
      expect([stats.admitted, stats.rejected429, stats.violations]).toEqual([30, 0, 0])
      await limiter.close()
    }), 30_000)
})

describe("the Anthropic SDK through limiter.fetch", () => {
  it("messages and their stream are charged and settled; count_tokens and models pass through", () =>
    withEmulator({ style: "anthropic" }, async (emulator) => {
      const limiter = createRateLimiter(anthropicConfig)
      const client = anthropicClient(limiter, emulator.url)

      const message = await client.messages.create({ model, max_tokens: 100, messages })
      expect(message.content[0]?.type).toBe("text")
      // 100 output tokens charged at admission; what was not generated came back.
      expect((await limiter.status("claude-sonnet-4.x")).quotas[2].used).toBeCloseTo(message.usage.output_tokens, 0)

      const stream = client.messages.stream({ model, max_tokens: 100, messages })
      const final = await stream.finalMessage()
      expect(final.usage.output_tokens).toBeGreaterThan(0)
      expect((await limiter.status("claude-sonnet-4.x")).open).toBe(0)

      const counted = await client.messages.countTokens({ model, messages })
      expect(counted.input_tokens).toBeGreaterThan(0)
      const listed = await client.models.list()
      expect(listed.data.map((m) => m.id)).toContain(model)
      expect((await client.models.retrieve(model)).id).toBe(model)

      expect(await requestsUsed(limiter, "claude-sonnet-4.x")).toBe(2) // the two messages only
      expect((await Effect.runPromise(emulator.stats)).admitted).toBe(2)
      await limiter.close()
    }))

  it("an abort while waiting is the SDK's APIUserAbortError", () =>
    withEmulator({ style: "anthropic" }, async (emulator) => {
      const limiter = createRateLimiter({ provider: "anthropic", buckets: { "claude-sonnet-4.x": { quotas: [{ metric: "requests", limit: 1, window: "1 minute" }] } } })
      const client = anthropicClient(limiter, emulator.url)
      await client.messages.create({ model, max_tokens: 5, messages })
      const controller = new AbortController()
      const waiting = client.messages.create({ model, max_tokens: 5, messages }, { signal: controller.signal }).catch((e: unknown) => e)
      await new Promise((resolve) => setTimeout(resolve, 50))
      controller.abort()
      expect(await waiting).toBeInstanceOf(Anthropic.APIUserAbortError)
      expect((await limiter.status("claude-sonnet-4.x")).queued).toBe(0)
      expect((await Effect.runPromise(emulator.stats)).admitted).toBe(1)
      await limiter.close()
    }))

  it("a refusal is an APIConnectionError whose cause is the quotaflow error", () =>
    withEmulator({ style: "anthropic" }, async (emulator) => {
      const limiter = createRateLimiter({
        provider: "anthropic",
        retry: { maxAttempts: 1 },
        breaker: { failureThreshold: 1, failureWindow: "1 minute", openFor: "1 minute" },
        buckets: { "claude-sonnet-4.x": { quotas: [{ metric: "requests", limit: 100, window: "1 minute" }, { metric: "output_tokens", limit: 1_000, window: "1 minute" }] } }
      })
      const client = anthropicClient(limiter, emulator.url)
      const tooLarge = await client.messages.create({ model, max_tokens: 5_000, messages }).catch((e: unknown) => e)
      expect(tooLarge).toBeInstanceOf(Anthropic.APIConnectionError)
      expect(tooLarge instanceof Anthropic.APIConnectionError && tooLarge.cause).toBeInstanceOf(CapacityExceeded)
      await limiter.close()
    }))

  it("many concurrent calls at the emulator's exact limits: zero 429s", () =>
    withEmulator({ style: "anthropic", windowMs: 1_000, limits: { requests: 10, input_tokens: 20_000, output_tokens: 4_000 } }, async (emulator) => {
      const limiter = createRateLimiter({
        provider: "anthropic",
        buckets: {
          "claude-sonnet-4.x": {
            quotas: [
              { metric: "requests", limit: 10, window: "1 second" },
              { metric: "input_tokens", limit: 20_000, window: "1 second" },
              { metric: "output_tokens", limit: 4_000, window: "1 second" }
            ],
            // Booked this much later than the emulator would take them: the jitter of 30 connections opening.
            skew: "50 millis"
          }
        }
      })
      const client = anthropicClient(limiter, emulator.url)
      await client.models.list()
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) =>
        client.messages.create({ model, max_tokens: 50, messages: [{ role: "user", content: `Question ${i}` }] })))
      expect(answers.every((a) => a.content.length === 1)).toBe(true)
      const stats = await Effect.runPromise(emulator.stats)
      expect([stats.admitted, stats.rejected429, stats.violations]).toEqual([30, 0, 0])
      await limiter.close()
    }), 30_000)
})

describe("the breaker under an SDK", () => {
  it("an open circuit is an APIConnectionError whose cause is CircuitOpen, and the call is not sent", () =>
    // The limiter believes in 100 requests a minute; the key has 1 (and says so only in its 429s).
    withEmulator({ style: "openai", limits: { requests: 1 }, limitHeaders: false }, async (emulator) => {
      const limiter = createRateLimiter({
        provider: "openai",
        retry: { maxAttempts: 1, maxDelay: "10 millis" },
        breaker: { failureThreshold: 1, failureWindow: "1 minute", openFor: "1 minute" },
        buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 100, window: "1 minute" }] } }
      })
      const client = openaiClient(limiter, emulator.url)
      await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5 })
      const refused = await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5 }).catch((e: unknown) => e)
      expect(refused).toBeInstanceOf(OpenAI.RateLimitError) // the provider's own 429, as the SDK reports it
      const open = await client.chat.completions.create({ model: "gpt-4o", messages, max_tokens: 5 }).catch((e: unknown) => e)
      expect(open).toBeInstanceOf(OpenAI.APIConnectionError)
      expect(open instanceof OpenAI.APIConnectionError && open.cause).toBeInstanceOf(CircuitOpen)
      const stats = await Effect.runPromise(emulator.stats)
      expect([stats.admitted, stats.rejected429]).toEqual([1, 1])
      await limiter.close()
    }))
})
