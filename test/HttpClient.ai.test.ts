/**
 * `@effect/ai-openai` rate-limited through the HttpClient middleware, against the emulator: the SDK's own
 * client (chat completions), and `LanguageModel.generateText` / `streamText` over the Responses API, each
 * charged by its request body and settled at the usage the SDK itself reports.
 */
import { LanguageModel } from "@effect/ai"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { FetchHttpClient } from "@effect/platform"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Layer, Stream } from "effect"
import * as Emulator from "../src/emulator/Emulator.js"
import * as LimitedHttpClient from "../src/HttpClient.js"
import { MemoryBackendLive, RateLimited } from "../src/index.js"
import type { LimiterConfig } from "../src/index.js"

const config: LimiterConfig = {
  provider: "openai",
  buckets: {
    "gpt-4o": {
      quotas: [
        { metric: "requests", limit: 10, algorithm: "concurrency" },
        { metric: "tokens", limit: 1_000_000, window: "1 minute", algorithm: "sliding-window", refunds: true }
      ]
    }
  }
}

/** The emulator, and an OpenAI client on the limited HttpClient (the layer), with the limiter. */
const harness = (emulator: Emulator.EmulatorConfigInput, limiter: LimiterConfig = config) =>
  Effect.gen(function*() {
    const served = yield* Emulator.serve(emulator, { port: 0 })
    const context = yield* Layer.build(
      OpenAiClient.layer({ apiUrl: `${served.url}/v1` }).pipe(
        Layer.provide(LimitedHttpClient.layer()),
        Layer.provide(FetchHttpClient.layer),
        Layer.provideMerge(RateLimited.layer(limiter).pipe(Layer.provide(MemoryBackendLive)))
      )
    )
    const tokens = Effect.map(
      Context.get(context, RateLimited.RateLimited).status("gpt-4o"),
      (status) => ({ used: status.quotas.find((quota) => quota.metric === "tokens")?.used, open: status.open })
    )
    return { emulator: served, context, client: Context.get(context, OpenAiClient.OpenAiClient), tokens }
  })

const quiet = { style: "openai", limitHeaders: false, limits: { requests: 100, tokens: 1_000_000 } } as const

describe("@effect/ai-openai through the HttpClient middleware", () => {
  it.live("a chat completion of the SDK's client is settled at the usage it reports", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, tokens } = yield* harness(quiet)
      const completion = yield* client.client.createChatCompletion({
        model: "gpt-4o-2024-08-06",
        messages: [{ role: "user", content: "Hi" }],
        max_tokens: 64
      })
      assert.strictEqual(completion.choices.length, 1)
      const total = completion.usage?.total_tokens
      assert.isDefined(total)
      assert.deepStrictEqual(yield* tokens, { used: total, open: 0 })
    })))

  it.live("LanguageModel.generateText and streamText (Responses API) settle at the usage they report", () =>
    Effect.scoped(Effect.gen(function*() {
      const { context, tokens } = yield* harness(quiet)
      const model = OpenAiLanguageModel.model("gpt-4o", { max_output_tokens: 200 })
      const generated = yield* LanguageModel.generateText({ prompt: "Hello there" }).pipe(Effect.provide(model), Effect.provide(context))
      assert.isAbove(generated.text.length, 0)
      const first = generated.usage.totalTokens ?? 0
      assert.isAbove(first, 0)
      assert.deepStrictEqual(yield* tokens, { used: first, open: 0 })

      const parts = yield* LanguageModel.streamText({ prompt: "Hello again" }).pipe(
        Stream.runCollect,
        Effect.provide(model),
        Effect.provide(context)
      )
      const finish = Chunk.findLast(parts, (part) => part.type === "finish")
      assert.isTrue(finish._tag === "Some" && finish.value.type === "finish")
      if (finish._tag !== "Some" || finish.value.type !== "finish") return
      const second = finish.value.usage.totalTokens ?? 0
      assert.isAbove(second, 0)
      assert.deepStrictEqual(yield* tokens, { used: first + second, open: 0 })
    })))

  it.live("many concurrent SDK calls at the emulator's exact limits get no 429", () =>
    Effect.scoped(Effect.gen(function*() {
      const { client, emulator } = yield* harness(
        { style: "openai", windowMs: 1_000, limits: { requests: 4, tokens: 4_000 } },
        {
          provider: "openai",
          buckets: {
            "gpt-4o": {
              quotas: [{ metric: "requests", limit: 4, window: "1 second" }, { metric: "tokens", limit: 4_000, window: "1 second" }],
              skew: "50 millis"
            }
          }
        }
      )
      const completions = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => client.client.createChatCompletion({ model: "gpt-4o", messages: [{ role: "user", content: `Question ${i}` }], max_tokens: 300 }),
        { concurrency: "unbounded" }
      )
      const stats = yield* emulator.stats
      assert.strictEqual(completions.length, 10)
      assert.strictEqual(stats.rejected429, 0)
      assert.strictEqual(stats.violations, 0)
      assert.strictEqual(stats.admitted, 10)
    })), { timeout: 30_000 })
})
