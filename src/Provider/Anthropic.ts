/**
 * Anthropic: requests, input tokens and output tokens per minute per model class, in continuously refilled
 * token buckets. Input tokens are estimated at admission and output tokens charged at `max_tokens`, both
 * corrected to the actual usage at the end (refunds).
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import { anthropicCounts, anthropicModel, anthropicUsageObject } from "../internal/provider/anthropicShape.js"
import { anthropicFamily, withOverrides } from "../internal/provider/family.js"
import { headerEntries, parseAmount, parseRfc3339, reported } from "../internal/provider/headers.js"
import { usageFrom } from "../internal/provider/json.js"
import { requestObject } from "../internal/provider/openaiShape.js"
import { promptOf } from "../internal/provider/prompt.js"
import { requestQuotas, tokenQuotas } from "../internal/provider/quotas.js"
import { retryAdvice } from "../internal/provider/retry.js"
import * as Tokens from "../internal/provider/tokens.js"
import type { Charging, HeadersInput, Limits, Provider, ReportedLimit } from "../Provider.js"
import type { QuotaInput, Usage } from "../Quota.js"
import { InvalidRequest } from "./Errors.js"

/**
 * Tokens charged for media whose size a body does not state: 1600 per image (Anthropic's figure for an image
 * at the largest size it keeps without resizing, about 1.15 megapixels) and 3000 per document (one dense PDF
 * page; longer documents are undercounted until the call settles).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Anthropic.MEDIA_TOKENS.image // 1600
 * ```
 * @since 0.1.0
 */
export const MEDIA_TOKENS: Tokens.MediaCosts = { image: 1600, lowDetailImage: 1600, otherMedia: 3000 }

/**
 * The character estimate of the input tokens of a Messages body (`system`, `messages`, `tools`):
 * `ceil(ASCII characters / 3.5)` + one per other character + 4 per message + `MEDIA_TOKENS`.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Anthropic.estimateInputTokens({ messages: [{ role: "user", content: "Hello, Claude" }] }) // ceil(13 / 3.5) + 4 = 8
 * ```
 * @since 0.1.0
 */
export const estimateInputTokens = (request: unknown): number => Tokens.estimatePromptTokens(promptOf(request), MEDIA_TOKENS)

/**
 * Whether a model counts cache reads toward its input-tokens limit: only older models (marked † in Anthropic's
 * table, the Haiku 3.x family) do.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Anthropic.countsCacheReads("claude-3-5-haiku-20241022") // true
 * Provider.Anthropic.countsCacheReads("claude-sonnet-4-5") // false
 * ```
 * @since 0.1.0
 */
export const countsCacheReads = (model: string | undefined): boolean => /claude-3(?:-5)?-haiku/.test(model ?? "")

/**
 * The Anthropic charging rule.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Anthropic.charging.metrics // ["requests", "input_tokens", "output_tokens"]
 * ```
 * @since 0.1.0
 */
export const charging: Charging = {
  metrics: ["requests", "input_tokens", "output_tokens"],
  refunds: true,
  rule:
    "input_tokens = input + cache creation tokens (cache reads are free, except on Haiku 3.x), estimated at the start " +
    "and adjusted; output_tokens = max_tokens at the start, corrected to the actual output at the end."
}

/**
 * Anthropic quotas: requests, input tokens and output tokens per minute, as token buckets with refunds.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Anthropic.quotas({ rpm: 50, itpm: 30_000, otpm: 8_000 })
 * // [{ metric: "requests", limit: 50, window: "1 minute" },
 * //  { metric: "input_tokens", limit: 30000, window: "1 minute", refunds: true },
 * //  { metric: "output_tokens", limit: 8000, window: "1 minute", refunds: true }]
 * ```
 * @since 0.1.0
 */
export const quotas = (limits: Limits): Array<QuotaInput> => [
  ...requestQuotas(limits),
  ...tokenQuotas("input_tokens", limits.itpm, undefined, true),
  ...tokenQuotas("output_tokens", limits.otpm, undefined, true)
]

const chargeOf = (request: unknown, _model?: string): Either.Either<Usage, InvalidRequest> =>
  Either.gen(function*() {
    const body = yield* requestObject("anthropic", request)
    const maxTokens = body["max_tokens"]
    if (maxTokens === undefined || maxTokens === null) {
      return yield* Either.left(
        new InvalidRequest({ provider: "anthropic", issue: "max_tokens is required by the Messages API (it is the output charged at admission)" })
      )
    }
    if (typeof maxTokens !== "number" || !Number.isInteger(maxTokens) || maxTokens < 1) {
      return yield* Either.left(
        new InvalidRequest({ provider: "anthropic", issue: `max_tokens must be a positive integer, got ${JSON.stringify(maxTokens)}` })
      )
    }
    const usage: Usage = { input_tokens: estimateInputTokens(body), output_tokens: maxTokens }
    return usage
  })

const usageOfBody = (body: unknown, model?: string): Usage | undefined => {
  const counts = anthropicCounts(anthropicUsageObject(body))
  if (counts === undefined) return undefined
  const cacheReads = countsCacheReads(model ?? anthropicModel(body)) ? (counts.cacheRead ?? 0) : 0
  return usageFrom({
    input_tokens: counts.input === undefined ? undefined : counts.input + (counts.cacheWrite ?? 0) + cacheReads,
    output_tokens: counts.output
  })
}

const METRICS: Readonly<Record<string, string>> = {
  "ratelimit-requests": "requests",
  "ratelimit-tokens": "tokens",
  "ratelimit-input-tokens": "input_tokens",
  "ratelimit-output-tokens": "output_tokens",
  "priority-input-tokens": "priority_input_tokens",
  "priority-output-tokens": "priority_output_tokens"
}

/**
 * The `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}` headers (and
 * Priority Tier's `anthropic-priority-{input,output}-tokens-*`): every limit is per minute, resets are RFC 3339
 * times of full replenishment, and token remainders are rounded to the nearest thousand (`precision: 1000`).
 * `tokens` is the most restrictive limit (input + output combined when no workspace limit applies).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Anthropic.parseHeaders({
 *   "anthropic-ratelimit-input-tokens-limit": "30000",
 *   "anthropic-ratelimit-input-tokens-remaining": "27000",
 *   "anthropic-ratelimit-input-tokens-reset": "2025-11-08T12:00:06Z"
 * }, 0)
 * // [{ metric: "input_tokens", window: "1 minute", limit: 30000, remaining: 27000, resetAt: 1762603206000, precision: 1000 }]
 * ```
 * @since 0.1.0
 */
export const parseHeaders = (headers: HeadersInput, _now: number): Array<ReportedLimit> => {
  const groups = new Map<string, { limit?: string; remaining?: string; reset?: string }>()
  for (const [name, value] of headerEntries(headers)) {
    const match = /^anthropic-((?:ratelimit|priority)-[a-z-]+?)-(limit|remaining|reset)$/.exec(name)
    const metric = match === null ? undefined : METRICS[match[1]!]
    if (match === null || metric === undefined) continue
    const group = groups.get(metric) ?? {}
    group[match[2] as "limit" | "remaining" | "reset"] = value.trim()
    groups.set(metric, group)
  }
  const out: Array<ReportedLimit> = []
  for (const [metric, group] of groups) {
    const entry = reported(metric, "1 minute", {
      limit: parseAmount(group.limit),
      remaining: parseAmount(group.remaining),
      resetAt: parseRfc3339(group.reset),
      // Whole-second times are a second coarse: what learns a window from them must know.
      resetPrecision: group.reset === undefined || /\.\d/.test(group.reset) ? undefined : 1000,
      precision: metric === "requests" ? undefined : 1000
    })
    if (entry !== undefined) out.push(entry)
  }
  return out
}

/**
 * Anthropic.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const { anthropic } = Provider.Anthropic
 * Either.getOrThrow(anthropic.chargeOf({ model: "claude-sonnet-4-5", max_tokens: 1024, messages: [{ role: "user", content: "Hello, Claude" }] }))
 * // { input_tokens: 8, output_tokens: 1024 }
 * anthropic.usageOf({ type: "message", usage: { input_tokens: 10, cache_creation_input_tokens: 200, cache_read_input_tokens: 5000, output_tokens: 42 } })
 * // { input_tokens: 210, output_tokens: 42 }
 * anthropic.family("claude-sonnet-4-5-20250929") // "claude-sonnet-4.x"
 * ```
 * @since 0.1.0
 */
export const anthropic: Provider = {
  name: "anthropic",
  charging,
  chargeOf,
  usageOf: usageOfBody,
  streamUsage: usageOfBody,
  parseHeaders,
  retryAfter: (status, headers, body, now) => retryAdvice(status, headers, body, now),
  family: withOverrides(anthropicFamily),
  quotas
}
