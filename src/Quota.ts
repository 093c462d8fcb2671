/**
 * Quotas, buckets and usages: what a limiter is configured with, decoded with `effect/Schema` so that every
 * bad value is reported with the path of its field.
 *
 * @since 0.1.0
 */
import { type Duration, Effect, Either, type ParseResult, Schema } from "effect"
import { ConfigurationError, InvalidUsage } from "./Errors.js"
import { providerIssues } from "./internal/provider/make.js"
import { describe, expected, formatIssues, Millis, Multiplier, NonNegativeInt, plainFirst, PositiveInt, Ratio } from "./internal/schema.js"
import * as Provider from "./Provider.js"

/**
 * How a quota counts:
 * - `token-bucket` (default): continuous refill of `limit` per `window`, capacity `limit` (times the burst multiplier);
 * - `sliding-window`: at most `limit` in any interval of length `window`;
 * - `fixed-window`: at most `limit` per window aligned to the Unix epoch (daily quotas reset at 00:00 UTC);
 * - `concurrency`: at most `limit` in flight; held until the call is settled or released (no window).
 *
 * @since 0.1.0
 */
export type Algorithm = "token-bucket" | "sliding-window" | "fixed-window" | "concurrency"

/** A window as milliseconds, or as an Effect duration string such as `"1 minute"`. */
const WindowMs = Millis

const AlgorithmSchema = Schema.Literal("token-bucket", "sliding-window", "fixed-window", "concurrency").annotations({
  message: expected(`one of "token-bucket", "sliding-window", "fixed-window", "concurrency"`)
})

const QuotaSchema = Schema.Struct({
  metric: Schema.NonEmptyTrimmedString.annotations({ message: expected("a metric name") }),
  limit: PositiveInt,
  window: Schema.optionalWith(WindowMs, { exact: true }),
  algorithm: Schema.optionalWith(AlgorithmSchema, { exact: true, default: () => "token-bucket" as const }),
  // No default here: an absent `refunds` follows the configuration's provider (see `refundsByDefault`).
  refunds: Schema.optionalWith(Schema.Boolean, { exact: true })
})

const BucketSchema = Schema.Struct({
  quotas: Schema.NonEmptyArray(QuotaSchema),
  safetyRatio: Schema.optionalWith(Ratio, { exact: true, default: () => 1 }),
  burstMultiplier: Schema.optionalWith(Multiplier, { exact: true, default: () => 1 }),
  // No default here: an absent `skew` depends on the bucket's windows (see `skewByDefault`).
  skew: Schema.optionalWith(Schema.Union(Schema.Literal(0), WindowMs), { exact: true }),
  maxQueue: Schema.optionalWith(PositiveInt, { exact: true, default: () => Number.MAX_SAFE_INTEGER })
})

const isProviderName = (input: unknown): input is ProviderName =>
  typeof input === "string" && Object.hasOwn(Provider.providers, input)

const providerMessage = (issue: ParseResult.ParseIssue) => {
  const issues = typeof issue.actual === "object" && issue.actual !== null ? providerIssues(issue.actual) : []
  return {
    message: issues.length > 0
      ? `not a Provider: missing or invalid ${issues.join(", ")} (Provider.make fills in what is left out)`
      : `expected a known provider (${Provider.names.join(", ")}) or a Provider, got ${describe(issue.actual)}`,
    override: true
  }
}

// A declaration, not a schema of the interface: a provider is taken as it is, its functions intact.
const ProviderSchema = Schema.declare(
  (input: unknown): input is ProviderName | Provider.Provider => isProviderName(input) || providerIssues(input).length === 0
).annotations({ message: providerMessage })

const RetrySchema = Schema.Struct({
  maxAttempts: Schema.optionalWith(PositiveInt, { exact: true, default: () => 4 }),
  baseDelay: Schema.optionalWith(WindowMs, { exact: true, default: () => 500 }),
  maxDelay: Schema.optionalWith(WindowMs, { exact: true, default: () => 60_000 })
})

const BreakerSchema = Schema.Struct({
  failureThreshold: Schema.optionalWith(PositiveInt, { exact: true, default: () => 20 }),
  failureWindow: Schema.optionalWith(WindowMs, { exact: true, default: () => 30_000 }),
  openFor: Schema.optionalWith(WindowMs, { exact: true, default: () => 30_000 })
})

const BucketsSchema = Schema.Struct({
  buckets: Schema.optionalWith(Schema.Record({ key: Schema.String, value: BucketSchema }), { exact: true, default: () => ({}) }),
  provider: Schema.optionalWith(ProviderSchema, { exact: true }),
  retry: Schema.optionalWith(RetrySchema, { exact: true, default: () => ({ maxAttempts: 4, baseDelay: 500, maxDelay: 60_000 }) }),
  breaker: Schema.optionalWith(BreakerSchema, { exact: true }),
  mode: Schema.optionalWith(Schema.Literal("basic", "intelligent").annotations({ message: expected(`"basic" or "intelligent"`) }), {
    exact: true,
    default: () => "intelligent" as const
  }),
  basic: Schema.optionalWith(
    Schema.Struct({
      maxModels: Schema.optionalWith(PositiveInt, { exact: true, default: () => 1000 }),
      idleAfter: Schema.optionalWith(WindowMs, { exact: true, default: () => 3_600_000 })
    }),
    { exact: true, default: () => ({ maxModels: 1000, idleAfter: 3_600_000 }) }
  ),
  reservationTtl: Schema.optionalWith(WindowMs, { exact: true, default: () => 600_000 }),
  shutdownTimeout: Schema.optionalWith(Schema.Union(Schema.Literal(0), WindowMs), { exact: true, default: () => 30_000 })
})

/**
 * One limit on one metric, as a user writes it.
 *
 * @example
 * ```ts
 * import type { QuotaInput } from "quotaflow"
 * const rpm: QuotaInput = { metric: "requests", limit: 500, window: "1 minute" }
 * const daily: QuotaInput = { metric: "tokens", limit: 2_000_000, window: "1 day", algorithm: "fixed-window" }
 * ```
 * @since 0.1.0
 */
export interface QuotaInput {
  readonly metric: string
  readonly limit: number
  /** An Effect duration (`"1 minute"`, `"10 seconds"`) or milliseconds; not used by `concurrency`. */
  readonly window?: Duration.DurationInput | string
  readonly algorithm?: Algorithm
  /**
   * Whether unused capacity comes back when a call settles below its charge. Default: as the configuration's
   * `provider` settles on the metrics it charges (`provider.charging.refunds`: OpenAI keeps what it charged,
   * Anthropic gives unused output back), and `true` otherwise.
   */
  readonly refunds?: boolean
}

/**
 * A bucket as a user writes it: every call submitted to it must fit all of its quotas.
 *
 * @example
 * ```ts
 * import type { BucketInput } from "quotaflow"
 * const gpt4o: BucketInput = {
 *   quotas: [
 *     { metric: "requests", limit: 500, window: "1 minute" },
 *     { metric: "tokens", limit: 30_000, window: "1 minute" }
 *   ],
 *   safetyRatio: 0.9
 * }
 * ```
 * @since 0.1.0
 */
export interface BucketInput {
  readonly quotas: ReadonlyArray<QuotaInput>
  /** Run at this fraction of every limit (default 1). */
  readonly safetyRatio?: number
  /** Token buckets hold this many windows' worth at most (default 1). */
  readonly burstMultiplier?: number
  /**
   * How much later than others a call may reach the provider (network jitter): the bucket keeps this much
   * time clear at the edges of its windows so the provider never sees calls closer together than they were
   * booked. Default 150 ms, at most a tenth of the shortest window; 0 or a few milliseconds suit a provider
   * on a local network. A provider's 429 for a call the limiter admitted raises it for a while.
   */
  readonly skew?: Duration.DurationInput | string
  /** At most this many calls wait in the bucket's queue; more fail with `QueueOverflow`. */
  readonly maxQueue?: number
}

/**
 * The buckets of a limiter, by name.
 *
 * @example
 * ```ts
 * import type { LimiterConfig } from "quotaflow"
 * const config: LimiterConfig = {
 *   buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 500, window: "1 minute" }] } }
 * }
 * ```
 * @since 0.1.0
 */
export interface LimiterConfig {
  readonly buckets?: Readonly<Record<string, BucketInput>>
  /**
   * The provider whose headers, retry hints and usage the limiter reads, and whose charging rule sets the
   * quotas' default `refunds`: a registry name, or a provider of your own (`Provider.make`).
   */
  readonly provider?: ProviderName | Provider.Provider
  /** Retries of calls the provider refused with a retryable status (429, 529, 503). */
  readonly retry?: RetryInput
  /**
   * `intelligent` (default): calls are admitted against the buckets' quotas; with a `provider`, a bucket nobody
   * configured learns its quotas from the provider's answers. `basic`: no quotas are needed;
   * any bucket name is accepted, and each (a model, say) only waits out what its provider said: a 429's retry
   * hint or a limit its headers report exhausted until its reset.
   */
  readonly mode?: "basic" | "intelligent"
  /** Memory bounds of `basic` mode: at most `maxModels` buckets (least recently used go first), and buckets idle for `idleAfter` are dropped. */
  readonly basic?: { readonly maxModels?: number; readonly idleAfter?: Duration.DurationInput | string }
  /**
   * A reservation open this long (a call still running, or a permit its holder never settled) is settled by the
   * orphan sweeper with its charge kept, so that its concurrency slot comes back (default 10 minutes).
   */
  readonly reservationTtl?: Duration.DurationInput | string
  /**
   * How long closing the limiter waits for running calls to finish and settle before it settles them itself,
   * keeping their charge (default 30 seconds).
   */
  readonly shutdownTimeout?: Duration.DurationInput | string
  /** Circuit breaking per bucket; off unless given. */
  readonly breaker?: {
    readonly failureThreshold?: number
    readonly failureWindow?: Duration.DurationInput | string
    readonly openFor?: Duration.DurationInput | string
  }
}

/**
 * How calls refused by the provider are retried: at most `maxAttempts` attempts in all, waiting an exponential,
 * jittered delay from `baseDelay`, never less than the provider's retry hint and never more than `maxDelay`
 * (default 60 seconds): a longer hint is cut to `maxDelay`, and so is the time the refusal blocks the bucket.
 *
 * @example
 * ```ts
 * import type { RetryInput } from "quotaflow"
 * const retry: RetryInput = { maxAttempts: 5, baseDelay: "250 millis", maxDelay: "20 seconds" }
 * ```
 * @since 0.1.0
 */
export interface RetryInput {
  readonly maxAttempts?: number
  readonly baseDelay?: Duration.DurationInput | string
  readonly maxDelay?: Duration.DurationInput | string
}

/**
 * The providers quotaflow knows (see `Provider`).
 *
 * @since 0.1.0
 */
export type ProviderName =
  | "openai"
  | "azure-openai"
  | "anthropic"
  | "bedrock"
  | "gemini"
  | "vertex"
  | "groq"
  | "together"
  | "mistral"
  | "openrouter"
  | "deepseek"
  | "venice"

/**
 * A decoded limiter configuration.
 *
 * @since 0.1.0
 */
export interface Settings {
  readonly buckets: ReadonlyMap<string, Bucket>
  /** The configured provider, resolved from its name. */
  readonly provider: Provider.Provider | undefined
  readonly retry: { readonly maxAttempts: number; readonly baseDelay: number; readonly maxDelay: number }
  readonly breaker: { readonly failureThreshold: number; readonly failureWindow: number; readonly openFor: number } | undefined
  readonly mode: "basic" | "intelligent"
  readonly basic: { readonly maxModels: number; readonly idleAfter: number }
  readonly reservationTtl: number
  readonly shutdownTimeout: number
}

/**
 * A decoded quota.
 *
 * @since 0.1.0
 */
export interface Quota {
  readonly metric: string
  readonly limit: number
  readonly windowMs: number
  readonly algorithm: Algorithm
  readonly refunds: boolean
}

/**
 * A decoded bucket with its name.
 *
 * @since 0.1.0
 */
export interface Bucket {
  readonly name: string
  readonly quotas: ReadonlyArray<Quota>
  readonly safetyRatio: number
  readonly burstMultiplier: number
  /** Milliseconds kept clear at window edges for calls that reach the provider late. */
  readonly skew: number
  readonly maxQueue: number
}

/**
 * A usage: an amount per metric, such as `{ requests: 1, tokens: 1800 }`.
 *
 * @since 0.1.0
 */
export type Usage = Readonly<Record<string, number>>

// A generated configuration can have tens of thousands of buckets: decoded plainly first (see `plainFirst`).
const decodeBuckets = Schema.decodeUnknownEither(plainFirst(BucketsSchema), { errors: "all", onExcessProperty: "error" })

/**
 * Decodes a limiter configuration, reporting every problem with its path
 * (`buckets.gpt-4o.quotas[1].limit: expected a positive integer, got -5`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quota } from "quotaflow"
 *
 * const buckets = Quota.decodeConfig({ buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }] } } })
 * Effect.runSync(buckets) // Map { "chat" => { name: "chat", quotas: [...], ... } }
 * ```
 * @since 0.1.0
 */
export const decodeConfig = (input: unknown): Effect.Effect<ReadonlyMap<string, Bucket>, ConfigurationError> =>
  Effect.map(decodeSettings(input), (settings) => settings.buckets)

/**
 * Decodes a whole limiter configuration: buckets, provider, retry and breaker settings.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quota } from "quotaflow"
 *
 * const settings = Effect.runSync(Quota.decodeSettings({ provider: "anthropic", retry: { maxAttempts: 3 } }))
 * settings.retry.maxAttempts // 3
 * ```
 * @since 0.1.0
 */
export const decodeSettings = (input: unknown): Effect.Effect<Settings, ConfigurationError> =>
  Either.match(decodeBuckets(input), {
    onLeft: (error) => Effect.fail(new ConfigurationError({ issues: formatIssues(error) })),
    onRight: (config) => {
      const issues: Array<string> = []
      const buckets = new Map<string, Bucket>()
      const provider = isProviderName(config.provider) ? Provider.providers[config.provider] : config.provider
      for (const [name, bucket] of Object.entries(config.buckets)) {
        bucket.quotas.forEach((quota, i) => {
          if (quota.window === undefined && quota.algorithm !== "concurrency") {
            issues.push(`buckets.${name}.quotas[${i}].window: required for the "${quota.algorithm}" algorithm`)
          }
        })
        buckets.set(name, toBucket(name, bucket, provider))
      }
      return issues.length > 0
        ? Effect.fail(new ConfigurationError({ issues }))
        : Effect.succeed({
          buckets,
          provider,
          retry: config.retry,
          breaker: config.breaker,
          mode: config.mode,
          basic: config.basic,
          reservationTtl: config.reservationTtl,
          shutdownTimeout: config.shutdownTimeout
        })
    }
  })

/**
 * The one default of `refunds`: a quota on a metric its provider charges refunds as that provider settles
 * (refunding where the provider keeps the charge causes 429s); any other quota refunds.
 */
const refundsByDefault = (provider: Provider.Provider | undefined, metric: string): boolean =>
  provider !== undefined && provider.charging.metrics.includes(metric) ? provider.charging.refunds : true

/**
 * The one default of `skew`: calls booked together reached the emulator spread over up to about 100 ms on a busy
 * two-core host (`bench/cluster.ts`: with no skew, a sliding window drew its 429s within 100 ms after each window
 * edge; with 100 ms and 150 ms, none in any scenario); 150 ms keeps a margin. Never more than a tenth of the
 * bucket's shortest rate window, which it would slow by that much.
 */
const SKEW_MS = 150
const skewByDefault = (quotas: ReadonlyArray<typeof QuotaSchema.Type>): number =>
  quotas.reduce((skew, quota) => (quota.window === undefined || quota.algorithm === "concurrency" ? skew : Math.min(skew, Math.floor(quota.window / 10))), SKEW_MS)

const toBucket = (name: string, bucket: typeof BucketSchema.Type, provider: Provider.Provider | undefined): Bucket => ({
  name,
  quotas: bucket.quotas.map((quota) => ({
    metric: quota.metric,
    limit: quota.limit,
    windowMs: quota.window ?? 0,
    algorithm: quota.algorithm,
    refunds: quota.refunds ?? refundsByDefault(provider, quota.metric)
  })),
  safetyRatio: bucket.safetyRatio,
  burstMultiplier: bucket.burstMultiplier,
  skew: bucket.skew ?? skewByDefault(bucket.quotas),
  maxQueue: bucket.maxQueue
})

const UsageSchema = Schema.Record({ key: Schema.String, value: NonNegativeInt })
const decodeUsageRecord = Schema.decodeUnknownEither(UsageSchema, { errors: "all" })

const metricsOf = (bucket: Bucket): ReadonlyArray<string> => [...new Set(bucket.quotas.map((q) => q.metric))]

/** The common case, checked by hand: a record of non-negative integers on the bucket's metrics. */
const plainUsage = (bucket: Bucket, input: unknown): Usage | undefined => {
  if (input === undefined) return noUsage
  if (typeof input !== "object" || input === null || Array.isArray(input)) return undefined
  const record = input as Record<string, unknown>
  for (const metric in record) {
    if (!Object.hasOwn(record, metric)) continue
    const amount = record[metric]
    if (!Number.isSafeInteger(amount) || (amount as number) < 0 || !hasMetric(bucket, metric)) return undefined
  }
  return record as Usage
}

const noUsage: Usage = Object.freeze({})

const hasMetric = (bucket: Bucket, metric: string): boolean => {
  for (const quota of bucket.quotas) if (quota.metric === metric) return true
  return false
}

const validUsage = (bucket: Bucket, input: unknown, field: string): Either.Either<Usage, InvalidUsage> => {
  // Every call passes here: the schema only runs to say what is wrong with a usage the plain check refused.
  const plain = plainUsage(bucket, input)
  if (plain !== undefined) return Either.right(plain)
  const decoded = decodeUsageRecord(input ?? {})
  if (Either.isLeft(decoded)) {
    return Either.left(new InvalidUsage({ bucket: bucket.name, issues: formatIssues(decoded.left).map((m) => `${field}.${m}`) }))
  }
  const known = metricsOf(bucket)
  const unknown = Object.keys(decoded.right).filter((metric) => !known.includes(metric))
  return unknown.length > 0
    ? Either.left(
      new InvalidUsage({
        bucket: bucket.name,
        issues: unknown.map((metric) => `${field}.${metric}: not a metric of this bucket (known: ${known.join(", ")})`)
      })
    )
    : Either.right(decoded.right)
}

/**
 * The charge of a call on each of the bucket's quotas, in the order of `bucket.quotas`.
 * `requests` defaults to 1 where the bucket limits it; a metric left out is charged 0.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quota } from "quotaflow"
 *
 * const program = Effect.gen(function*() {
 *   const buckets = yield* Quota.decodeConfig({
 *     buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }, { metric: "tokens", limit: 9000, window: "1 minute" }] } }
 *   })
 *   return yield* Quota.chargeOf(buckets.get("chat")!, { tokens: 1200 }) // [1, 1200]
 * })
 * ```
 * @since 0.1.0
 */
export const chargeOf = (bucket: Bucket, usage: unknown): Either.Either<ReadonlyArray<number>, InvalidUsage> => {
  // Every call is charged: a loop, not a chain of closures.
  const valid = validUsage(bucket, usage, "usage")
  if (Either.isLeft(valid)) return Either.left(valid.left)
  const charge = new Array<number>(bucket.quotas.length)
  for (let i = 0; i < charge.length; i++) {
    const metric = bucket.quotas[i].metric
    charge[i] = valid.right[metric] ?? (metric === "requests" ? 1 : 0)
  }
  return Either.right(charge)
}

/**
 * The actual usage of a call on each quota, for settlement; `undefined` where the usage does not name the
 * quota's metric (that quota keeps its charge).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Quota } from "quotaflow"
 *
 * const program = Effect.gen(function*() {
 *   const buckets = yield* Quota.decodeConfig({ buckets: { chat: { quotas: [{ metric: "tokens", limit: 9000, window: "1 minute" }] } } })
 *   return yield* Quota.actualOf(buckets.get("chat")!, { tokens: 700 }) // [700]
 * })
 * ```
 * @since 0.1.0
 */
export const actualOf = (bucket: Bucket, usage: unknown): Either.Either<ReadonlyArray<number | undefined>, InvalidUsage> => {
  if (usage === undefined) return keepCharge
  const valid = validUsage(bucket, usage, "actualUsage")
  if (Either.isLeft(valid)) return Either.left(valid.left)
  const actual = new Array<number | undefined>(bucket.quotas.length)
  for (let i = 0; i < actual.length; i++) actual[i] = valid.right[bucket.quotas[i].metric]
  return Either.right(actual)
}

/** No usage: every quota keeps its charge (an empty array reads `undefined` at every index). */
const keepCharge: Either.Either<ReadonlyArray<number | undefined>, InvalidUsage> = Either.right([])
