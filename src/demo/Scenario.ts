/**
 * The demo's scenario: the provider style, the quotas both the emulator and the limiter run with, what each
 * call is charged, and the theoretical minimum time a workload needs under those quotas.
 *
 * @example
 * ```ts
 * import { defaultLimits, limiterConfig } from "./Scenario.js"
 * const limits = defaultLimits("anthropic") // { requests: 120, input_tokens: 90000, output_tokens: 25000 }
 * const config = limiterConfig("anthropic", "token-bucket", 6_000, limits)
 * ```
 */
import type { EmulatorConfigInput } from "../emulator/Config.js"
import type { LimiterConfig, QuotaInput, Usage } from "../Quota.js"
import type { ChatCall } from "./Workload.js"

/**
 * The provider whose admission rules the demo follows.
 *
 * - `openai`: `requests` and `tokens`; a call is charged `prompt + max_tokens` and keeps that charge;
 * - `anthropic`: `requests`, `input_tokens` and `output_tokens`; a call is charged its prompt and its
 *   `max_tokens`, and the output is corrected to the tokens generated when the call ends.
 *
 * @example
 * ```ts
 * const style: DemoStyle = "anthropic"
 * ```
 */
export type DemoStyle = "openai" | "anthropic"

/**
 * How the quotas count, on both sides: a continuously refilled token bucket or a strict sliding window.
 *
 * @example
 * ```ts
 * const algorithm: DemoAlgorithm = "sliding-window"
 * ```
 */
export type DemoAlgorithm = "token-bucket" | "sliding-window"

/**
 * A metric the demo limits.
 *
 * @example
 * ```ts
 * const metric: DemoMetric = "output_tokens"
 * ```
 */
export type DemoMetric = "requests" | "tokens" | "input_tokens" | "output_tokens"

/**
 * An amount per metric.
 *
 * @example
 * ```ts
 * const charge: PerMetric = { requests: 1, input_tokens: 900, output_tokens: 512 }
 * ```
 */
export type PerMetric = { readonly [M in DemoMetric]?: number }

/**
 * The limit per window of each limited metric.
 *
 * @example
 * ```ts
 * const limits: DemoLimits = { requests: 120, tokens: 100_000 }
 * ```
 */
export type DemoLimits = PerMetric

/**
 * The metrics each style limits, in display order.
 *
 * @example
 * ```ts
 * metricsOf("openai") // ["requests", "tokens"]
 * ```
 */
export const metricsOf = (style: DemoStyle): ReadonlyArray<DemoMetric> =>
  style === "openai" ? ["requests", "tokens"] : ["requests", "input_tokens", "output_tokens"]

/**
 * The default limits per window. With the default 300-call workload the binding quota (`tokens` for OpenAI,
 * `output_tokens` for Anthropic) needs about three windows beyond its initial burst (17-21 s with the default
 * 6 s window); the others need less.
 *
 * @example
 * ```ts
 * defaultLimits("openai") // { requests: 120, tokens: 100000 }
 * ```
 */
export const defaultLimits = (style: DemoStyle): DemoLimits =>
  style === "openai"
    ? { requests: 120, tokens: 100_000 }
    : { requests: 120, input_tokens: 90_000, output_tokens: 25_000 }

/**
 * The default `skew` of the limiter's bucket (see `limiterConfig`), found by running the demo. Calls admitted
 * together reach the emulator one after another as the process gets to them: the first burst arrives 30-125 ms
 * after its admission (twice that on a busy machine) while later calls take about 1 ms, and a sliding window
 * re-admits a burst at every window boundary. A token bucket pays for its skew once (its first burst is that
 * much smaller), a sliding window in every window.
 *
 * @example
 * ```ts
 * defaultSkewMs("token-bucket") // 200
 * ```
 */
export const defaultSkewMs = (algorithm: DemoAlgorithm): number => (algorithm === "token-bucket" ? 200 : 300)

/**
 * The name of the limiter's bucket the demo's calls run under.
 *
 * @example
 * ```ts
 * bucketName // "chat"
 * ```
 */
export const bucketName = "chat"

/**
 * The limiter configuration mirroring the emulator's quotas: one bucket with one quota per limited metric.
 * OpenAI keeps what it charged, so its quotas do not refund; Anthropic's output is settled.
 *
 * `skewMs` becomes the bucket's `skew`: calls admitted together reach the server spread over tens of
 * milliseconds, so a later call can arrive sooner after an earlier one than the limiter planned. With it a
 * token bucket keeps that much refill in hand and a sliding window counts each call that much longer; the
 * limits themselves are exactly the emulator's.
 *
 * @example
 * ```ts
 * limiterConfig("openai", "token-bucket", 6_000, { requests: 120, tokens: 100_000 }, 100)
 * // { buckets: { chat: { quotas: [{ metric: "requests", limit: 120, window: 6000, ... }, { metric: "tokens", ..., refunds: false }], skew: 100 } } }
 * ```
 */
export const limiterConfig = (
  style: DemoStyle,
  algorithm: DemoAlgorithm,
  windowMs: number,
  limits: DemoLimits,
  skewMs = 0
): LimiterConfig => {
  const refunds = style === "anthropic"
  const quotas: Array<QuotaInput> = metricsOf(style).flatMap((metric) => {
    const limit = limits[metric]
    return limit === undefined ? [] : [{ metric, limit, window: windowMs, algorithm, refunds }]
  })
  return { buckets: { [bucketName]: { quotas, skew: skewMs } } }
}

/**
 * The emulator configuration for the same quotas, with a latency scaled to the window: a "minute" of
 * `windowMs` makes a model answer after `windowMs / 200` ms plus `windowMs / 6000` ms per generated token
 * (30 ms + 1 ms per token with a 6 s window: a 300 ms + 10 ms per token model in real time).
 *
 * @example
 * ```ts
 * emulatorConfig("anthropic", "token-bucket", 6_000, defaultLimits("anthropic"))
 * // { style: "anthropic", algorithm: "token-bucket", windowMs: 6000, limits: {...}, latency: { baseMs: 30, perTokenMs: 1 } }
 * ```
 */
export const emulatorConfig = (
  style: DemoStyle,
  algorithm: DemoAlgorithm,
  windowMs: number,
  limits: DemoLimits
): EmulatorConfigInput => {
  const own: { [M in DemoMetric]?: number } = {}
  for (const metric of metricsOf(style)) {
    const limit = limits[metric]
    if (limit !== undefined) own[metric] = limit
  }
  return {
    style,
    algorithm,
    windowMs,
    limits: own,
    latency: { baseMs: windowMs / 200, perTokenMs: windowMs / 6_000 }
  }
}

/**
 * What a call is charged when the limiter admits it (its `requests: 1` is implied).
 *
 * @example
 * ```ts
 * chargeOf("openai", { id: 1, promptTokens: 900, maxTokens: 512, completionTokens: 300 }) // { tokens: 1412 }
 * chargeOf("anthropic", { id: 1, promptTokens: 900, maxTokens: 512, completionTokens: 300 }) // { input_tokens: 900, output_tokens: 512 }
 * ```
 */
export const chargeOf = (style: DemoStyle, call: ChatCall): Usage =>
  style === "openai"
    ? { tokens: call.promptTokens + call.maxTokens }
    : { input_tokens: call.promptTokens, output_tokens: call.maxTokens }

/**
 * What a call stands charged with once it has ended, given the tokens it generated.
 *
 * @example
 * ```ts
 * finalChargeOf("anthropic", { id: 1, promptTokens: 900, maxTokens: 512, completionTokens: 300 }, 300)
 * // { requests: 1, input_tokens: 900, output_tokens: 300 }
 * ```
 */
export const finalChargeOf = (style: DemoStyle, call: ChatCall, generated: number): PerMetric =>
  style === "openai"
    ? { requests: 1, tokens: call.promptTokens + call.maxTokens }
    : { requests: 1, input_tokens: call.promptTokens, output_tokens: generated }

/**
 * The lower bound one quota puts on the time to push `total` through it, starting from an unused quota:
 *
 * - token bucket: the first `limit` goes at once, the rest at `limit / windowMs`:
 *   `max(0, total - limit) / (limit / windowMs)`;
 * - sliding window: at most `limit` in any window, so the last of `total` can go no earlier than
 *   `(ceil(total / limit) - 1) * windowMs`.
 *
 * @example
 * ```ts
 * minimumMs("token-bucket", 250, 100, 6_000) // 9000
 * minimumMs("sliding-window", 250, 100, 6_000) // 12000
 * ```
 */
export const minimumMs = (algorithm: DemoAlgorithm, total: number, limit: number, windowMs: number): number =>
  algorithm === "token-bucket"
    ? (Math.max(0, total - limit) * windowMs) / limit
    : Math.max(0, Math.ceil(total / limit) - 1) * windowMs
