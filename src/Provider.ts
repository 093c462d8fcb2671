/**
 * What each LLM provider charges a call, what its responses report, and how long its failures say to wait:
 * pure functions over request bodies, response bodies, stream chunks and headers (no I/O, no clock: pass
 * `now` in epoch milliseconds), plus the published default limits as ready-made quotas.
 *
 * - `chargeOf(request, model?)`: the admission charge of a request body;
 * - `usageOf(response, model?)` / `streamUsage(chunk, model?)`: the actual usage, on the same metrics;
 * - `parseHeaders(headers, now)`: the limits, remainders and resets a response reports;
 * - `retryAfter(status, headers, body, now)`: how long to wait, and whether the failure is a quota, an
 *   overload, a request too large to ever fit, or a daily quota;
 * - `family(model)`: the bucket a model name shares (`gpt-4o-2024-08-06` → `gpt-4o`);
 * - `quotas(limits)` and `presetQuotas(...)`: limits as `QuotaInput`s for the provider's charging rule;
 * - `make(options)`: a provider of your own, OpenAI-compatible wherever you say nothing.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import { InvalidRequest, UnknownPreset, UnknownProvider } from "./Provider/Errors.js"
import * as Anthropic from "./Provider/Anthropic.js"
import * as AzureOpenAI from "./Provider/AzureOpenAI.js"
import * as Bedrock from "./Provider/Bedrock.js"
import * as Gemini from "./Provider/Gemini.js"
import * as OpenAI from "./Provider/OpenAI.js"
import * as OpenAICompatible from "./Provider/OpenAICompatible.js"
import * as Presets from "./Provider/presets.js"
import { makeProvider } from "./internal/provider/make.js"
import type * as Quota from "./Quota.js"
import type { QuotaInput, Usage } from "./Quota.js"

export { Anthropic, AzureOpenAI, Bedrock, Gemini, InvalidRequest, OpenAI, OpenAICompatible, Presets, UnknownPreset, UnknownProvider }
export { CHARS_PER_TOKEN, estimateTextTokens, MESSAGE_OVERHEAD_TOKENS } from "./internal/provider/tokens.js"

/**
 * The providers of the registry.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const name: Provider.ProviderName = "anthropic"
 * ```
 * @since 0.1.0
 */
export type ProviderName = Quota.ProviderName

/**
 * Response headers: a fetch `Headers` or a plain record (any case; a list value uses its first element).
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const headers: Provider.HeadersInput = { "x-ratelimit-remaining-requests": "59" }
 * ```
 * @since 0.1.0
 */
export type HeadersInput = Headers | Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

/**
 * The window a reported limit applies to, as an Effect duration usable as a `QuotaInput` window.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const window: Provider.LimitWindow = "1 minute"
 * ```
 * @since 0.1.0
 */
export type LimitWindow = "1 second" | "1 minute" | "1 day"

/**
 * One limit a response reports. Fields the provider did not send, or sent malformed, are absent.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const tokens: Provider.ReportedLimit = {
 *   metric: "input_tokens", window: "1 minute", limit: 30_000, remaining: 29_000, precision: 1000, resetAt: 1_762_603_230_000
 * }
 * ```
 * @since 0.1.0
 */
export interface ReportedLimit {
  /** `requests`, `tokens`, `input_tokens`, `output_tokens`, `images`, or a provider-specific name. */
  readonly metric: string
  /** The window of the limit, where the provider's format says it (absent when unknown). */
  readonly window?: LimitWindow
  readonly limit?: number
  readonly remaining?: number
  /** When the quota is fully replenished (or its window resets), in epoch milliseconds. */
  readonly resetAt?: number
  /** `resetAt` is rounded to this many milliseconds (a whole-second RFC 3339 time: 1000); 1 when absent. */
  readonly resetPrecision?: number
  /** `remaining` is rounded to the nearest multiple of this (Anthropic token remainders: 1000). */
  readonly precision?: number
  /** What the call cost on this metric, where the provider says (Mistral's `x-ratelimit-tokens-query-cost`). */
  readonly cost?: number
}

/**
 * What kind of failure a response is:
 * - `rate-limited`: a quota was exceeded; waiting frees it;
 * - `overloaded`: the provider is short of capacity (Anthropic 529, 503s, Azure "high demand"); not a quota;
 * - `too-large`: the request alone exceeds a limit; retrying cannot help;
 * - `billing`: the account is out of credit or over a spending limit (OpenAI's `insufficient_quota` 429,
 *   Anthropic's `billing_error`, a 402); retrying cannot help until someone pays;
 * - `daily`: a per-day quota was exceeded; a short retry hint does not mean it is back;
 * - `other`.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const kind: Provider.RetryKind = "overloaded"
 * ```
 * @since 0.1.0
 */
export type RetryKind = "rate-limited" | "overloaded" | "too-large" | "billing" | "daily" | "other"

/**
 * Where a retry delay came from.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const source: Provider.RetrySource = "retry-after-ms"
 * ```
 * @since 0.1.0
 */
export type RetrySource = "retry-after-ms" | "retry-after" | "header" | "retry-info" | "message"

/**
 * The retry advice for a failed response.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const advice: Provider.RetryAdvice = { kind: "rate-limited", retry: true, delayMs: 644, source: "message" }
 * ```
 * @since 0.1.0
 */
export interface RetryAdvice {
  readonly kind: RetryKind
  /**
   * Whether a retry soon can succeed: `x-should-retry` when sent; otherwise true for `rate-limited` and
   * `overloaded`, false for `too-large`, `billing` and `daily`, and for `other` true on 408, 409, 429 and 5xx.
   */
  readonly retry: boolean
  /**
   * How long to wait before retrying, when the response says (absent: use your own backoff). A `daily`
   * refusal keeps the delay it states although it is not retried: it is when the quota may be back, a hint
   * only (Gemini states tens of seconds for a quota that resets at midnight Pacific time).
   */
  readonly delayMs?: number
  readonly source?: RetrySource
  /** The error message of the body. */
  readonly message?: string
}

/**
 * How a provider charges a call against its quotas.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.providers.openai.charging // { metrics: ["requests", "tokens"], refunds: false, rule: "..." }
 * ```
 * @since 0.1.0
 */
export interface Charging {
  /**
   * The metrics a call is charged on at admission. `chargeOf` leaves `requests` out: the limiter charges 1 on
   * every `requests` quota by default, and a usage may only name metrics its bucket limits.
   */
  readonly metrics: ReadonlyArray<string>
  /** Whether a settled call gets back what it was charged beyond its actual usage (a quota's `refunds`). */
  readonly refunds: boolean
  /** The rule, in words. */
  readonly rule: string
}

/**
 * Published limits of one model: requests per second, minute and day, tokens per minute and day, input and
 * output tokens per minute (Anthropic), images per minute.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const tier1: Provider.Limits = { rpm: 50, itpm: 30_000, otpm: 8_000 }
 * ```
 * @since 0.1.0
 */
export interface Limits {
  readonly rps?: number
  readonly rpm?: number
  readonly rpd?: number
  readonly tpm?: number
  readonly tpd?: number
  readonly itpm?: number
  readonly otpm?: number
  readonly ipm?: number
}

/**
 * Model names mapped to the family (bucket) they share; a key matches the model name as given or its family.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const families: Provider.FamilyOverrides = { "my-gpt-4o-deployment": "gpt-4o" }
 * ```
 * @since 0.1.0
 */
export type FamilyOverrides = Readonly<Record<string, string>>

/**
 * One provider: its charging rule and the pure functions that read its requests, responses and headers. The
 * registry's providers are values of this interface, and so is any provider of your own: build one with
 * `make` (which fills every part you leave out with OpenAI-compatible behaviour) and pass it as `provider` in
 * a limiter's configuration. A configuration checks it, and fails with a `ConfigurationError` naming each
 * field that is missing or of the wrong kind.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const openai = Provider.providers.openai
 * const charge = Either.getOrThrow(openai.chargeOf({ model: "gpt-4o", messages: [{ role: "user", content: "Hi" }], max_tokens: 100 }))
 * // { tokens: 108 }: 1 token of text + 4 per message + 3 to prime the reply + 100 of output
 * ```
 * @since 0.1.0
 */
export interface Provider {
  /** A registry name, or any name of your own (it names the provider in errors). */
  readonly name: string
  readonly charging: Charging
  /**
   * The admission charge of a request body: the prompt estimate plus the provider's rule for output.
   * `model` defaults to the body's `model` (Bedrock and Gemini bodies have none: pass it).
   */
  readonly chargeOf: (request: unknown, model?: string) => Either.Either<Usage, InvalidRequest>
  /** The actual usage of a non-streamed response body on the charged metrics, or `undefined`. */
  readonly usageOf: (response: unknown, model?: string) => Usage | undefined
  /** The usage one parsed stream chunk reports (partial: merge them with `mergeUsage` or `streamUsageOf`). */
  readonly streamUsage: (chunk: unknown, model?: string) => Usage | undefined
  /** The limits a response reports in its headers (empty for providers that send none). */
  readonly parseHeaders: (headers: HeadersInput, now: number) => ReadonlyArray<ReportedLimit>
  /** How long a failed response says to wait, and what kind of failure it is. */
  readonly retryAfter: (status: number, headers: HeadersInput, body: unknown, now: number) => RetryAdvice
  /** The family (shared bucket) of a model name. */
  readonly family: (model: string, overrides?: FamilyOverrides) => string
  /** Limits as quotas for this provider's charging rule. */
  readonly quotas: (limits: Limits) => ReadonlyArray<QuotaInput>
}

/**
 * The parts of a provider that differ from an OpenAI-compatible API, for `make`; only `name` is required.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const options: Provider.MakeOptions = { name: "my-gateway", charging: { refunds: true }, defaultMaxTokens: 1024 }
 * ```
 * @since 0.1.0
 */
export interface MakeOptions {
  readonly name: string
  /**
   * Merged over `{ metrics: ["requests", "tokens"], refunds: false, rule }`: prompt plus output limit, kept
   * whole (a refund the provider does not make causes 429s; a missed one only leaves capacity unused).
   */
  readonly charging?: Partial<Charging>
  /** The output charged by the default `chargeOf` when a body sets no output limit (default 4096). */
  readonly defaultMaxTokens?: number
  /** Default: prompt estimated from characters (`estimateTextTokens`) + `max_tokens` (or the default) × `n`. */
  readonly chargeOf?: Provider["chargeOf"]
  /** Default: `usage` of a chat, Responses or embeddings body as `{ tokens }`. */
  readonly usageOf?: Provider["usageOf"]
  /** Default: `usageOf`, which also reads chat's last chunk and Responses' `response.completed`. */
  readonly streamUsage?: Provider["streamUsage"]
  /**
   * Default: `x-ratelimit-{limit,remaining,reset}-<metric>`, resets as Go durations (`1s`, `6m0s`), seconds from
   * now or epoch timestamps, windows unknown (a limiter learns them from the resets).
   */
  readonly parseHeaders?: Provider["parseHeaders"]
  /** Default: the SDKs' rules (`x-should-retry`, `retry-after-ms`, `retry-after`, hints in the body). */
  readonly retryAfter?: Provider["retryAfter"]
  /** The family of a model name (default: the name itself); configured overrides are consulted first. */
  readonly family?: (model: string) => string
  /** Default: requests per second, minute and day, and tokens per minute and day with `charging.refunds`. */
  readonly quotas?: Provider["quotas"]
}

/**
 * A provider of your own, from its name and whatever differs from an OpenAI-compatible API.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { createRateLimiter, Provider } from "quotaflow"
 *
 * const gateway = Provider.make({
 *   name: "my-gateway",
 *   charging: { refunds: true },
 *   family: (model) => model.replace(/-\d{8}$/, "")
 * })
 * Either.getOrThrow(gateway.chargeOf({ model: "m", messages: [{ role: "user", content: "Hi" }], max_tokens: 10 })) // { tokens: 15 }
 * const limiter = createRateLimiter({ provider: gateway })
 * ```
 * @since 0.1.0
 */
export const make: (options: MakeOptions) => Provider = makeProvider

/**
 * The registry: every provider by name.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * const anthropic = Provider.providers.anthropic
 * const groq = Provider.providers.groq
 * ```
 * @since 0.1.0
 */
export const providers: { readonly [N in ProviderName]: Provider } = {
  openai: OpenAI.openai,
  "azure-openai": AzureOpenAI.azureOpenAI,
  anthropic: Anthropic.anthropic,
  bedrock: Bedrock.bedrock,
  gemini: Gemini.gemini,
  vertex: Gemini.vertex,
  groq: OpenAICompatible.groq,
  together: OpenAICompatible.together,
  mistral: OpenAICompatible.mistral,
  openrouter: OpenAICompatible.openrouter,
  deepseek: OpenAICompatible.deepseek,
  venice: OpenAICompatible.venice
}

/**
 * The names of the registry.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.names.includes("bedrock") // true
 * ```
 * @since 0.1.0
 */
export const names: ReadonlyArray<ProviderName> = Object.keys(providers) as Array<ProviderName>

const isName = (name: string): name is ProviderName => Object.prototype.hasOwnProperty.call(providers, name)

/**
 * A provider by name, or `UnknownProvider` listing the known names; a provider given as itself is returned
 * as it is, so a configuration's `provider` (a name or a provider) resolves in one call.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const provider = Either.getOrThrow(Provider.get("mistral"))
 * const own = Either.getOrThrow(Provider.get(Provider.make({ name: "my-gateway" })))
 * ```
 * @since 0.1.0
 */
export const get = (provider: string | Provider): Either.Either<Provider, UnknownProvider> =>
  typeof provider !== "string"
    ? Either.right(provider)
    : isName(provider)
    ? Either.right(providers[provider])
    : Either.left(new UnknownProvider({ provider, known: [...names] }))

/**
 * Merges partial usages: the last value per metric wins (stream chunks report running totals).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.mergeUsage({ input_tokens: 25, output_tokens: 1 }, undefined, { output_tokens: 15 })
 * // { input_tokens: 25, output_tokens: 15 }
 * ```
 * @since 0.1.0
 */
export const mergeUsage = (...usages: ReadonlyArray<Usage | undefined>): Usage | undefined => {
  let merged: Record<string, number> | undefined
  for (const usage of usages) {
    if (usage === undefined) continue
    merged = { ...merged, ...usage }
  }
  return merged
}

/**
 * A stream accumulator: a function of each chunk that returns the usage merged so far (or `undefined` until a
 * chunk reports one). Use one per stream, e.g. as `usageOf` of `RateLimited.submitStream`, which settles with
 * the last value it returned.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 *
 * const usageOf = Provider.streamUsageOf(Provider.providers.anthropic)
 * usageOf({ type: "message_start", message: { usage: { input_tokens: 25, output_tokens: 1 } } })
 * usageOf({ type: "message_delta", usage: { output_tokens: 15 } }) // { input_tokens: 25, output_tokens: 15 }
 * ```
 * @since 0.1.0
 */
export const streamUsageOf = (provider: Provider, model?: string): (chunk: unknown) => Usage | undefined => {
  let usage: Usage | undefined
  return (chunk) => {
    usage = mergeUsage(usage, provider.streamUsage(chunk, model))
    return usage
  }
}

/**
 * The published preset of a provider, tier and model (resolved through the provider's `family`), with its
 * source key and date. Without `tier`, the provider's lowest listed tier is used.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const preset = Either.getOrThrow(Provider.preset({ provider: "anthropic", tier: "tier-2", model: "claude-opus-4-1-20250805" }))
 * // { tier: "tier-2", family: "claude-opus-4.x", rpm: 1000, itpm: 450000, otpm: 90000, source: "AN-25", date: "2025-11-08" }
 * ```
 * @since 0.1.0
 */
export const preset = (options: {
  readonly provider: string
  readonly tier?: string
  readonly model: string
  readonly families?: FamilyOverrides
}): Either.Either<Presets.ResolvedPreset, UnknownPreset> => {
  const table = isName(options.provider) ? Presets.presets[options.provider] : undefined
  if (table === undefined || !isName(options.provider)) {
    return Either.left(
      new UnknownPreset({ provider: options.provider, level: "provider", known: Object.keys(Presets.presets) })
    )
  }
  const tierNames = Object.keys(table.tiers)
  const tier = options.tier ?? tierNames[0] ?? ""
  const models = table.tiers[tier]
  if (models === undefined) {
    return Either.left(new UnknownPreset({ provider: options.provider, tier, level: "tier", known: tierNames }))
  }
  const family = providers[options.provider].family(options.model, options.families)
  const key = Object.prototype.hasOwnProperty.call(models, family)
    ? family
    : Object.keys(models).find((pattern) => pattern.startsWith("*") && family.endsWith(pattern.slice(1)))
  const found = key === undefined ? undefined : models[key]
  if (found === undefined) {
    return Either.left(
      new UnknownPreset({ provider: options.provider, tier, model: options.model, level: "model", known: Object.keys(models) })
    )
  }
  return Either.right({ tier, family, ...found })
}

/**
 * The quotas of a published preset, for the provider's charging rule: per-minute windows, daily quotas as
 * `fixed-window` over `"1 day"`, refunds as the provider settles. Fails with `UnknownPreset` listing the known
 * providers, tiers or models.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const quotas = Either.getOrThrow(Provider.presetQuotas({ provider: "gemini", tier: "free", model: "gemini-2.0-flash-001" }))
 * // [{ metric: "requests", limit: 15, window: "1 minute" },
 * //  { metric: "requests", limit: 1500, window: "1 day", algorithm: "fixed-window" },
 * //  { metric: "tokens", limit: 1000000, window: "1 minute", refunds: true }]
 * ```
 * @since 0.1.0
 */
export const presetQuotas = (options: {
  readonly provider: string
  readonly tier?: string
  readonly model: string
  readonly families?: FamilyOverrides
}): Either.Either<ReadonlyArray<QuotaInput>, UnknownPreset> =>
  Either.map(preset(options), (found) => providers[options.provider as ProviderName].quotas(found))
