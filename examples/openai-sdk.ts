/**
 * The openai SDK under quotaflow: the client takes `limiter.fetch` and leaves retries to the limiter
 * (`maxRetries: 0`). Each chat completion is charged by its body (prompt tokens + max_tokens) under its model's
 * bucket; `models.list` passes straight through. The provider here is the emulator, at 5 requests a second:
 * fifteen concurrent calls all succeed with no 429, and a call too large for the quota is refused before it is
 * sent, as an `APIConnectionError` whose `cause` is quotaflow's `CapacityExceeded`.
 *
 * Against the real API: `new OpenAI({ fetch: limiter.fetch, maxRetries: 0 })` (the key from OPENAI_API_KEY).
 *
 * Run: npx tsx examples/openai-sdk.ts
 */
import { Effect, Exit, Scope } from "effect"
import OpenAI from "openai"
import { CapacityExceeded, createRateLimiter } from "quotaflow"
import { Emulator } from "quotaflow/emulator"

const scope = Effect.runSync(Scope.make())
const provider = await Effect.runPromise(
  Scope.extend(Emulator.serve({ style: "openai", windowMs: 1_000, limits: { requests: 5, tokens: 10_000 } }), scope)
)

const limiter = createRateLimiter({
  provider: "openai",
  buckets: {
    "gpt-4o": {
      quotas: [
        { metric: "requests", limit: 5, window: "1 second" },
        { metric: "tokens", limit: 10_000, window: "1 second" }
      ],
      skew: "50 millis"
    }
  }
})
const client = new OpenAI({ apiKey: "sk-emulator", baseURL: `${provider.url}/v1`, fetch: limiter.fetch, maxRetries: 0 })

try {
  const models = await client.models.list() // not a generation: passes through, uncounted
  const answers = await Promise.all(
    Array.from({ length: 15 }, (_, i) =>
      client.chat.completions.create({ model: "gpt-4o", max_tokens: 64, messages: [{ role: "user", content: `Question ${i}` }] }))
  )
  // 20,000 tokens can never fit a 10,000-token quota: refused here, never sent.
  const refused = await client.chat.completions
    .create({ model: "gpt-4o", max_tokens: 20_000, messages: [{ role: "user", content: "An essay, please" }] })
    .catch((error: unknown) => error)
  const stats = await Effect.runPromise(provider.stats)

  const cause = refused instanceof OpenAI.APIConnectionError ? refused.cause : refused
  console.log(`${answers.length} answers; the provider refused ${stats.rejected429}; the large call: ${String(cause)}`)
  if (models.data.length === 0 || !answers.every((answer) => answer.choices.length === 1)) throw new Error("expected answers")
  if (stats.rejected429 !== 0 || stats.admitted !== 15) throw new Error("the provider refused calls")
  if (!(refused instanceof OpenAI.APIConnectionError && refused.cause instanceof CapacityExceeded)) {
    throw new Error("expected the refusal as the cause of an APIConnectionError")
  }
} finally {
  await limiter.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
