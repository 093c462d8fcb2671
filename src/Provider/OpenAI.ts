/**
 * OpenAI: requests and tokens per minute (and per day on some tiers), charged at admission on the prompt
 * (counted with `gpt-tokenizer`) plus the output limit, with no refund of unused output. OpenAI's guide calls
 * the admission count "the maximum of max_tokens and the estimated number of tokens based on the character
 * count of your request"; the sum is charged here, which is never lower, as Azure documents for the same models.
 *
 * @since 0.1.0
 */
import { withOverrides, openaiFamily } from "../internal/provider/family.js"
import { parseOpenAIStyle } from "../internal/provider/headers.js"
import { at, str } from "../internal/provider/json.js"
import { chargeOpenAIShape, openaiTokensUsage } from "../internal/provider/openaiShape.js"
import { promptOf } from "../internal/provider/prompt.js"
import { imageQuotas, requestQuotas, tokenQuotas } from "../internal/provider/quotas.js"
import { retryAdvice } from "../internal/provider/retry.js"
import * as Tokens from "../internal/provider/tokens.js"
import type { Charging, LimitWindow, Limits, Provider } from "../Provider.js"
import type { QuotaInput } from "../Quota.js"

/**
 * The output charged when a body sets no output limit. OpenAI does not document how it counts such a request;
 * 4096 is a common completion length. Override it with `make({ defaultMaxTokens })`: a request whose output
 * goes past its charge is charged the excess when it settles.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAI.DEFAULT_MAX_TOKENS // 4096
 * ```
 * @since 0.1.0
 */
export const DEFAULT_MAX_TOKENS = 4096

/**
 * Tokens charged for an image whose size is unknown: 765, the cost of a 1024×1024 image at `detail: "high"`
 * (85 + 4 tiles × 170); 85 at `detail: "low"`. Documents and audio are charged 1000 (a rough page or clip).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAI.MEDIA_TOKENS.image // 765
 * ```
 * @since 0.1.0
 */
export const MEDIA_TOKENS: Tokens.MediaCosts = { image: 765, lowDetailImage: 85, otherMedia: 1000 }

/**
 * The BPE encoding of an OpenAI model family: `cl100k_base` for GPT-4 (not 4o/4.1/4.5), GPT-3.5 and the
 * embeddings; `o200k_base` for GPT-4o, 4.1, 4.5, 5, the o-series and any unknown model.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAI.encodingFor("gpt-4o-2024-08-06") // "o200k_base"
 * Provider.OpenAI.encodingFor("gpt-3.5-turbo") // "cl100k_base"
 * ```
 * @since 0.1.0
 */
export const encodingFor: (model: string | undefined) => Tokens.Encoding = Tokens.encodingFor

/**
 * The exact token count of a text in a model's encoding (`gpt-tokenizer`).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAI.countTokens("Hello, world!", "gpt-4o") // 4
 * ```
 * @since 0.1.0
 */
export const countTokens: (text: string, model: string | undefined) => number = Tokens.countTokens

/**
 * The prompt tokens of an OpenAI chat, Responses or embeddings body: each text counted with the model's
 * encoding, plus 4 tokens per message and 3 to prime the reply (OpenAI's chat format), plus `MEDIA_TOKENS`.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAI.promptTokens({ model: "gpt-4o", messages: [{ role: "user", content: "Hello, world!" }] }) // 4 + 4 + 3 = 11
 * ```
 * @since 0.1.0
 */
export const promptTokens = (request: unknown, model?: string): number =>
  Tokens.countPromptTokens(promptOf(request), model ?? str(at(request, "model")), MEDIA_TOKENS)

/**
 * Options of `make`.
 *
 * @example
 * ```ts
 * import type { Provider } from "quotaflow"
 * const options: Provider.OpenAI.Options = { defaultMaxTokens: 16_384 }
 * ```
 * @since 0.1.0
 */
export interface Options {
  /** The output charged when a body sets no output limit (default `DEFAULT_MAX_TOKENS`). */
  readonly defaultMaxTokens?: number
}

// The observed resets fit a bucket refilled over one minute: 5000/4999 requests reset in 12ms = 60 s / 5000,
// 160000/159976 tokens in 9ms = 24 × 60 s / 160000.
const windowOf = (metric: string): LimitWindow | undefined =>
  metric === "requests" || metric === "tokens" ? "1 minute" : undefined

/**
 * The OpenAI charging rule: `requests` and `tokens` = prompt + output limit × choices, with no refund.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAI.charging.refunds // false
 * ```
 * @since 0.1.0
 */
export const charging: Charging = {
  metrics: ["requests", "tokens"],
  refunds: false,
  rule:
    "tokens = prompt tokens + (max_completion_tokens | max_tokens | max_output_tokens | default) × max(n, best_of); " +
    "OpenAI counts the output limit at admission and does not document giving unused output back, so refunds are off. " +
    "Image models are charged `images`."
}

/**
 * OpenAI quotas: requests per minute and day, tokens per minute and day without refunds, images per minute.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.OpenAI.quotas({ rpm: 3, rpd: 200, tpm: 40_000 })
 * // [{ metric: "requests", limit: 3, window: "1 minute" },
 * //  { metric: "requests", limit: 200, window: "1 day", algorithm: "fixed-window" },
 * //  { metric: "tokens", limit: 40000, window: "1 minute", refunds: false }]
 * ```
 * @since 0.1.0
 */
export const quotas = (limits: Limits): Array<QuotaInput> => [
  ...requestQuotas(limits),
  ...tokenQuotas("tokens", limits.tpm, limits.tpd, false),
  ...imageQuotas(limits)
]

/**
 * An OpenAI provider with options.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * const openai = Provider.OpenAI.make({ defaultMaxTokens: 1024 })
 * ```
 * @since 0.1.0
 */
export const make = (options: Options = {}): Provider => openaiShaped("openai", options)

/**
 * A provider speaking OpenAI's request and response shapes under another name (Azure builds on it).
 *
 * @internal
 */
export const openaiShaped = (name: Provider["name"], options: Options): Provider => ({
  name,
  charging,
  chargeOf: chargeOpenAIShape(name, {
    defaultMaxTokens: options.defaultMaxTokens ?? DEFAULT_MAX_TOKENS,
    promptTokens: (prompt, model) => Tokens.countPromptTokens(prompt, model, MEDIA_TOKENS),
    family: openaiFamily
  }),
  usageOf: (response) => openaiTokensUsage(response),
  streamUsage: (chunk) => openaiTokensUsage(chunk),
  parseHeaders: (headers, now) => parseOpenAIStyle(headers, now, windowOf),
  retryAfter: (status, headers, body, now) => retryAdvice(status, headers, body, now),
  family: withOverrides(openaiFamily),
  quotas
})

/**
 * OpenAI with the default options.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 *
 * Provider.OpenAI.openai.parseHeaders({ "x-ratelimit-limit-requests": "5000", "x-ratelimit-remaining-requests": "4999", "x-ratelimit-reset-requests": "12ms" }, 0)
 * // [{ metric: "requests", window: "1 minute", limit: 5000, remaining: 4999, resetAt: 12 }]
 * Provider.OpenAI.openai.usageOf({ usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 } }) // { tokens: 42 }
 * ```
 * @since 0.1.0
 */
export const openai: Provider = make()
