/**
 * Anthropic Messages usage, shared by Anthropic and Bedrock (which serves the same bodies and stream events).
 */
import { at, count, isRecord, str } from "./json.js"

/**
 * The token counts of an Anthropic `usage` object; fields the object lacks are absent.
 *
 * @example
 * const counts: AnthropicCounts = { input: 10, output: 42, cacheWrite: 200, cacheRead: 5000 }
 */
export interface AnthropicCounts {
  readonly input?: number
  readonly output?: number
  readonly cacheWrite?: number
  readonly cacheRead?: number
}

/**
 * The counts of an Anthropic `usage` object.
 *
 * @example
 * anthropicCounts({ input_tokens: 10, output_tokens: 42 }) // { input: 10, output: 42 }
 */
export const anthropicCounts = (usage: unknown): AnthropicCounts | undefined => {
  if (!isRecord(usage)) return undefined
  const counts: { -readonly [K in keyof AnthropicCounts]: AnthropicCounts[K] } = {}
  const fields = [
    ["input", "input_tokens"],
    ["output", "output_tokens"],
    ["cacheWrite", "cache_creation_input_tokens"],
    ["cacheRead", "cache_read_input_tokens"]
  ] as const
  for (const [key, field] of fields) {
    const value = count(usage[field])
    if (value !== undefined) counts[key] = value
  }
  return Object.keys(counts).length > 0 ? counts : undefined
}

/**
 * The `usage` of a Messages response (`type: "message"`) or of the stream events that carry one.
 *
 * @example
 * anthropicUsageObject({ type: "message_delta", usage: { output_tokens: 15 } }) // { output_tokens: 15 }
 */
export const anthropicUsageObject = (body: unknown): unknown => {
  const type = str(at(body, "type"))
  if (type === "message_start") return at(body, "message", "usage")
  if (type === "message_delta") return at(body, "usage")
  if (type === undefined || type === "message") return at(body, "usage")
  return undefined
}

/**
 * The model named by a response or a `message_start` event.
 *
 * @example
 * anthropicModel({ type: "message_start", message: { model: "claude-sonnet-4-5" } }) // "claude-sonnet-4-5"
 */
export const anthropicModel = (body: unknown): string | undefined =>
  str(at(body, "model")) ?? str(at(body, "message", "model"))
