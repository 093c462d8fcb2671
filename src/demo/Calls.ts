/**
 * Sending the demo's calls through a limiter, counting as they go: what a single-process run and each worker
 * of a multi-process run have in common. Kept apart from the emulator so that a worker loads only what it runs.
 *
 * @example
 * ```ts
 * import { endpointOf, makeCounters, runCalls } from "./Calls.js"
 *
 * const counters = makeCounters()
 * yield* runCalls(limiter, endpointOf("anthropic", emulatorUrl), "anthropic", calls, counters)
 * ```
 */
import { Clock, Data, Effect, Either, Schema } from "effect"
import type { RateLimitedService } from "../RateLimited.js"
import type { QuotaProgress, ResolvedDemoOptions } from "./Demo.js"
import { bucketName, chargeOf, type DemoMetric, type DemoStyle, finalChargeOf, metricsOf } from "./Scenario.js"
import type { ChatCall } from "./Workload.js"

/**
 * The demo could not run: bad options (`reason: "invalid-options"`), or the emulator or the limiter could not
 * start or be read (`reason: "failed"`).
 *
 * @example
 * ```ts
 * runDemo({ calls: 0 }).pipe(Effect.catchTag("DemoError", (e) => Effect.logError(e.message)))
 * ```
 */
export class DemoError extends Data.TaggedError("DemoError")<{
  readonly reason: "invalid-options" | "failed"
  readonly message: string
}> {}

const OpenAIResponse = Schema.Struct({
  usage: Schema.Struct({ prompt_tokens: Schema.Number, completion_tokens: Schema.Number })
})
const AnthropicResponse = Schema.Struct({
  usage: Schema.Struct({ input_tokens: Schema.Number, output_tokens: Schema.Number })
})
const decodeOpenAI = Schema.decodeUnknownEither(OpenAIResponse)
const decodeAnthropic = Schema.decodeUnknownEither(AnthropicResponse)

/** The tokens a successful response reports as generated. */
const generatedTokens = (style: DemoStyle, body: unknown): number | undefined => {
  if (style === "openai") return Either.getOrUndefined(Either.map(decodeOpenAI(body), (r) => r.usage.completion_tokens))
  return Either.getOrUndefined(Either.map(decodeAnthropic(body), (r) => r.usage.output_tokens))
}

const requestBody = (style: DemoStyle, call: ChatCall) => {
  const messages = [{ role: "user", content: `Request ${call.id}: summarize the attached report in plain words.` }]
  const common = { max_tokens: call.maxTokens, messages, x_prompt_tokens: call.promptTokens, x_completion_tokens: call.completionTokens }
  return style === "openai" ? { model: "gpt-4o", ...common } : { model: "claude-sonnet-4-5", ...common }
}

/** The outcome of one HTTP call. */
interface CallResult {
  readonly status: number
  /** Tokens generated, from the response's usage (200 only). */
  readonly generated: number | undefined
}

class CallFailed extends Data.TaggedError("CallFailed")<{ readonly message: string }> {}

const post = (url: string, body: unknown, style: DemoStyle): Effect.Effect<CallResult, CallFailed> =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal
      })
      const text = await response.text()
      if (response.status !== 200) return { status: response.status, generated: undefined }
      const json: unknown = JSON.parse(text)
      return { status: 200, generated: generatedTokens(style, json) }
    },
    catch: (error) => new CallFailed({ message: error instanceof Error ? error.message : String(error) })
  })

/**
 * What one process has seen of its share of the calls so far; `first` and `end` are epoch milliseconds.
 *
 * @example
 * ```ts
 * const counters = makeCounters()
 * yield* runCalls(limiter, endpoint, "anthropic", calls, counters)
 * counters.done // calls that got a 200
 * ```
 */
export interface CallCounters {
  done: number
  failed: number
  inFlight: number
  rejected429: number
  readonly waits: Array<number>
  readonly totals: { [M in DemoMetric]: number }
  /** When the first call was submitted. */
  first: number
  /** When the last call ended. */
  end: number
}

/**
 * Fresh counters.
 *
 * @example
 * ```ts
 * makeCounters().done // 0
 * ```
 */
export const makeCounters = (): CallCounters => ({
  done: 0,
  failed: 0,
  inFlight: 0,
  rejected429: 0,
  waits: [],
  totals: { requests: 0, tokens: 0, input_tokens: 0, output_tokens: 0 },
  first: Infinity,
  end: -Infinity
})

/**
 * The chat endpoint of the emulator at `url` for a style.
 *
 * @example
 * ```ts
 * endpointOf("openai", "http://127.0.0.1:40123") // "http://127.0.0.1:40123/v1/chat/completions"
 * ```
 */
export const endpointOf = (style: DemoStyle, url: string): string =>
  `${url}${style === "openai" ? "/v1/chat/completions" : "/v1/messages"}`

/**
 * Sends `calls` to `endpoint` through `limiter`, all submitted at once, counting into `counters`.
 *
 * @example
 * ```ts
 * yield* runCalls(limiter, endpointOf("anthropic", emulator.url), "anthropic", makeWorkload(60, 1), makeCounters())
 * ```
 */
export const runCalls = (
  limiter: RateLimitedService,
  endpoint: string,
  style: DemoStyle,
  calls: ReadonlyArray<ChatCall>,
  counters: CallCounters
): Effect.Effect<void> => {
  const runCall = (call: ChatCall) =>
    Effect.gen(function*() {
      const submitted = yield* Clock.currentTimeMillis
      counters.first = Math.min(counters.first, submitted)
      const body = requestBody(style, call)
      const send = Effect.gen(function*() {
        counters.waits.push((yield* Clock.currentTimeMillis) - submitted)
        counters.inFlight++
        return yield* post(endpoint, body, style).pipe(Effect.ensuring(Effect.sync(() => counters.inFlight--)))
      })
      const result = yield* limiter.submit({ bucket: bucketName, usage: chargeOf(style, call) }, send, {
        // Anthropic corrects the output to what was generated; OpenAI keeps its charge (its quotas do not refund).
        actualUsage: (r) =>
          style === "anthropic" && r.status === 200 && r.generated !== undefined
            ? { input_tokens: call.promptTokens, output_tokens: r.generated }
            : undefined
      })
      counters.end = Math.max(counters.end, yield* Clock.currentTimeMillis)
      if (result.status === 429) counters.rejected429++
      if (result.status !== 200) {
        counters.failed++
        return
      }
      counters.done++
      const final = finalChargeOf(style, call, result.generated ?? call.maxTokens)
      for (const metric of metricsOf(style)) counters.totals[metric] += final[metric] ?? 0
    }).pipe(
      Effect.catchAll(() =>
        Effect.gen(function*() {
          counters.end = Math.max(counters.end, yield* Clock.currentTimeMillis)
          counters.failed++
        })
      )
    )
  return Effect.forEach(calls, runCall, { concurrency: "unbounded", discard: true })
}

/**
 * The limiter's side of a progress report: this process's queue and each quota's use.
 *
 * @example
 * ```ts
 * const { queued, quotas } = yield* limiterProgress(limiter, options)
 * ```
 */
export const limiterProgress = (
  limiter: RateLimitedService,
  options: Pick<ResolvedDemoOptions, "style" | "limits">
): Effect.Effect<{ readonly queued: number; readonly quotas: ReadonlyArray<QuotaProgress> }> =>
  Effect.map(Effect.orDie(limiter.status(bucketName)), (status) => ({
    queued: status.queued,
    quotas: status.quotas.flatMap((q): Array<QuotaProgress> => {
      const metric = metricsOf(options.style).find((m) => m === q.metric)
      const limit = metric === undefined ? undefined : options.limits[metric]
      return metric === undefined || limit === undefined ? [] : [{ metric, used: q.used, limit }]
    })
  }))

