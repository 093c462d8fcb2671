/**
 * @effect/ai on a rate-limited HttpClient: `quotaflow/HttpClient`'s layer wraps the program's `HttpClient`, so that
 * every generation request the OpenAI client sends is charged by its JSON body under its model's bucket, and
 * settled with the usage its response reports (for a stream, once the stream ends). The provider here is the
 * emulator, limited to 4 requests a second; twelve `generateText` calls sent at once and one `streamText` all
 * succeed, with no 429, and the tokens the bucket counts are exactly those the SDK reports.
 *
 * Run: npx tsx examples/effect-ai.ts
 */
import { LanguageModel } from "@effect/ai"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { FetchHttpClient } from "@effect/platform"
import { Chunk, Effect, Layer, Option, Stream } from "effect"
import { MemoryBackendLive, RateLimited } from "quotaflow"
import { Emulator } from "quotaflow/emulator"
import * as LimitedHttpClient from "quotaflow/HttpClient"

const program = Effect.gen(function*() {
  const provider = yield* Emulator.serve({ style: "openai", windowMs: 1_000, limits: { requests: 4, tokens: 40_000 } })

  const LimiterLive = RateLimited.layer({
    provider: "openai",
    buckets: {
      "gpt-4o": {
        quotas: [
          { metric: "requests", limit: 4, window: "1 second" },
          // A strict trailing window settled to the usage each answer reports, so that `used` is exactly what
          // the calls used (OpenAI itself keeps what it charged: refunds false is its default).
          { metric: "tokens", limit: 40_000, window: "1 minute", algorithm: "sliding-window", refunds: true }
        ],
        // Each call is booked this much later than it may reach the provider, for jitter on a busy machine.
        skew: "50 millis"
      }
    }
  }).pipe(Layer.provide(MemoryBackendLive))

  const OpenAiLive = OpenAiClient.layer({ apiUrl: `${provider.url}/v1` }).pipe(
    Layer.provide(LimitedHttpClient.layer()),
    Layer.provide(FetchHttpClient.layer),
    Layer.provideMerge(LimiterLive)
  )
  const model = OpenAiLanguageModel.model("gpt-4o", { max_output_tokens: 256 })

  const run = Effect.gen(function*() {
    const started = Date.now()
    const answers = yield* Effect.forEach(
      Array.from({ length: 12 }, (_, i) => `Question ${i}`),
      (prompt) => LanguageModel.generateText({ prompt }),
      { concurrency: "unbounded" }
    )
    const elapsed = Date.now() - started
    const parts = yield* Stream.runCollect(LanguageModel.streamText({ prompt: "Tell me more" }))
    const text = Chunk.join(Chunk.filterMap(parts, (part) => (part.type === "text-delta" ? Option.some(part.delta) : Option.none())), "")
    const finish = Chunk.findLast(parts, (part) => part.type === "finish")
    const status = yield* RateLimited.status("gpt-4o")
    return { answers, elapsed, text, finish, status }
  }).pipe(Effect.provide(model))

  const { answers, elapsed, text, finish, status } = yield* Effect.provide(run, OpenAiLive)
  const stats = yield* provider.stats
  const reported = answers.reduce((sum, answer) => sum + (answer.usage.totalTokens ?? 0), 0) +
    (finish._tag === "Some" && finish.value.type === "finish" ? finish.value.usage.totalTokens ?? 0 : 0)
  const counted = status.quotas.find((quota) => quota.metric === "tokens")?.used

  console.log(`${answers.length} answers in ${elapsed} ms and a stream of ${text.length} characters; ` +
    `the provider refused ${stats.rejected429}; tokens reported ${reported}, counted ${counted}`)
  if (answers.some((answer) => answer.text.length === 0) || text.length === 0) throw new Error("expected thirteen answers")
  if (stats.rejected429 !== 0 || stats.violations !== 0) throw new Error("the provider refused calls or saw its quota exceeded")
  // 4 at once, then one every 250 ms: the twelfth is sent 2 seconds in at the soonest.
  if (elapsed < 1_800) throw new Error(`twelve calls in ${elapsed} ms: faster than 4 a second`)
  if (reported === 0 || counted !== reported) throw new Error(`the bucket counted ${counted} tokens, the answers reported ${reported}`)
})

await Effect.runPromise(Effect.scoped(program))
