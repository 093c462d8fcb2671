/**
 * Rate-limit response headers in each provider's format.
 *
 * - `openai`: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as Go durations.
 * - `anthropic`: `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-{limit,remaining,reset}`,
 *   resets as RFC 3339 timestamps.
 *
 * A reset is the time until the quota is fully replenished. Remaining amounts are exact
 * (rounded down), not rounded to thousands as Anthropic does.
 *
 * @example
 * import { limitHeaders } from "./RateLimitHeaders.js"
 * limitHeaders("openai", { requests: { limit: 60, used: 1, remaining: 59, resetMs: 1000 } }, 0)
 * // { "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s" }
 */
import type { Style } from "./Admission.js"
import { type Metric, metrics, type QuotaStatus } from "./Limits.js"

/**
 * Formats milliseconds like Go's `time.Duration.String()` (rounded up to whole ms).
 *
 * @example
 * goDuration(20) // "20ms"
 * goDuration(1500) // "1.5s"
 * goDuration(360_000) // "6m0s"
 * goDuration(0) // "0s"
 */
export const goDuration = (ms: number): string => {
  const total = Math.max(0, Math.ceil(ms))
  if (total === 0) return "0s"
  if (total < 1000) return `${total}ms`
  const hours = Math.floor(total / 3_600_000)
  const minutes = Math.floor((total % 3_600_000) / 60_000)
  const seconds = `${(total % 60_000) / 1000}s`
  return hours > 0 ? `${hours}h${minutes}m${seconds}` : minutes > 0 ? `${minutes}m${seconds}` : seconds
}

const openaiNames: { readonly [M in Metric]?: string } = { requests: "requests", tokens: "tokens" }
const anthropicNames: { readonly [M in Metric]: string } = {
  requests: "requests",
  tokens: "tokens",
  input_tokens: "input-tokens",
  output_tokens: "output-tokens"
}

/**
 * The limit, remaining and reset headers for every limited metric the style reports.
 *
 * @example
 * limitHeaders("anthropic", { input_tokens: { limit: 30_000, used: 100, remaining: 29_900, resetMs: 200 } }, 0)
 * // { "anthropic-ratelimit-input-tokens-limit": "30000", "...-remaining": "29900", "...-reset": "1970-01-01T00:00:00.200Z" }
 */
export const limitHeaders = (
  style: Style,
  status: { readonly [M in Metric]?: QuotaStatus },
  now: number
): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const metric of metrics) {
    const quota = status[metric]
    if (quota === undefined) continue
    if (style === "openai") {
      const name = openaiNames[metric]
      if (name === undefined) continue
      headers[`x-ratelimit-limit-${name}`] = String(quota.limit)
      headers[`x-ratelimit-remaining-${name}`] = String(quota.remaining)
      headers[`x-ratelimit-reset-${name}`] = goDuration(quota.resetMs)
    } else {
      const name = anthropicNames[metric]
      headers[`anthropic-ratelimit-${name}-limit`] = String(quota.limit)
      headers[`anthropic-ratelimit-${name}-remaining`] = String(quota.remaining)
      headers[`anthropic-ratelimit-${name}-reset`] = new Date(now + Math.ceil(quota.resetMs)).toISOString()
    }
  }
  return headers
}

/**
 * The retry hint of a 429: `retry-after` in whole seconds (rounded up) for both
 * styles, plus `retry-after-ms` for the OpenAI style.
 *
 * @example
 * retryHeaders("openai", 644) // { "retry-after": "1", "retry-after-ms": "644" }
 */
export const retryHeaders = (style: Style, retryAfterMs: number): Record<string, string> => {
  const ms = Math.ceil(retryAfterMs)
  const headers: Record<string, string> = { "retry-after": String(Math.ceil(ms / 1000)) }
  if (style === "openai") headers["retry-after-ms"] = String(ms)
  return headers
}
