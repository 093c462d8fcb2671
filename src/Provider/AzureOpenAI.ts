/**
 * Azure OpenAI: a tokens-per-minute quota per deployment, with requests per minute derived from it. Charged like
 * OpenAI (prompt counted with `gpt-tokenizer` + output limit + `best_of`, added to a running count reset each
 * minute, no refund); requests are evaluated over 1 or 10 seconds, so the quotas add a smoothing quota.
 *
 * @since 0.1.0
 */
import { headerReader, parseOpenAIStyle } from "../internal/provider/headers.js"
import { tokenQuotas } from "../internal/provider/quotas.js"
import type { Charging, LimitWindow, Limits, Provider } from "../Provider.js"
import type { QuotaInput } from "../Quota.js"
import { openaiShaped, type Options } from "./OpenAI.js"

/**
 * The Azure OpenAI charging rule.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.AzureOpenAI.charging.metrics // ["requests", "tokens"]
 * ```
 * @since 0.1.0
 */
export const charging: Charging = {
  metrics: ["requests", "tokens"],
  refunds: false,
  rule:
    "tokens = estimated prompt tokens + max_tokens × max(n, best_of), added to a running count reset each minute " +
    "(no refund); requests per minute are enforced over 1 or 10 seconds, hence an extra requests quota of limit / 6 per 10 s."
}

/**
 * The smoothing quota of a requests-per-minute limit: Azure evaluates RPM "over a small period of time,
 * typically 1 or 10 seconds", so `rpm / 6` per 10 seconds (the default) or `rpm / 60` per second (stricter: a
 * 600 RPM deployment rejects more than 10 requests in one second). At least 1.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.AzureOpenAI.smoothingQuota(2_700) // { metric: "requests", limit: 450, window: "10 seconds" }
 * Provider.AzureOpenAI.smoothingQuota(600, "1 second") // { metric: "requests", limit: 10, window: "1 second" }
 * ```
 * @since 0.1.0
 */
export const smoothingQuota = (rpm: number, per: "10 seconds" | "1 second" = "10 seconds"): QuotaInput => ({
  metric: "requests",
  limit: Math.max(1, Math.floor(rpm / (per === "1 second" ? 60 : 6))),
  window: per
})

/**
 * Azure OpenAI quotas: requests per minute plus the smoothing quota; tokens per minute as a `sliding-window`
 * without refunds. Azure resets its token count each minute at a phase the client cannot see; a sliding window
 * keeps every minute-long interval, hence every Azure minute, within the limit.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.AzureOpenAI.quotas({ rpm: 2_700, tpm: 450_000 })
 * // [{ metric: "requests", limit: 2700, window: "1 minute" },
 * //  { metric: "requests", limit: 450, window: "10 seconds" },
 * //  { metric: "tokens", limit: 450000, window: "1 minute", refunds: false, algorithm: "sliding-window" }]
 * ```
 * @since 0.1.0
 */
export const quotas = (limits: Limits): Array<QuotaInput> => [
  ...(limits.rpm !== undefined && Number.isInteger(limits.rpm) && limits.rpm > 0
    ? [{ metric: "requests", limit: limits.rpm, window: "1 minute" }, smoothingQuota(limits.rpm)]
    : []),
  ...tokenQuotas("tokens", limits.tpm, limits.tpd, false, "sliding-window")
]

// Tokens are counted per minute (documented); the window of `limit-requests` is not stated (the observed 8 next
// to 8000 tokens fits 48 RPM evaluated per 10 s as well as 8 RPM for o-series ratios), so it is left unknown.
const windowOf = (metric: string): LimitWindow | undefined => (metric === "tokens" ? "1 minute" : undefined)

/**
 * An Azure OpenAI provider with options (as OpenAI's).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * const azure = Provider.AzureOpenAI.make({ defaultMaxTokens: 800 })
 * ```
 * @since 0.1.0
 */
export const make = (options: Options = {}): Provider => ({
  ...openaiShaped("azure-openai", options),
  charging,
  parseHeaders: (headers, now) => {
    // `-1` means unknown (the Responses API has sent `limit-tokens: -1` with `reset-tokens: 0`): such a
    // metric is dropped whole, its other values being meaningless too.
    const read = headerReader(headers)
    return parseOpenAIStyle(headers, now, windowOf).filter((limit) => read(`x-ratelimit-limit-${limit.metric}`) !== "-1")
  },
  quotas
})

/**
 * Azure OpenAI with the default options. Pass the model name (not the deployment name) as `model` when the
 * body does not carry it, so the right encoding is used.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 *
 * Provider.AzureOpenAI.azureOpenAI.parseHeaders({ "x-ratelimit-limit-tokens": "8000", "x-ratelimit-remaining-tokens": "1014" }, 0)
 * // [{ metric: "tokens", window: "1 minute", limit: 8000, remaining: 1014 }]
 * ```
 * @since 0.1.0
 */
export const azureOpenAI: Provider = make()
