/**
 * Providers with OpenAI-compatible chat APIs: Groq, Together, Mistral, OpenRouter, DeepSeek and Venice. They take the
 * OpenAI request and usage shapes but differ in their limits and headers. Their tokenizers are not public, so
 * prompts are estimated from characters; none documents giving unused output back, so token quotas do not
 * refund (a refund that does not happen would cause 429s, a missed one only under-uses the quota).
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import {
  headerEntries,
  headerReader,
  parseAmount,
  parseLooseReset,
  parseOpenAIStyle,
  reported
} from "../internal/provider/headers.js"
import { at, count, isRecord, stringify } from "../internal/provider/json.js"
import { makeProvider } from "../internal/provider/make.js"
import { openaiTokensUsage } from "../internal/provider/openaiShape.js"
import { requestQuotas } from "../internal/provider/quotas.js"
import { retryAdvice } from "../internal/provider/retry.js"
import type { Charging, LimitWindow, MakeOptions, Provider, ProviderName, ReportedLimit } from "../Provider.js"
import type { Usage } from "../Quota.js"
import { DEFAULT_MAX_TOKENS } from "./OpenAI.js"

const tokenCharging = (extra: string): Charging => ({
  metrics: ["requests", "tokens"],
  refunds: false,
  rule: `tokens = estimated prompt tokens + max_tokens (or ${DEFAULT_MAX_TOKENS}) × n, no refund. ${extra}`
})

const make = (
  name: Extract<ProviderName, "groq" | "together" | "mistral" | "openrouter" | "deepseek" | "venice">,
  parts: Omit<MakeOptions, "name"> & { readonly chargesTokens?: boolean }
): Provider => {
  const { chargesTokens, ...options } = parts
  // Headers are read only where the provider documents them.
  const provider = makeProvider({ name, parseHeaders: () => [], ...options })
  return chargesTokens === false
    ? { ...provider, chargeOf: (request, model) => Either.map(provider.chargeOf(request, model), (): Usage => ({})) }
    : provider
}

/**
 * Groq: `x-ratelimit-limit-requests` is requests per DAY and `x-ratelimit-limit-tokens` tokens per MINUTE (unlike
 * OpenAI); resets are Go durations (`2m59.56s`, `7.66s`). Cached tokens do not count toward limits, so they are
 * left out of the usage.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAICompatible.groq.parseHeaders({ "x-ratelimit-limit-requests": "14400", "x-ratelimit-reset-requests": "2m59.56s" }, 0)
 * // [{ metric: "requests", window: "1 day", limit: 14400, resetAt: 179560 }]
 * ```
 * @since 0.1.0
 */
export const groq: Provider = make("groq", {
  charging: tokenCharging("Cached tokens do not count. Limits: RPM, RPD, TPM, TPD per organization."),
  parseHeaders: (headers, now) =>
    parseOpenAIStyle(headers, now, (metric): LimitWindow | undefined =>
      metric === "requests" ? "1 day" : metric === "tokens" ? "1 minute" : undefined
    ),
  usageOf: (body) => {
    // Groq streams put the usage under `x_groq` in the last chunk.
    const source = isRecord(at(body, "x_groq", "usage")) ? at(body, "x_groq") : body
    // Chat reports cached tokens under `prompt_tokens_details`, the Responses API under `input_tokens_details`.
    return openaiTokensUsage(source, (usage) =>
      count(at(usage, "prompt_tokens_details", "cached_tokens")) ?? count(at(usage, "input_tokens_details", "cached_tokens")) ?? 0)
  }
})

/**
 * Together: a dynamic rate per organization and model, measured per second. `x-ratelimit-{limit,remaining,reset}`
 * are requests per second, `x-tokenlimit-{limit,remaining}` tokens per second, `x-ratelimit-limit-dynamic` the
 * current dynamic request rate (reported as `dynamic_requests`). The reset format is not documented: seconds from
 * now, Go durations and timestamps are accepted. A 503 below your rate is an overload, not a quota.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAICompatible.together.parseHeaders({ "x-ratelimit-limit": "10", "x-ratelimit-remaining": "9", "x-tokenlimit-limit": "2000" }, 0)
 * // [{ metric: "requests", window: "1 second", limit: 10, remaining: 9 }, { metric: "tokens", window: "1 second", limit: 2000 }]
 * ```
 * @since 0.1.0
 */
export const together: Provider = make("together", {
  charging: tokenCharging("Together measures requests and tokens per second against a dynamic rate."),
  parseHeaders: (headers, now) => {
    const read = headerReader(headers)
    return [
      reported("requests", "1 second", {
        limit: parseAmount(read("x-ratelimit-limit")),
        remaining: parseAmount(read("x-ratelimit-remaining")),
        resetAt: parseLooseReset(read("x-ratelimit-reset"), now)
      }),
      reported("tokens", "1 second", {
        limit: parseAmount(read("x-tokenlimit-limit")),
        remaining: parseAmount(read("x-tokenlimit-remaining"))
      }),
      reported("dynamic_requests", "1 second", { limit: parseAmount(read("x-ratelimit-limit-dynamic")) })
    ].filter((limit): limit is ReportedLimit => limit !== undefined)
  },
  retryAfter: (status, headers, body, now) =>
    retryAdvice(status, headers, body, now, {
      delayHeader: (read, at) => {
        const reset = parseLooseReset(read("x-ratelimit-reset"), at)
        return reset === undefined ? undefined : reset - at
      }
    })
})

const MISTRAL_WINDOWS: Readonly<Record<string, LimitWindow>> = { second: "1 second", minute: "1 minute", day: "1 day" }

/**
 * Mistral: requests per second, tokens (input + output) per minute and per month, per organization.
 * `x-ratelimit-{limit,remaining}-{req,tokens}-minute` report the minute limits and
 * `x-ratelimit-tokens-query-cost` what the call cost (as `cost` on `tokens`). Model names drop `-latest` and
 * `-YYMM` versions (`mistral-large-2411` → `mistral-large`).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAICompatible.mistral.parseHeaders({ "x-ratelimit-limit-req-minute": "720", "x-ratelimit-remaining-req-minute": "717" }, 0)
 * // [{ metric: "requests", window: "1 minute", limit: 720, remaining: 717 }]
 * ```
 * @since 0.1.0
 */
export const mistral: Provider = make("mistral", {
  charging: tokenCharging("Tokens per minute count input and output; requests are limited per second."),
  family: (model) => model.replace(/-(?:latest|\d{4})$/, ""),
  parseHeaders: (headers) => {
    const groups = new Map<string, { metric: string; window: LimitWindow; limit?: number; remaining?: number }>()
    for (const [name, value] of headerEntries(headers)) {
      const match = /^x-ratelimit-(limit|remaining)-(req|tokens)-(second|minute|day)$/.exec(name)
      if (match === null) continue
      const metric = match[2] === "req" ? "requests" : "tokens"
      const window = MISTRAL_WINDOWS[match[3]!]!
      const key = `${metric}/${window}`
      const group = groups.get(key) ?? { metric, window }
      const amount = parseAmount(value)
      if (amount !== undefined) group[match[1] as "limit" | "remaining"] = amount
      groups.set(key, group)
    }
    const cost = parseAmount(headerReader(headers)("x-ratelimit-tokens-query-cost"))
    const out: Array<ReportedLimit> = []
    for (const group of groups.values()) {
      const entry = reported(group.metric, group.window, {
        limit: group.limit,
        remaining: group.remaining,
        cost: group.metric === "tokens" && group.window === "1 minute" ? cost : undefined
      })
      if (entry !== undefined) out.push(entry)
    }
    if (cost !== undefined && !out.some((l) => l.cost !== undefined)) {
      const entry = reported("tokens", "1 minute", { cost })
      if (entry !== undefined) out.push(entry)
    }
    return out
  }
})

/**
 * OpenRouter: only `:free` model variants are rate-limited by OpenRouter itself (requests per minute and per UTC
 * day), so the charge is requests alone (`{}`: the limiter charges 1 request) and no usage is reported.
 * `X-RateLimit-{Limit,Remaining,Reset}` come with its own 429s only; the reset's format is not documented (epoch
 * seconds or milliseconds, seconds from now, Go durations and dates are accepted). A 402
 * `in_flight_budget_exhausted` is a reservation of budget that frees up: it is classified `rate-limited`.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAICompatible.openrouter.parseHeaders({ "X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1762603260000" }, 0)
 * // [{ metric: "requests", limit: 20, remaining: 0, resetAt: 1762603260000 }]
 * ```
 * @since 0.1.0
 */
export const openrouter: Provider = make("openrouter", {
  charging: {
    metrics: ["requests"],
    refunds: false,
    rule: "requests only: OpenRouter limits :free variants per minute and per UTC day; paid models follow the upstream provider."
  },
  chargesTokens: false,
  usageOf: () => undefined,
  quotas: requestQuotas,
  parseHeaders: (headers, now) => {
    const read = headerReader(headers)
    const entry = reported("requests", undefined, {
      limit: parseAmount(read("x-ratelimit-limit")),
      remaining: parseAmount(read("x-ratelimit-remaining")),
      resetAt: parseLooseReset(read("x-ratelimit-reset"), now)
    })
    return entry === undefined ? [] : [entry]
  },
  retryAfter: (status, headers, body, now) =>
    retryAdvice(status, headers, body, now, {
      classify: (facts) =>
        status === 402 && stringify(facts.body).includes("in_flight_budget_exhausted") ? "rate-limited" : undefined
    })
})

/**
 * DeepSeek: states no rate limits (under load it holds connections open instead); 429 "Rate Limit Reached" and
 * 503 "Server Overloaded" can still occur. Charged like the others, for quotas you set yourself.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAICompatible.deepseek.retryAfter(503, {}, { error: { message: "Server Overloaded" } }, 0).kind // "overloaded"
 * ```
 * @since 0.1.0
 */
export const deepseek: Provider = make("deepseek", {
  charging: tokenCharging("DeepSeek publishes no limits.")
})

// Venice documents the requests window only as "the current window"; its tokens are per minute.
const veniceWindow = (metric: string): LimitWindow | undefined => (metric === "tokens" ? "1 minute" : undefined)

/**
 * Venice: requests and tokens per minute per model, per user whatever the number of keys, in tiers by model
 * size (docs.venice.ai/api-reference/rate-limiting; the reference notes have no Venice section, so these facts
 * come from Venice's own page and the rest is OpenAI-compatible). The OpenAI header names, with resets read
 * loosely: `x-ratelimit-reset-requests` is documented as a Unix timestamp (an older copy says a duration) and
 * `x-ratelimit-reset-tokens` as seconds from now. On a 429 the wait is the reset of a metric reported
 * exhausted. More than 20 failed requests in 30 s block every request for 30 s ("Please wait 30s and try
 * again"), the failures a circuit breaker with its default settings (20 in 30 s, open for 30 s) stops first.
 * A 402 is an empty balance or a key's spending limit: `billing`.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAICompatible.venice.parseHeaders({
 *   "x-ratelimit-limit-requests": "75", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1762603230",
 *   "x-ratelimit-limit-tokens": "750000", "x-ratelimit-remaining-tokens": "749000", "x-ratelimit-reset-tokens": "2"
 * }, 1_762_603_200_000)
 * // [{ metric: "requests", limit: 75, remaining: 0, resetAt: 1762603230000 },
 * //  { metric: "tokens", window: "1 minute", limit: 750000, remaining: 749000, resetAt: 1762603202000 }]
 * ```
 * @since 0.1.0
 */
export const venice: Provider = make("venice", {
  charging: tokenCharging(
    "Venice limits requests and tokens per minute per model and user; 20 failures in 30 s block all requests for 30 s."
  ),
  parseHeaders: (headers, now) => parseOpenAIStyle(headers, now, veniceWindow, parseLooseReset),
  retryAfter: (status, headers, body, now) =>
    retryAdvice(status, headers, body, now, {
      delayHeader: (read, at) => {
        let until: number | undefined
        for (const metric of ["requests", "tokens"]) {
          const reset = read(`x-ratelimit-remaining-${metric}`) === "0"
            ? parseLooseReset(read(`x-ratelimit-reset-${metric}`), at)
            : undefined
          if (reset !== undefined) until = Math.max(until ?? reset, reset)
        }
        return until === undefined ? undefined : until - at
      }
    })
})
