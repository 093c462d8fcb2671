/**
 * Effect programs: ten calls at once on a bucket of 5 requests a second. The first five start at once (the
 * token bucket starts full), the others one every 200 ms as it refills, in the order they arrived. Each is
 * charged 500 tokens at admission and settled at the 100 it used: the rest comes back.
 *
 * Run: npx tsx examples/effect-submit.ts
 */
import { Effect, Layer } from "effect"
import { MemoryBackendLive, RateLimited } from "quotaflow"

const LimiterLive = RateLimited.layer({
  buckets: {
    chat: {
      quotas: [
        { metric: "requests", limit: 5, window: "1 second" },
        // A strict trailing window, so that `used` is exactly what the last minute's calls used.
        { metric: "tokens", limit: 10_000, window: "1 minute", algorithm: "sliding-window" }
      ]
    }
  }
}).pipe(Layer.provide(MemoryBackendLive))

// Stands in for a client call: answers at once, and says how many tokens it used.
const callModel = (prompt: string) => Effect.succeed({ text: `echo: ${prompt}`, usage: { total_tokens: 100 } })

const program = Effect.gen(function*() {
  const started = Date.now()
  const startedAt: Array<number> = []
  const answers = yield* Effect.forEach(
    Array.from({ length: 10 }, (_, i) => `prompt ${i}`),
    (prompt) =>
      RateLimited.submit(
        { bucket: "chat", usage: { tokens: 500 } }, // charged 500 at admission...
        Effect.suspend(() => {
          startedAt.push(Date.now() - started)
          return callModel(prompt)
        }),
        { actualUsage: (response) => ({ tokens: response.usage.total_tokens }) } // ...settled at the 100 it used
      ),
    { concurrency: "unbounded" }
  )
  const status = yield* RateLimited.status("chat")
  return { answers, startedAt, status }
})

const { answers, startedAt, status } = await Effect.runPromise(program.pipe(Effect.provide(LimiterLive)))
const tokens = status.quotas.find((quota) => quota.metric === "tokens")

console.log(`started at (ms): ${startedAt.join(", ")}; tokens used: ${tokens?.used}; queued: ${status.queued}`)
if (answers.length !== 10 || answers[9].text !== "echo: prompt 9") throw new Error("expected ten answers, in order")
if (startedAt.filter((ms) => ms < 150).length > 5) throw new Error("more than the bucket's 5 calls started at once")
if (startedAt[9] < 900) throw new Error(`the tenth call started after ${startedAt[9]} ms, before its token was back`)
if (tokens?.used !== 1_000 || status.queued !== 0) throw new Error("expected 10 x 100 tokens used and nobody waiting")
