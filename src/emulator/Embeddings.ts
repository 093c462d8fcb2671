/**
 * OpenAI's embeddings (`POST /v1/embeddings`): the request body the emulator reads and the list of vectors
 * it answers with. An embedding is charged its input tokens on the same quotas as a chat (one request, no
 * output), and reports `usage: { prompt_tokens, total_tokens }`.
 *
 * Vectors are made up but stable (the same input position gives the same vector), `dimensions` long
 * (default 1536, text-embedding-3-small's), as float lists or, with `encoding_format: "base64"`, as the
 * base64 of their little-endian float32 bytes: the openai SDK asks for base64 unless told otherwise and
 * decodes it.
 *
 * @example
 * import { embeddingsBody, parseEmbeddingsRequest } from "./Embeddings.js"
 * const request = yield* parseEmbeddingsRequest('{"model":"text-embedding-3-small","input":["hello there","hi"]}')
 * embeddingsBody(request).usage // { prompt_tokens: 4, total_tokens: 4 }
 */
import { Effect, Schema } from "effect"
import { decodeBody, InvalidRequest, parseJson, positiveInt, testHooks, tokensOfChars } from "./ChatRequest.js"

/**
 * The length of a vector when the body does not set `dimensions`.
 *
 * @example
 * DEFAULT_DIMENSIONS // 1536
 */
export const DEFAULT_DIMENSIONS = 1536

/**
 * An embeddings request body: `input` as a text, texts, a token list or token lists.
 *
 * @example
 * Schema.decodeUnknownSync(EmbeddingsRequest)({ model: "text-embedding-3-small", input: "hi", encoding_format: "float" })
 */
export const EmbeddingsRequest = Schema.Struct({
  model: Schema.String,
  input: Schema.Union(Schema.String, Schema.Array(Schema.String), Schema.Array(Schema.Number), Schema.Array(Schema.Array(Schema.Number))),
  encoding_format: Schema.optional(Schema.Literal("float", "base64")),
  dimensions: Schema.optional(positiveInt),
  user: Schema.optional(Schema.String),
  x_prompt_tokens: testHooks.x_prompt_tokens
})

/**
 * A decoded embeddings request.
 *
 * @example
 * const request: EmbeddingsCall = { model: "text-embedding-3-small", inputs: 2, promptTokens: 4, dimensions: 1536, base64: true }
 */
export interface EmbeddingsCall {
  readonly model: string
  /** How many vectors to answer with. */
  readonly inputs: number
  readonly promptTokens: number
  readonly dimensions: number
  readonly base64: boolean
}

/**
 * Parses a raw `POST /v1/embeddings` body. Each text counts `ceil(characters / 4)` tokens and at least one,
 * each token list its length; empty inputs are refused, as OpenAI refuses them.
 *
 * @example
 * const request = yield* parseEmbeddingsRequest('{"model":"text-embedding-3-small","input":[1,2,3]}')
 * // { inputs: 1, promptTokens: 3, ... }
 */
export const parseEmbeddingsRequest = (body: string): Effect.Effect<EmbeddingsCall, InvalidRequest> =>
  Effect.gen(function*() {
    const req = yield* decodeBody(EmbeddingsRequest, yield* parseJson(body))
    const input = req.input
    // A list of numbers is one input of tokens; any other list holds one input per element.
    const items: ReadonlyArray<string | ReadonlyArray<number>> = typeof input === "string"
      ? [input]
      : input.length > 0 && typeof input[0] === "number"
      ? [input as ReadonlyArray<number>]
      : (input as ReadonlyArray<string | ReadonlyArray<number>>)
    if (items.length === 0 || items.some((item) => item.length === 0)) {
      return yield* new InvalidRequest({ message: "Invalid request body: input: expected non-empty inputs" })
    }
    const counted = items.reduce<number>((n, item) => n + (typeof item === "string" ? Math.max(1, tokensOfChars(item.length)) : item.length), 0)
    return {
      model: req.model,
      inputs: items.length,
      promptTokens: req.x_prompt_tokens ?? counted,
      dimensions: req.dimensions ?? DEFAULT_DIMENSIONS,
      base64: req.encoding_format === "base64"
    }
  })

const vector = (index: number, dimensions: number): Float32Array => {
  const values = new Float32Array(dimensions)
  for (let j = 0; j < dimensions; j++) values[j] = Math.sin((index + 1) * (j + 1)) / Math.sqrt(dimensions)
  return values
}

/**
 * The answer to an embeddings request.
 *
 * @example
 * embeddingsBody(request).data[0].object // "embedding"
 */
export const embeddingsBody = (call: EmbeddingsCall) => ({
  object: "list",
  data: Array.from({ length: call.inputs }, (_, index) => {
    const values = vector(index, call.dimensions)
    return {
      object: "embedding",
      index,
      // Float32Array's bytes are little-endian on every platform Node runs on, which is what the SDK decodes.
      embedding: call.base64 ? Buffer.from(values.buffer).toString("base64") : Array.from(values)
    }
  }),
  model: call.model,
  usage: { prompt_tokens: call.promptTokens, total_tokens: call.promptTokens }
})
