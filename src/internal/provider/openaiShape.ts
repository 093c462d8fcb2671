/**
 * The OpenAI chat-completions and Responses shapes, shared by OpenAI, Azure OpenAI and the OpenAI-compatible
 * providers.
 */
import { Either } from "effect"
import type { Usage } from "../../Quota.js"
import { InvalidRequest } from "../../Provider/Errors.js"
import { at, count, isRecord, str, usageFrom } from "./json.js"
import { type Prompt, promptOf } from "./prompt.js"

/**
 * An optional non-negative integer field of a body, or an `InvalidRequest` naming it.
 *
 * @example
 * optionalLimit("openai", { max_tokens: 100 }, ["max_tokens"]) // Either.right(100)
 */
export const optionalLimit = (
  provider: string,
  body: Readonly<Record<string, unknown>>,
  path: ReadonlyArray<string>
): Either.Either<number | undefined, InvalidRequest> => {
  const value = at(body, ...path)
  if (value === undefined || value === null) return Either.right(undefined)
  return typeof value === "number" && Number.isInteger(value) && value >= 0
    ? Either.right(value)
    : Either.left(new InvalidRequest({ provider, issue: `${path.join(".")} must be a non-negative integer, got ${JSON.stringify(value)}` }))
}

/**
 * The body as an object, or an `InvalidRequest`.
 *
 * @example
 * requestObject("openai", "hello") // Either.left(InvalidRequest)
 */
export const requestObject = (
  provider: string,
  request: unknown
): Either.Either<Readonly<Record<string, unknown>>, InvalidRequest> =>
  isRecord(request)
    ? Either.right(request)
    : Either.left(new InvalidRequest({ provider, issue: "the request body must be a JSON object" }))

/**
 * The output limit of an OpenAI-shaped body: `max_completion_tokens` (o-series, newer models), else `max_tokens`,
 * else the Responses API's `max_output_tokens`; multiplied by the number of choices (`n`, or Azure's `best_of`).
 *
 * @example
 * openaiOutputLimit("openai", { max_tokens: 100, n: 2 }) // Either.right({ limit: 100, choices: 2 })
 */
export const openaiOutputLimit = (
  provider: string,
  body: Readonly<Record<string, unknown>>
): Either.Either<{ readonly limit: number | undefined; readonly choices: number }, InvalidRequest> =>
  Either.gen(function*() {
    const completion = yield* optionalLimit(provider, body, ["max_completion_tokens"])
    const legacy = yield* optionalLimit(provider, body, ["max_tokens"])
    const responses = yield* optionalLimit(provider, body, ["max_output_tokens"])
    const n = yield* optionalLimit(provider, body, ["n"])
    const bestOf = yield* optionalLimit(provider, body, ["best_of"])
    return { limit: completion ?? legacy ?? responses, choices: Math.max(1, n ?? 1, bestOf ?? 1) }
  })

/**
 * Total tokens of an OpenAI usage object: chat (`prompt_tokens` + `completion_tokens`) or Responses
 * (`input_tokens` + `output_tokens`); `total_tokens` when the parts are missing. `minus` subtracts tokens the
 * provider does not count (Groq's cached tokens).
 *
 * @example
 * openaiTotalTokens({ prompt_tokens: 12, completion_tokens: 30 }) // 42
 */
export const openaiTotalTokens = (usage: unknown, minus = 0): number | undefined => {
  if (!isRecord(usage)) return undefined
  const input = count(usage["prompt_tokens"]) ?? count(usage["input_tokens"])
  const output = count(usage["completion_tokens"]) ?? count(usage["output_tokens"])
  const total = input !== undefined || output !== undefined ? (input ?? 0) + (output ?? 0) : count(usage["total_tokens"])
  return total === undefined ? undefined : Math.max(0, total - minus)
}

/**
 * The `usage` object of a response body or of a stream chunk (chat's final chunk, Responses' `response.completed`).
 *
 * @example
 * openaiUsageObject({ response: { usage: { input_tokens: 1 } } }) // { input_tokens: 1 }
 */
export const openaiUsageObject = (body: unknown): unknown => {
  const usage = at(body, "usage")
  if (isRecord(usage)) return usage
  const nested = at(body, "response", "usage")
  return isRecord(nested) ? nested : undefined
}

/**
 * `{ tokens }` from an OpenAI-shaped response or chunk, or `undefined`.
 *
 * @example
 * openaiTokensUsage({ usage: { prompt_tokens: 12, completion_tokens: 30 } }) // { tokens: 42 }
 */
export const openaiTokensUsage = (body: unknown, minus?: (usage: unknown) => number): Usage | undefined => {
  const usage = openaiUsageObject(body)
  return usage === undefined ? undefined : usageFrom({ tokens: openaiTotalTokens(usage, minus?.(usage) ?? 0) })
}

/**
 * How `chargeOpenAIShape` counts a prompt and an absent output limit.
 *
 * @example
 * const options: OpenAIShapeCharge = { defaultMaxTokens: 4096, promptTokens: () => 0, family: (m) => m }
 */
export interface OpenAIShapeCharge {
  readonly defaultMaxTokens: number
  readonly promptTokens: (prompt: Prompt, model: string | undefined) => number
  /** The model family, to tell image and embedding models apart. */
  readonly family: (model: string) => string
}

const isImageModel = (family: string) => /^(?:dall-e|gpt-image)/.test(family)
const isEmbeddingModel = (family: string) => /(?:^|\/)text-embedding|embed/.test(family)

/**
 * The admission charge of an OpenAI-shaped body: `{ tokens: prompt + output limit × choices }`, where an absent
 * output limit is `defaultMaxTokens`; embedding models have no output; image models (`dall-e-*`, `gpt-image-*`)
 * are charged `{ images: n }`.
 *
 * @example
 * chargeOpenAIShape("groq", options)({ model: "llama-3.1-8b-instant", messages: [], max_tokens: 10 }) // Either.right({ tokens: 10 })
 */
export const chargeOpenAIShape = (provider: string, options: OpenAIShapeCharge) =>
(request: unknown, model?: string): Either.Either<Usage, InvalidRequest> =>
  Either.gen(function*() {
    const body = yield* requestObject(provider, request)
    const modelName = model ?? str(body["model"])
    const family = options.family(modelName ?? "")
    if (isImageModel(family)) {
      const n = yield* optionalLimit(provider, body, ["n"])
      const images: Usage = { images: n ?? 1 }
      return images
    }
    const output = yield* openaiOutputLimit(provider, body)
    const prompt = options.promptTokens(promptOf(body), modelName)
    const outputTokens = isEmbeddingModel(family) ? 0 : (output.limit ?? options.defaultMaxTokens) * output.choices
    const tokens: Usage = { tokens: prompt + outputTokens }
    return tokens
  })
