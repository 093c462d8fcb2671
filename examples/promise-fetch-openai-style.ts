/**
 * Plain async code with an OpenAI-style provider: `limiter.fetch` is what an SDK client takes
 * (`new OpenAI({ fetch: limiter.fetch, maxRetries: 0 })`). It charges each request by its JSON body (prompt
 * tokens counted with the model's encoding, plus max_tokens), runs it under its model family's bucket and
 * settles it with the usage the response reports. The provider here is the emulator, limited to 4 requests
 * a second; twelve requests sent at once all succeed, with no 429.
 *
 * Run: npx tsx examples/promise-fetch-openai-style.ts
 */
import { Effect, Exit, Scope } from "effect"
import { createRateLimiter } from "quotaflow"
import { Emulator } from "quotaflow/emulator"

const scope = Effect.runSync(Scope.make())
const provider = await Effect.runPromise(
  Scope.extend(Emulator.serve({ style: "openai", windowMs: 1_000, limits: { requests: 4, tokens: 20_000 } }), scope)
)

const limiter = createRateLimiter({
  provider: "openai",
  buckets: {
    "gpt-4o": {
      quotas: [
        { metric: "requests", limit: 4, window: "1 second" },
        { metric: "tokens", limit: 20_000, window: "1 second" }
      ],
      // Each call is booked this much later than it may reach the provider, for jitter on a busy machine.
      skew: "50 millis"
    }
  }
})

const started = Date.now()
try {
  const responses = await Promise.all(
    Array.from({ length: 12 }, (_, i) =>
      limiter.fetch(`${provider.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-2024-08-06", max_tokens: 64, messages: [{ role: "user", content: `Question ${i}` }] })
      }))
  )
  const elapsed = Date.now() - started
  const bodies = await Promise.all(responses.map((response) => response.json() as Promise<{ choices?: ReadonlyArray<unknown> }>))
  const stats = await Effect.runPromise(provider.stats)

  console.log(`${responses.length} answers in ${elapsed} ms; the provider refused ${stats.rejected429}, saw ${stats.violations} violations`)
  if (!responses.every((response) => response.status === 200) || !bodies.every((body) => body.choices?.length === 1)) {
    throw new Error("expected twelve answers")
  }
  if (stats.rejected429 !== 0 || stats.violations !== 0) throw new Error("the provider refused calls or saw its quota exceeded")
  // 4 at once, then one every 250 ms: the twelfth is sent 2 seconds in at the soonest.
  if (elapsed < 1_800) throw new Error(`twelve calls in ${elapsed} ms: faster than 4 a second`)
} finally {
  await limiter.close()
  await Effect.runPromise(Scope.close(scope, Exit.void))
}
