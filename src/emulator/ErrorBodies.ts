/**
 * Error response bodies in each provider's real shape:
 * OpenAI `{"error":{"message","type","param","code"}}` and
 * Anthropic `{"type":"error","error":{"type","message"},"request_id"}`.
 *
 * @example
 * import { errorBody } from "./ErrorBodies.js"
 * errorBody("anthropic", "invalid_request_error", "max_tokens: expected a positive integer", "req_emu_1")
 */
import type { Shape } from "./ChatRequest.js"
import type { Decision, Metric } from "./Limits.js"
import { goDuration } from "./RateLimitHeaders.js"

const names: { readonly [M in Metric]: readonly [noun: string, abbreviation: string] } = {
  requests: ["requests", "RPM"],
  tokens: ["tokens", "TPM"],
  input_tokens: ["input tokens", "ITPM"],
  output_tokens: ["output tokens", "OTPM"]
}

const per = (metric: Metric, windowMs: number): string => {
  const [noun, abbreviation] = names[metric]
  return windowMs === 60_000 ? `${noun} per min (${abbreviation})` : `${noun} per ${goDuration(windowMs)}`
}

const perLong = (metric: Metric, windowMs: number): string =>
  `${names[metric][0]} per ${windowMs === 60_000 ? "minute" : goDuration(windowMs)}`

const grouped = (n: number) => Math.ceil(n).toLocaleString("en-US")

/**
 * A generic error body.
 *
 * @example
 * errorBody("openai", "invalid_request_error", "Malformed JSON body", "req_emu_7")
 * // { error: { message: "Malformed JSON body", type: "invalid_request_error", param: null, code: null } }
 */
export const errorBody = (shape: Shape, type: string, message: string, requestId: string, code: string | null = null) =>
  shape === "openai"
    ? { error: { message, type, param: null, code } }
    : { type: "error", error: { type, message }, request_id: requestId }

/**
 * The 429 body for a request that does not fit now.
 *
 * @example
 * rateLimitedBody("openai", "gpt-4o", { _tag: "RateLimited", metric: "tokens", retryAfterMs: 644, limit: 30000, used: 29937, requested: 385 }, 60_000, "req_emu_1")
 * // error.message: "Rate limit reached for gpt-4o in organization org-emulator on tokens per min (TPM): Limit 30000, Used 29937, Requested 385. Please try again in 644ms. ..."
 */
export const rateLimitedBody = (
  shape: Shape,
  model: string,
  decision: Extract<Decision, { _tag: "RateLimited" }>,
  windowMs: number,
  requestId: string
) => {
  const { limit, metric, requested, retryAfterMs, used } = decision
  return shape === "openai"
    ? errorBody(
      shape,
      metric === "requests" ? "requests" : "tokens",
      `Rate limit reached for ${model} in organization org-emulator on ${per(metric, windowMs)}: ` +
        `Limit ${limit}, Used ${Math.ceil(used)}, Requested ${requested}. ` +
        `Please try again in ${goDuration(retryAfterMs)}. ` +
        "Visit https://platform.openai.com/account/rate-limits to learn more.",
      requestId,
      "rate_limit_exceeded"
    )
    : errorBody(
      shape,
      "rate_limit_error",
      `This request would exceed the rate limit for your organization (org-emulator) of ${grouped(limit)} ` +
        `${perLong(metric, windowMs)}. For details, refer to: https://docs.claude.com/en/api/rate-limits. ` +
        "You can see the response headers for current usage. " +
        "Please reduce the prompt length or the maximum tokens requested, or try again later.",
      requestId
    )
}

/**
 * The 400 body for a request whose charge exceeds a limit, so it can never be admitted.
 *
 * @example
 * tooLargeBody("openai", "gpt-4o", { _tag: "TooLarge", metric: "tokens", limit: 30000, requested: 31538 }, 60_000, "req_emu_2")
 */
export const tooLargeBody = (
  shape: Shape,
  model: string,
  decision: Extract<Decision, { _tag: "TooLarge" }>,
  windowMs: number,
  requestId: string
) => {
  const { limit, metric, requested } = decision
  return shape === "openai"
    ? errorBody(
      shape,
      "invalid_request_error",
      `Request too large for ${model} in organization org-emulator on ${per(metric, windowMs)}: ` +
        `Limit ${limit}, Requested ${requested}. ` +
        "The input or output tokens must be reduced in order to run successfully; retrying cannot help.",
      requestId,
      "request_too_large"
    )
    : errorBody(
      shape,
      "invalid_request_error",
      `This request can never be admitted: it needs ${grouped(requested)} ${names[metric][0]} but the limit is ` +
        `${grouped(limit)} ${perLong(metric, windowMs)}. Reduce the prompt length or max_tokens; retrying cannot help.`,
      requestId
    )
}
