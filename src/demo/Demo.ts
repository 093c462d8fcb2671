/**
 * The end-to-end demo: a provider emulator on a loopback port, a few hundred chat calls sent to it over real
 * HTTP through quotaflow's limiter (memory backend, or Redis with `redis`), and a summary of how close the run came to the fastest
 * the quotas allow, with the emulator's own count of 429s and quota violations.
 *
 * Rendering is not done here: `runDemo` reports progress through a callback and returns a `DemoSummary`
 * (see `Render.ts` for the terminal view).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { runDemo } from "./Demo.js"
 *
 * const summary = await Effect.runPromise(runDemo({ style: "openai", calls: 60, windowMs: 2_000 }))
 * console.log(summary.efficiency, summary.rejected429.emulator, summary.violations)
 * ```
 */
import { Clock, Effect, Fiber, Layer, Schedule, Schema } from "effect"
import * as Emulator from "../emulator/Emulator.js"
import { MemoryBackendLive, RateLimited, RedisBackendLive } from "../index.js"
import { DemoError, endpointOf, limiterProgress, makeCounters, runCalls } from "./Calls.js"
import {
  type DemoAlgorithm,
  type DemoLimits,
  type DemoMetric,
  type DemoStyle,
  defaultSkewMs,
  defaultLimits,
  emulatorConfig,
  limiterConfig,
  metricsOf,
  minimumMs
} from "./Scenario.js"
import { makeWorkload, maxTokensChoices } from "./Workload.js"

export { type CallCounters, DemoError, endpointOf, limiterProgress, makeCounters, runCalls } from "./Calls.js"

/**
 * What to run; every field has a default.
 *
 * @example
 * ```ts
 * const options: DemoOptions = { style: "anthropic", algorithm: "sliding-window", calls: 120, windowMs: 3_000, seed: 7 }
 * ```
 */
export interface DemoOptions {
  /** Provider style (default `"anthropic"`). */
  readonly style?: DemoStyle
  /** How both the emulator and the limiter count (default `"token-bucket"`). */
  readonly algorithm?: DemoAlgorithm
  /** Number of chat calls (default 300). */
  readonly calls?: number
  /** Length of the emulated "minute" in milliseconds (default 6,000). */
  readonly windowMs?: number
  /** Seed of the workload (default 1). */
  readonly seed?: number
  /** Limits per window (default `defaultLimits(style)`); only the style's metrics are used. */
  readonly limits?: DemoLimits
  /**
   * How much later than others a call may reach the emulator, in milliseconds: the limiter bucket's `skew`
   * (default `defaultSkewMs(algorithm)`, at most a tenth of the window; see `Scenario.limiterConfig`).
   */
  readonly skewMs?: number
  /**
   * Keep the limiter's state in Redis at `url` under `namespace` (default: a namespace of its own for this
   * run) instead of in memory.
   */
  readonly redis?: { readonly url: string; readonly namespace?: string }
  /** Called once the emulator listens, before the first call. */
  readonly onStart?: (info: DemoStart) => Effect.Effect<void>
  /** Called every `progressIntervalMs` while the calls run, and once at the end. */
  readonly onProgress?: (progress: DemoProgress) => Effect.Effect<void>
  /** Interval between progress reports (default 100 ms). */
  readonly progressIntervalMs?: number
}

/**
 * The options with every default filled in.
 *
 * @example
 * ```ts
 * const resolved: ResolvedDemoOptions = resolveOptions({ style: "openai" })
 * resolved.limits // { requests: 120, tokens: 100000 }
 * ```
 */
export interface ResolvedDemoOptions {
  readonly style: DemoStyle
  readonly algorithm: DemoAlgorithm
  readonly calls: number
  readonly windowMs: number
  readonly seed: number
  readonly limits: DemoLimits
  readonly skewMs: number
}

/**
 * What `onStart` is told: where the emulator listens and what runs.
 *
 * @example
 * ```ts
 * const onStart = (info: DemoStart) => Effect.log(`emulator on ${info.url}, ${info.options.calls} calls`)
 * ```
 */
export interface DemoStart {
  readonly url: string
  readonly options: ResolvedDemoOptions
  readonly backend: DemoBackend
}

/**
 * Where the limiter keeps its state and how many processes share it.
 *
 * @example
 * ```ts
 * const backend: DemoBackend = { kind: "redis", url: "redis://127.0.0.1:6379", processes: 4 }
 * ```
 */
export interface DemoBackend {
  readonly kind: "memory" | "redis"
  /** The Redis URL (Redis only). */
  readonly url?: string
  readonly processes: number
}

/** The in-memory backend of a single process. */
export const memoryBackend: DemoBackend = { kind: "memory", processes: 1 }

/**
 * One quota's state in a progress report: `used` is what currently counts against the quota as the limiter
 * sees it (the bucket's fill for a token bucket, the last window's sum for a sliding window); `limit` is the
 * provider's limit per window.
 *
 * @example
 * ```ts
 * const quota: QuotaProgress = { metric: "output_tokens", used: 23_100, limit: 25_000 }
 * ```
 */
export interface QuotaProgress {
  readonly metric: DemoMetric
  readonly used: number
  readonly limit: number
}

/**
 * A progress report.
 *
 * @example
 * ```ts
 * const onProgress = (p: DemoProgress) => Effect.log(`${p.done}/${p.total} done, ${p.queued} queued`)
 * ```
 */
export interface DemoProgress {
  readonly elapsedMs: number
  readonly total: number
  /** Calls that completed with a 200. */
  readonly done: number
  /** Calls that ended with anything else (a 429, an error). */
  readonly failed: number
  /** Admitted calls whose response has not ended yet. */
  readonly inFlight: number
  /** Calls waiting in the limiter's queue. */
  readonly queued: number
  /** 429 responses received so far. */
  readonly rejected429: number
  readonly quotas: ReadonlyArray<QuotaProgress>
}

/**
 * One quota in the summary: the total pushed through it (settled amounts), the minimum time that total
 * needs at the limit, and the most the emulator ever counted in use on it.
 *
 * @example
 * ```ts
 * const q: QuotaSummary = { metric: "output_tokens", limit: 25_000, total: 95_826, minimumMs: 16_998, binding: true, peak: 24_861 }
 * ```
 */
export interface QuotaSummary {
  readonly metric: DemoMetric
  readonly limit: number
  readonly total: number
  readonly minimumMs: number
  readonly binding: boolean
  /** The most the emulator ever had in use on this metric. */
  readonly peak: number
}

/**
 * The outcome of a run.
 *
 * @example
 * ```ts
 * const line = (s: DemoSummary) => `${(s.efficiency ?? 0) * 100}% of optimal, ${s.rejected429.emulator} 429s`
 * ```
 */
export interface DemoSummary {
  readonly options: ResolvedDemoOptions
  readonly backend: DemoBackend
  /** From the first call submitted to the last response ended. */
  readonly wallMs: number
  /** The binding quota's minimum time (see `Scenario.minimumMs`). */
  readonly minimumMs: number
  readonly bindingMetric: DemoMetric
  /** `minimumMs / wallMs`; `undefined` when the whole workload fits the quotas' first burst. */
  readonly efficiency: number | undefined
  readonly ok: number
  readonly failed: number
  /** 429s counted by the emulator (`GET /stats`) and 429 responses the calls received. */
  readonly rejected429: { readonly emulator: number; readonly responses: number }
  /** Admissions after which the emulator's independent audit found a quota exceeded. */
  readonly violations: number
  /** Time from submission to admission. */
  readonly waitMs: { readonly p50: number; readonly p99: number; readonly max: number }
  readonly quotas: ReadonlyArray<QuotaSummary>
}

/**
 * Fills in the defaults.
 *
 * @example
 * ```ts
 * resolveOptions({}) // { style: "anthropic", algorithm: "token-bucket", calls: 300, windowMs: 6000, seed: 1, limits: {...}, skewMs: 200 }
 * ```
 */
export const resolveOptions = (options: DemoOptions = {}): ResolvedDemoOptions => {
  const style = options.style ?? "anthropic"
  const limits = options.limits ?? defaultLimits(style)
  const own: { [M in DemoMetric]?: number } = {}
  for (const metric of metricsOf(style)) {
    const limit = limits[metric]
    if (limit !== undefined) own[metric] = limit
  }
  const algorithm = options.algorithm ?? "token-bucket"
  const windowMs = options.windowMs ?? 6_000
  return {
    style,
    algorithm,
    calls: options.calls ?? 300,
    windowMs,
    seed: options.seed ?? 1,
    limits: own,
    skewMs: options.skewMs ?? Math.min(defaultSkewMs(algorithm), Math.floor(windowMs / 10))
  }
}

const largestCharge = (style: DemoStyle, metric: DemoMetric): number => {
  const maxTokens = Math.max(...maxTokensChoices.map(([value]) => value))
  switch (metric) {
    case "requests":
      return 1
    case "tokens":
      return 3_000 + maxTokens
    case "input_tokens":
      return 3_000
    case "output_tokens":
      return style === "anthropic" ? maxTokens : 0
  }
}

/**
 * What is wrong with resolved options (empty when they can run).
 *
 * @example
 * ```ts
 * validate(resolveOptions({ calls: 0 })) // ["calls must be a positive integer, got 0"]
 * ```
 */
export const validate = (options: ResolvedDemoOptions): ReadonlyArray<string> => {
  const issues: Array<string> = []
  const positiveInt = (name: string, value: number) => {
    if (!Number.isSafeInteger(value) || value <= 0) issues.push(`${name} must be a positive integer, got ${value}`)
  }
  positiveInt("calls", options.calls)
  positiveInt("windowMs", options.windowMs)
  if (!Number.isSafeInteger(options.seed)) issues.push(`seed must be an integer, got ${options.seed}`)
  if (!Number.isSafeInteger(options.skewMs) || options.skewMs < 0 || options.skewMs * 4 > options.windowMs) {
    issues.push(`skewMs must be an integer from 0 to a quarter of windowMs, got ${options.skewMs}`)
  }
  const limited = metricsOf(options.style).filter((metric) => options.limits[metric] !== undefined)
  if (limited.length === 0) issues.push(`no limits set for the ${options.style} style (${metricsOf(options.style).join(", ")})`)
  for (const metric of limited) {
    const limit = options.limits[metric] ?? 0
    positiveInt(`limits.${metric}`, limit)
    const largest = largestCharge(options.style, metric)
    if (limit < largest) issues.push(`limits.${metric} must be at least ${largest}, the largest single charge of the workload`)
  }
  return issues
}

const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!

const StatsResponse = Schema.Struct({
  rejected429: Schema.Number,
  violations: Schema.Number,
  peak: Schema.Record({ key: Schema.String, value: Schema.Number })
})

/**
 * The emulator's `GET /stats`.
 *
 * @example
 * ```ts
 * const stats = yield* fetchStats(emulator.url)
 * ```
 */
export const fetchStats = (url: string) =>
  Effect.tryPromise({
    try: async () => Schema.decodeUnknownSync(StatsResponse)(await (await fetch(`${url}/stats`)).json()),
    catch: (error) => new DemoError({ reason: "failed", message: `could not read the emulator's /stats: ${String(error)}` })
  })

/**
 * The summary of a run from what its calls counted (summed over every process) and the emulator's stats.
 *
 * @example
 * ```ts
 * const summary = summarize(options, memoryBackend, { wallMs, ok, failed, rejected429, waits, totals }, stats)
 * ```
 */
export const summarize = (
  options: ResolvedDemoOptions,
  backend: DemoBackend,
  run: {
    readonly wallMs: number
    readonly ok: number
    readonly failed: number
    readonly rejected429: number
    readonly waits: ReadonlyArray<number>
    readonly totals: { readonly [M in DemoMetric]: number }
  },
  stats: typeof StatsResponse.Type
): DemoSummary => {
  const { algorithm, limits, style, windowMs } = options
  const wallMs = Math.max(1, run.wallMs)
  const sorted = [...run.waits].sort((a, b) => a - b)
  const perQuota = metricsOf(style).flatMap((metric) => {
    const limit = limits[metric]
    if (limit === undefined) return []
    return [{ metric, limit, total: run.totals[metric], minimumMs: minimumMs(algorithm, run.totals[metric], limit, windowMs) }]
  })
  const binding = perQuota.reduce((a, b) => (b.minimumMs > a.minimumMs ? b : a), perQuota[0]!)
  const quotas: ReadonlyArray<QuotaSummary> = perQuota.map((q) => ({
    ...q,
    binding: q.metric === binding.metric,
    peak: stats.peak[q.metric] ?? 0
  }))
  return {
    options,
    backend,
    wallMs,
    minimumMs: binding.minimumMs,
    bindingMetric: binding.metric,
    efficiency: binding.minimumMs > 0 ? binding.minimumMs / wallMs : undefined,
    ok: run.ok,
    failed: run.failed,
    rejected429: { emulator: stats.rejected429, responses: run.rejected429 },
    violations: stats.violations,
    waitMs: { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted.at(-1) ?? 0 },
    quotas
  }
}

/**
 * A Redis namespace of its own for one run.
 *
 * @example
 * ```ts
 * runNamespace() // "quotaflow-demo-4242-lq3k9z-7f3a"
 * ```
 */
export const runNamespace = (): string =>
  `quotaflow-demo-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`

/**
 * Runs the demo end to end and returns its summary. The emulator and the limiter live only as long as the run.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { runDemo } from "./Demo.js"
 *
 * const program = Effect.gen(function*() {
 *   const summary = yield* runDemo({ calls: 60, windowMs: 2_000, onProgress: (p) => Effect.log(`${p.done}/${p.total}`) })
 *   yield* Effect.log(`efficiency ${summary.efficiency}`)
 * })
 * ```
 */
export const runDemo = (input: DemoOptions = {}): Effect.Effect<DemoSummary, DemoError> =>
  Effect.gen(function*() {
    const options = resolveOptions(input)
    const issues = validate(options)
    if (issues.length > 0) return yield* new DemoError({ reason: "invalid-options", message: `invalid demo options: ${issues.join("; ")}` })
    const { algorithm, skewMs, limits, style, windowMs } = options
    const backend: DemoBackend = input.redis === undefined ? memoryBackend : { kind: "redis", url: input.redis.url, processes: 1 }
    const backendLayer = input.redis === undefined
      ? MemoryBackendLive
      : RedisBackendLive({ url: input.redis.url, namespace: input.redis.namespace ?? runNamespace() }).pipe(
        Layer.mapError((error) => new DemoError({ reason: "failed", message: `Redis at ${input.redis?.url}: ${error.message}` }))
      )

    return yield* Effect.gen(function*() {
      const emulator = yield* Emulator.serve(emulatorConfig(style, algorithm, windowMs, limits), { port: 0 }).pipe(
        Effect.mapError((error) => new DemoError({ reason: "failed", message: `the emulator could not start: ${error.message}` }))
      )
      const limiter = yield* RateLimited.make(limiterConfig(style, algorithm, windowMs, limits, skewMs)).pipe(
        Effect.mapError((error) => new DemoError({ reason: "invalid-options", message: error.message }))
      )
      if (input.onStart) yield* input.onStart({ url: emulator.url, options, backend })

      const workload = makeWorkload(options.calls, options.seed)
      const counters = makeCounters()
      const start = yield* Clock.currentTimeMillis

      const progress = Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        const { queued, quotas } = yield* limiterProgress(limiter, options)
        const report: DemoProgress = {
          elapsedMs: now - start,
          total: workload.length,
          done: counters.done,
          failed: counters.failed,
          inFlight: counters.inFlight,
          queued,
          rejected429: counters.rejected429,
          quotas
        }
        return report
      })
      const report = input.onProgress === undefined
        ? Effect.void
        : Effect.flatMap(progress, input.onProgress)

      const ticker = yield* Effect.fork(
        Effect.repeat(report, Schedule.spaced(`${input.progressIntervalMs ?? 100} millis`))
      )
      yield* runCalls(limiter, endpointOf(style, emulator.url), style, workload, counters)
      yield* Fiber.interrupt(ticker)
      yield* report

      const stats = yield* fetchStats(emulator.url)
      return summarize(options, backend, {
        wallMs: Math.max(start, counters.end) - start,
        ok: counters.done,
        failed: counters.failed,
        rejected429: counters.rejected429,
        waits: counters.waits,
        totals: counters.totals
      }, stats)
    }).pipe(Effect.scoped, Effect.provide(backendLayer))
  })
