/**
 * Decoding of chat request bodies in the OpenAI (`/v1/chat/completions`) and
 * Anthropic (`/v1/messages`) shapes, and the token counts the emulator uses.
 *
 * Prompt tokens are `ceil(characters of all message contents and system / 4)`
 * unless the body sets `x_prompt_tokens`. Generated tokens are
 * `x_completion_tokens` if set, else `round(completionFraction * max_tokens)`,
 * never more than `max_tokens`.
 *
 * @example
 * import { parseChatRequest } from "./ChatRequest.js"
 * const request = parseChatRequest("openai", '{"model":"m","messages":[{"role":"user","content":"hello there"}],"max_tokens":10}', 0.6)
 * // Effect succeeding with { promptTokens: 3, maxTokens: 10, completionTokens: 6, stream: false, ... }
 */
import { Data, Effect, Either, ParseResult, Schema } from "effect"

/**
 * The wire shape of a request and its response.
 *
 * @example
 * const shape: Shape = "anthropic"
 */
export type Shape = "openai" | "anthropic"

/**
 * A positive integer field, with the message every route's 400 uses.
 *
 * @example
 * Schema.decodeUnknownSync(positiveInt)(16)
 */
export const positiveInt = Schema.Number.pipe(
  Schema.filter((n) => Number.isSafeInteger(n) && n > 0, { message: () => "expected a positive integer" })
)
const nonNegativeInt = Schema.Number.pipe(
  Schema.filter((n) => Number.isSafeInteger(n) && n >= 0, { message: () => "expected a non-negative integer" })
)

const TextPart = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) })
const Content = Schema.Union(Schema.String, Schema.Array(TextPart))
const Messages = Schema.Array(
  Schema.Struct({ role: Schema.String, content: Schema.optional(Schema.NullOr(Content)) })
).pipe(Schema.minItems(1, { message: () => "expected at least one message" }))
/**
 * Fields a test sets to fix the token counts: `x_prompt_tokens` replaces the estimate from characters,
 * `x_completion_tokens` the generated share of the output limit.
 *
 * @example
 * const body = { model: "gpt-4o", input: "hi", x_prompt_tokens: 100, x_completion_tokens: 20 }
 */
export const testHooks = {
  x_prompt_tokens: Schema.optional(nonNegativeInt),
  x_completion_tokens: Schema.optional(nonNegativeInt)
}

/**
 * An OpenAI chat completions request body (the fields the emulator reads).
 *
 * @example
 * Schema.decodeUnknownSync(OpenAIRequest)({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], max_tokens: 16 })
 */
export const OpenAIRequest = Schema.Struct({
  model: Schema.String,
  messages: Messages,
  max_tokens: Schema.optional(positiveInt),
  max_completion_tokens: Schema.optional(positiveInt),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.Boolean) }))),
  ...testHooks
})

/**
 * An Anthropic messages request body (the fields the emulator reads).
 *
 * @example
 * Schema.decodeUnknownSync(AnthropicRequest)({ model: "claude-sonnet-4-5", max_tokens: 64, messages: [{ role: "user", content: "hi" }] })
 */
export const AnthropicRequest = Schema.Struct({
  model: Schema.String,
  messages: Messages,
  max_tokens: positiveInt,
  system: Schema.optional(Content),
  stream: Schema.optional(Schema.Boolean),
  ...testHooks
})

/**
 * A decoded chat request, reduced to what rate limiting and the response need.
 *
 * @example
 * const request: ChatRequest = { shape: "openai", model: "gpt-4o", promptTokens: 12, maxTokens: 100, completionTokens: 60, stream: false, includeUsage: false }
 */
export interface ChatRequest {
  readonly shape: Shape
  readonly model: string
  readonly promptTokens: number
  readonly maxTokens: number
  readonly completionTokens: number
  readonly stream: boolean
  readonly includeUsage: boolean
}

/**
 * The body is not valid JSON or lacks a valid field.
 *
 * @example
 * new InvalidRequest({ message: "max_tokens: expected a positive integer" })
 */
export class InvalidRequest extends Data.TaggedError("InvalidRequest")<{ readonly message: string }> {}

const chars = (content: typeof Content.Type | null | undefined): number =>
  content == null
    ? 0
    : typeof content === "string"
    ? content.length
    : content.reduce((n, part) => n + (part.text?.length ?? 0), 0)

const promptTokensOf = (messages: typeof Messages.Type, system?: typeof Content.Type): number =>
  tokensOfChars(messages.reduce((n, m) => n + chars(m.content), 0) + chars(system))

// One message per field: a union with `undefined` (optional fields) would otherwise add a second, confusing one.
const formatIssues = (error: ParseResult.ParseError): string => {
  const byPath = new Map<string, string>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const path = issue.path.join(".")
    if (!byPath.has(path)) byPath.set(path, path.length > 0 ? `${path}: ${issue.message}` : issue.message)
  }
  return [...byPath.values()].join("; ")
}

/**
 * Decodes a parsed body, or fails with every bad field named.
 *
 * @example
 * const request = yield* decodeBody(OpenAIRequest, json)
 */
export const decodeBody = <A, I>(schema: Schema.Schema<A, I>, json: unknown): Effect.Effect<A, InvalidRequest> =>
  Schema.decodeUnknown(schema, { errors: "all" })(json).pipe(
    Effect.mapError((error) => new InvalidRequest({ message: `Invalid request body: ${formatIssues(error)}` }))
  )

/**
 * A raw body as JSON, or an `InvalidRequest`.
 *
 * @example
 * const json = yield* parseJson('{"model":"gpt-4o"}')
 */
export const parseJson = (body: string): Either.Either<unknown, InvalidRequest> =>
  Either.try({
    try: (): unknown => JSON.parse(body),
    catch: (e) => new InvalidRequest({ message: `Malformed JSON body: ${e instanceof Error ? e.message : String(e)}` })
  })

/**
 * The decoded ceiling of `characters / 4`: the emulator's token estimate, shared by every route.
 *
 * @example
 * tokensOfChars(17) // 5
 */
export const tokensOfChars = (chars: number): number => Math.ceil(chars / 4)

/**
 * Parses a raw request body in the given shape.
 *
 * @example
 * const request = yield* parseChatRequest("anthropic", body, 0.6)
 */
export const parseChatRequest = (
  shape: Shape,
  body: string,
  completionFraction: number
): Effect.Effect<ChatRequest, InvalidRequest> =>
  Effect.gen(function*() {
    const json = yield* parseJson(body)
    const generated = (maxTokens: number, fixed: number | undefined) =>
      Math.min(maxTokens, fixed ?? Math.round(completionFraction * maxTokens))
    if (shape === "openai") {
      const req = yield* decodeBody(OpenAIRequest, json)
      const maxTokens = req.max_tokens ?? req.max_completion_tokens
      if (maxTokens === undefined) {
        return yield* new InvalidRequest({ message: "Invalid request body: max_tokens is required (a positive integer)" })
      }
      return {
        shape,
        model: req.model,
        promptTokens: req.x_prompt_tokens ?? promptTokensOf(req.messages),
        maxTokens,
        completionTokens: generated(maxTokens, req.x_completion_tokens),
        stream: req.stream === true,
        includeUsage: req.stream_options?.include_usage === true
      }
    }
    const req = yield* decodeBody(AnthropicRequest, json)
    return {
      shape,
      model: req.model,
      promptTokens: req.x_prompt_tokens ?? promptTokensOf(req.messages, req.system),
      maxTokens: req.max_tokens,
      completionTokens: generated(req.max_tokens, req.x_completion_tokens),
      stream: req.stream === true,
      includeUsage: true
    }
  })

/**
 * An Anthropic `count_tokens` body: a messages body without `max_tokens` (nothing is generated).
 *
 * @example
 * Schema.decodeUnknownSync(CountTokensRequest)({ model: "claude-sonnet-4-5", messages: [{ role: "user", content: "hi" }] })
 */
export const CountTokensRequest = Schema.Struct({
  model: Schema.String,
  messages: Messages,
  system: Schema.optional(Content),
  x_prompt_tokens: testHooks.x_prompt_tokens
})

/**
 * The input tokens of a `POST /v1/messages/count_tokens` body, counted as `/v1/messages` counts its prompt.
 *
 * @example
 * const { model, inputTokens } = yield* parseCountTokens('{"model":"m","messages":[{"role":"user","content":"hello there"}]}')
 * // inputTokens: 3
 */
export const parseCountTokens = (body: string): Effect.Effect<{ readonly model: string; readonly inputTokens: number }, InvalidRequest> =>
  Effect.gen(function*() {
    const req = yield* decodeBody(CountTokensRequest, yield* parseJson(body))
    return { model: req.model, inputTokens: req.x_prompt_tokens ?? promptTokensOf(req.messages, req.system) }
  })
