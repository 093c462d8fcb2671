/**
 * What a request is charged under each provider's admission style.
 *
 * - `openai`: `requests: 1` and `tokens: prompt + max_tokens` at admission, kept to the end.
 * - `anthropic`: `requests: 1`, `input_tokens: prompt`, `output_tokens: max_tokens` and
 *   `tokens: prompt + max_tokens` at admission; at the end output (and tokens) are
 *   corrected to the tokens actually generated.
 *
 * @example
 * import { admissionCharge, finalCharge } from "./Admission.js"
 * admissionCharge("anthropic", { promptTokens: 100, maxTokens: 50, completionTokens: 20 })
 * // { requests: 1, input_tokens: 100, output_tokens: 50, tokens: 150 }
 * finalCharge("anthropic", { promptTokens: 100, maxTokens: 50, completionTokens: 20 })
 * // { requests: 1, input_tokens: 100, output_tokens: 20, tokens: 120 }
 */
import type { Charge } from "./Limits.js"

/**
 * A provider's admission style.
 *
 * @example
 * const style: Style = "openai"
 */
export type Style = "openai" | "anthropic"

/**
 * The token counts of one request.
 *
 * @example
 * const sizes: Sizes = { promptTokens: 100, maxTokens: 50, completionTokens: 30 }
 */
export interface Sizes {
  readonly promptTokens: number
  readonly maxTokens: number
  readonly completionTokens: number
}

/**
 * The charge taken when the request is admitted.
 *
 * @example
 * admissionCharge("openai", { promptTokens: 10, maxTokens: 90, completionTokens: 5 }) // { requests: 1, tokens: 100 }
 */
export const admissionCharge = (style: Style, sizes: Sizes): Charge =>
  style === "openai"
    ? { requests: 1, tokens: sizes.promptTokens + sizes.maxTokens }
    : {
      requests: 1,
      input_tokens: sizes.promptTokens,
      output_tokens: sizes.maxTokens,
      tokens: sizes.promptTokens + sizes.maxTokens
    }

/**
 * The charge that stands once the response has ended.
 *
 * @example
 * finalCharge("openai", { promptTokens: 10, maxTokens: 90, completionTokens: 5 }) // { requests: 1, tokens: 100 }
 */
export const finalCharge = (style: Style, sizes: Sizes): Charge =>
  style === "openai"
    ? admissionCharge(style, sizes)
    : {
      requests: 1,
      input_tokens: sizes.promptTokens,
      output_tokens: sizes.completionTokens,
      tokens: sizes.promptTokens + sizes.completionTokens
    }
