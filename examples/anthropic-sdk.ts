/**
 * The Anthropic SDK under quotaflow: the client takes `limiter.fetch` and leaves retries to the limiter
 * (`maxRetries: 0`). A message is charged its input tokens and its `max_tokens` of output under the model's
 * family bucket (`claude-sonnet-4-20250514` -> `claude-sonnet-4.x`) and settled with the usage it reports, a
 * streamed one when its stream ends; `count_tokens` passes straight through (Anthropic limits it apart). The
 * provider here is the emulator, at 5 requests a second: ten concurrent messages and a stream all succeed with
 * no 429.
 *
 * Against the real API: `new Anthropic({ fetch: limiter.fetch, maxRetries: 0 })` (the key from ANTHROPIC_API_KEY).
 *
 * Run: npx tsx examples/anthropic-sdk.ts
 */
import Anthropic from "@anthropic-ai/sdk"
import { Effect, Exit, Scope } from "effect"
import { createRateLimiter } from "quotaflow"
import { Emulator } from "quotaflow/emulator"

const scope = Effect.runSync(Scope.make())
const provider = await Effect.runPromise(
  Scope.extend(
    Emulator.serve({ style: "anthropic", windowMs: 1_000, limits: { requests: 5, input_tokens: 10_000, output_tokens: 2_000 } }),
    scope
  )
)

const limiter = createRateLimiter({
  provider: "anthropic",
  buckets: {
    "claude-sonnet-4.x": {
      quotas: [
        { metric: "requests", limit: 5, window: "1 second" },
        { metric: "input_tokens", limit: 10_000, window: "1 second" },
        { metric: "output_tokens", limit: 2_000, window: "1 second" }
      ],
      skew: "50 millis"
    }
  }
})
const client = new Anthropic({ apiKey: "sk-ant-emulator", baseURL: provider.url, fetch: limiter.fetch, maxRetries: 0 })
const model = "claude-sonnet-4-20250514"

try {
  const counted = await client.messages.countTokens({ model, messages: [{ role: "user", content: "Hello" }] })
  const messages = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      client.messages.create({ model, max_tokens: 200, messages: [{ role: "user", content: `Question ${i}` }] }))
  )
  const stream = client.messages.stream({ model, max_tokens: 200, messages: [{ role: "user", content: "Tell me a story" }] })
  let text = ""
  stream.on("text", (delta) => (text += delta))
  await stream.finalMessage()
  const stats = await Effect.runPromise(provider.stats)
  const status = await limiter.status("claude-sonnet-4.x")

  console.log(`${messages.length} messages and a stream of ${text.length} characters; the provider refused ${stats.rejected429}`)
  if (counted.input_tokens <= 0 || !messages.every((message) => message.content.length === 1) || text.length === 0) {
    throw new Error("expected answers")
  }
  if (stats.rejected429 !== 0 || stats.admitted !== 11) throw new Error("the provider refused calls")
  // Everything settled: nothing is held, and the output charged beyond what was generated came back.
  if (status.open !== 0 || status.quotas[2].used >= 11 * 200) throw new Error("expected every call settled")
} finally {
  await limiter.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
