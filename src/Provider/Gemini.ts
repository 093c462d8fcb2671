/**
 * Google Gemini, on the Gemini API and on Vertex AI: requests per minute and per day, and input tokens per minute,
 * per project and model. No rate-limit headers; a 429 carries `RetryInfo.retryDelay` in its body.
 *
 * @since 0.1.0
 */
import { Either } from "effect"
import { geminiFamily, withOverrides } from "../internal/provider/family.js"
import { at, count, isRecord, usageFrom } from "../internal/provider/json.js"
import { requestObject } from "../internal/provider/openaiShape.js"
import { promptOf } from "../internal/provider/prompt.js"
import { requestQuotas, tokenQuotas } from "../internal/provider/quotas.js"
import { retryAdvice } from "../internal/provider/retry.js"
import * as Tokens from "../internal/provider/tokens.js"
import type { Charging, Limits, Provider, ProviderName } from "../Provider.js"
import type { QuotaInput, Usage } from "../Quota.js"
import type { InvalidRequest } from "./Errors.js"

/**
 * Tokens charged for media whose size a body does not state: 1032 per image (four 768-pixel tiles at 258
 * tokens, Google's per-tile cost) and 1000 per other file (audio, video, PDF; these vary with length).
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Gemini.MEDIA_TOKENS.image // 1032
 * ```
 * @since 0.1.0
 */
export const MEDIA_TOKENS: Tokens.MediaCosts = { image: 1032, lowDetailImage: 1032, otherMedia: 1000 }

/**
 * The Gemini charging rule.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Gemini.charging.metrics // ["requests", "tokens"]
 * ```
 * @since 0.1.0
 */
export const charging: Charging = {
  metrics: ["requests", "tokens"],
  refunds: true,
  rule:
    "tokens = input tokens (TPM counts input only), estimated from the characters of contents, systemInstruction " +
    "and tools and settled to usageMetadata.promptTokenCount; requests also count toward requests per day."
}

/**
 * Gemini quotas: requests per minute and per day, input tokens per minute (with refunds). The daily quota is a
 * `fixed-window` reset at 00:00 UTC while Google resets it at midnight Pacific time: a day's requests spent
 * before 00:00 UTC and again after it can exceed one Pacific day's quota, so keep a margin on tight daily quotas.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Gemini.quotas({ rpm: 15, tpm: 1_000_000, rpd: 1_500 })
 * // [{ metric: "requests", limit: 15, window: "1 minute" },
 * //  { metric: "requests", limit: 1500, window: "1 day", algorithm: "fixed-window" },
 * //  { metric: "tokens", limit: 1000000, window: "1 minute", refunds: true }]
 * ```
 * @since 0.1.0
 */
export const quotas = (limits: Limits): Array<QuotaInput> => [
  ...requestQuotas(limits),
  ...tokenQuotas("tokens", limits.tpm, limits.tpd, true)
]

const chargeOf = (name: string) => (request: unknown, _model?: string): Either.Either<Usage, InvalidRequest> =>
  Either.map(requestObject(name, request), (body): Usage => ({
    tokens: Tokens.estimatePromptTokens(promptOf(body), MEDIA_TOKENS)
  }))

/** `usageMetadata` of a response or stream chunk (running totals in streams); Vertex wraps it the same way. */
const usageOf = (response: unknown): Usage | undefined => {
  const metadata = at(response, "usageMetadata")
  if (!isRecord(metadata)) return undefined
  return usageFrom({ tokens: count(metadata["promptTokenCount"]) })
}

const make = (name: Extract<ProviderName, "gemini" | "vertex">): Provider => ({
  name,
  charging,
  chargeOf: chargeOf(name),
  usageOf,
  streamUsage: usageOf,
  parseHeaders: () => [],
  retryAfter: (status, headers, body, now) => retryAdvice(status, headers, body, now),
  family: withOverrides(geminiFamily),
  quotas
})

/**
 * The Gemini API (generativelanguage.googleapis.com). Pass the model as `model`: bodies do not name it.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { Provider } from "quotaflow"
 *
 * const { gemini } = Provider.Gemini
 * Either.getOrThrow(gemini.chargeOf({ contents: [{ role: "user", parts: [{ text: "Hello, Gemini" }] }] })) // { tokens: 8 }
 * gemini.usageOf({ usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 20, totalTokenCount: 27 } }) // { tokens: 7 }
 * gemini.family("gemini-2.0-flash-001") // "gemini-2.0-flash"
 * ```
 * @since 0.1.0
 */
export const gemini: Provider = make("gemini")

/**
 * Gemini on Vertex AI: the same bodies and errors. Gemini 2.0+ run on Dynamic Shared Quota (no per-project
 * quota; a 429 then means shared capacity ran out), older models on per-project, per-region quotas.
 *
 * @example
 * ```ts
 * import { Provider } from "quotaflow"
 * Provider.Gemini.vertex.family("publishers/google/models/gemini-2.0-flash-001") // "gemini-2.0-flash"
 * ```
 * @since 0.1.0
 */
export const vertex: Provider = make("vertex")
