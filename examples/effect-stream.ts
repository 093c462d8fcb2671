/**
 * A stream under the limiter: each reply is charged 1,000 tokens when it is admitted and settled with the last
 * usage its chunks report, however it ends: a stream that completes, and one that fails after its first chunks
 * (the provider has billed what it sent), both keep what they reported, and the rest comes back.
 *
 * Run: npx tsx examples/effect-stream.ts
 */
import { Effect, Layer, Stream } from "effect"
import { MemoryBackendLive, RateLimited } from "quotaflow"

const LimiterLive = RateLimited.layer({
  buckets: {
    chat: { quotas: [{ metric: "tokens", limit: 100_000, window: "1 minute", algorithm: "sliding-window" }] }
  }
}).pipe(Layer.provide(MemoryBackendLive))

interface Chunk {
  readonly text: string
  readonly usage?: { readonly tokens: number }
}

// Stands in for a streamed completion: words, each chunk carrying the usage so far; it may break off midway.
const streamModel = (words: ReadonlyArray<string>, breakAfter?: number): Stream.Stream<Chunk, Error> => {
  const chunks = Stream.fromIterable(words.slice(0, breakAfter).map((text, i) => ({ text, usage: { tokens: 10 * (i + 1) } })))
  return breakAfter === undefined ? chunks : Stream.concat(chunks, Stream.fail(new Error("connection reset")))
}

const tokensUsed = Effect.map(RateLimited.status("chat"), (status) => status.quotas[0].used)

const program = Effect.gen(function*() {
  const whole = yield* RateLimited.submitStream(
    { bucket: "chat", usage: { tokens: 1_000 } },
    streamModel(["quota", "flow", "streams", "settle"]),
    { usageOf: (chunk) => chunk.usage }
  ).pipe(Stream.map((chunk) => chunk.text), Stream.runCollect)
  const afterWhole = yield* tokensUsed
  const broken = yield* RateLimited.submitStream(
    { bucket: "chat", usage: { tokens: 1_000 } },
    streamModel(["cut", "short", "here"], 2),
    { usageOf: (chunk) => chunk.usage }
  ).pipe(Stream.runCollect, Effect.either)
  return { text: [...whole].join(" "), afterWhole, broken, afterBroken: yield* tokensUsed }
})

const { afterBroken, afterWhole, broken, text } = await Effect.runPromise(program.pipe(Effect.provide(LimiterLive)))
console.log(`"${text}": ${afterWhole} tokens kept; a stream cut after 2 chunks kept ${afterBroken - afterWhole} more`)
if (text !== "quota flow streams settle") throw new Error(`unexpected text: ${text}`)
if (afterWhole !== 40) throw new Error(`expected the 40 tokens the stream reported, got ${afterWhole}`)
if (broken._tag !== "Left") throw new Error("the broken stream should fail")
if (afterBroken - afterWhole !== 20) throw new Error(`expected the broken stream to keep the 20 it reported, got ${afterBroken - afterWhole}`)
