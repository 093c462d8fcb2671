/**
 * OpenAI's Responses API (`POST /v1/responses`, `GET /v1/responses/{id}`): the request body the emulator
 * reads, the response object, and the stream of events (`response.created`, `response.in_progress`,
 * `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`…, then the
 * `.done` events and `response.completed`, or `response.incomplete` when the output ran into
 * `max_output_tokens`) in the order the openai SDK's stream helper accumulates them.
 *
 * A response is charged like a chat completion: prompt tokens (`instructions` and `input`, characters / 4)
 * plus the output limit, which defaults to `DEFAULT_MAX_OUTPUT_TOKENS` since the API does not require one.
 *
 * @example
 * import { parseResponsesRequest, responseBody } from "./Responses.js"
 * const request = yield* parseResponsesRequest('{"model":"gpt-4o","input":"hello there","max_output_tokens":10}', 0.6)
 * // request.chat: { promptTokens: 3, maxTokens: 10, completionTokens: 6, ... }
 */
import { Effect, Schema } from "effect"
import { type ChatRequest, decodeBody, InvalidRequest, parseJson, positiveInt, testHooks, tokensOfChars } from "./ChatRequest.js"
import { type Completion, event, finished, pieces, type SseFrames } from "./ChatResponse.js"

/**
 * The output charged and generated from when a body sets no `max_output_tokens`: 4096, the output quotaflow's
 * OpenAI provider charges for a body without a limit, so the two count the same.
 *
 * @example
 * DEFAULT_MAX_OUTPUT_TOKENS // 4096
 */
export const DEFAULT_MAX_OUTPUT_TOKENS = 4096

/**
 * A Responses API request body (the fields the emulator reads; `input` as text or a list of items).
 *
 * @example
 * Schema.decodeUnknownSync(ResponsesRequest)({ model: "gpt-4o", input: [{ role: "user", content: "hi" }] })
 */
export const ResponsesRequest = Schema.Struct({
  model: Schema.String,
  input: Schema.Union(Schema.String, Schema.Array(Schema.Unknown)),
  instructions: Schema.optional(Schema.NullOr(Schema.String)),
  max_output_tokens: Schema.optional(Schema.NullOr(positiveInt)),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  store: Schema.optional(Schema.NullOr(Schema.Boolean)),
  ...testHooks
})

/**
 * A decoded Responses request: its sizes as a chat request, and what the response object echoes.
 *
 * @example
 * const request: ResponsesCall = { chat, instructions: null, maxOutputTokens: null, store: true }
 */
export interface ResponsesCall {
  readonly chat: ChatRequest
  readonly instructions: string | null
  /** As the body set it (`null`: the default was used). */
  readonly maxOutputTokens: number | null
  /** Whether the response is kept for `GET /v1/responses/{id}` (the API's default: yes). */
  readonly store: boolean
}

const textOf = (value: unknown): number => {
  if (typeof value === "string") return value.length
  if (Array.isArray(value)) return value.reduce<number>((n, part) => n + textOf(part), 0)
  if (typeof value !== "object" || value === null) return 0
  // Messages carry `content` (text or parts with `text`); tool results carry `output`.
  const record = value as Readonly<Record<string, unknown>>
  return textOf(record["text"]) + textOf(record["content"]) + textOf(record["output"])
}

/**
 * Parses a raw `POST /v1/responses` body.
 *
 * @example
 * const { chat } = yield* parseResponsesRequest(body, 0.6)
 */
export const parseResponsesRequest = (body: string, completionFraction: number): Effect.Effect<ResponsesCall, InvalidRequest> =>
  Effect.gen(function*() {
    const req = yield* decodeBody(ResponsesRequest, yield* parseJson(body))
    if (Array.isArray(req.input) && req.input.length === 0) {
      return yield* new InvalidRequest({ message: "Invalid request body: input: expected at least one item" })
    }
    const maxTokens = req.max_output_tokens ?? DEFAULT_MAX_OUTPUT_TOKENS
    const chat: ChatRequest = {
      shape: "openai",
      model: req.model,
      promptTokens: req.x_prompt_tokens ?? tokensOfChars(textOf(req.input) + textOf(req.instructions)),
      maxTokens,
      completionTokens: Math.min(maxTokens, req.x_completion_tokens ?? Math.round(completionFraction * maxTokens)),
      stream: req.stream === true,
      includeUsage: true
    }
    return { chat, instructions: req.instructions ?? null, maxOutputTokens: req.max_output_tokens ?? null, store: req.store !== false }
  })

const messageId = (c: Completion) => c.id.replace(/^resp_/, "msg_")

const outputText = (c: Completion) => pieces(c.completionTokens).map((p) => p.text).join("")

const message = (c: Completion, status: "completed" | "incomplete") => ({
  id: messageId(c),
  type: "message",
  status,
  role: "assistant",
  content: [{ type: "output_text", text: outputText(c), annotations: [] }]
})

/**
 * The response object at a stage of its life: `in_progress` (no output, no usage yet), then `completed`,
 * or `incomplete` with `incomplete_details.reason: "max_output_tokens"`.
 *
 * @example
 * responseBody(completion, call, "final").usage // { input_tokens: 5, output_tokens: 6, total_tokens: 11, ... }
 */
export const responseBody = (c: Completion, call: ResponsesCall, stage: "in_progress" | "final") => {
  const status = stage === "in_progress" ? "in_progress" : finished(c) ? "incomplete" : "completed"
  return {
    id: c.id,
    object: "response",
    created_at: Math.floor(c.createdMs / 1000),
    status,
    error: null,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: call.instructions,
    max_output_tokens: call.maxOutputTokens,
    model: c.model,
    output: stage === "in_progress" ? [] : [message(c, status === "incomplete" ? "incomplete" : "completed")],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: call.store,
    temperature: 1,
    text: { format: { type: "text" } },
    tool_choice: "auto",
    tools: [],
    top_p: 1,
    truncation: "disabled",
    usage: stage === "in_progress"
      ? null
      : {
        input_tokens: c.promptTokens,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: c.completionTokens,
        output_tokens_details: { reasoning_tokens: 0 },
        total_tokens: c.promptTokens + c.completionTokens
      },
    user: null,
    metadata: {}
  }
}

/**
 * The events of a streamed response, numbered by `sequence_number`: the head announces the response, its
 * message and its text part; each delta carries a piece of the text; the tail closes them and ends with
 * `response.completed` (or `response.incomplete`), whose response carries the usage.
 *
 * @example
 * const { head, deltas, tail } = responseFrames(completion, call)
 */
export const responseFrames = (c: Completion, call: ResponsesCall): SseFrames => {
  let sequence = 0
  const frame = (type: string, payload: object) => event(type, { sequence_number: sequence++, ...payload })
  const final = responseBody(c, call, "final")
  const item = message(c, final.status === "incomplete" ? "incomplete" : "completed")
  const at = { item_id: item.id, output_index: 0, content_index: 0 }
  const head = frame("response.created", { response: responseBody(c, call, "in_progress") }) +
    frame("response.in_progress", { response: responseBody(c, call, "in_progress") }) +
    frame("response.output_item.added", { output_index: 0, item: { ...item, status: "in_progress", content: [] } }) +
    frame("response.content_part.added", { ...at, part: { type: "output_text", text: "", annotations: [] } })
  const deltas = pieces(c.completionTokens).map((p) => ({
    frame: frame("response.output_text.delta", { ...at, delta: p.text, logprobs: [] }),
    tokens: p.tokens
  }))
  const part = item.content[0]
  const tail = frame("response.output_text.done", { ...at, text: part.text, logprobs: [] }) +
    frame("response.content_part.done", { ...at, part }) +
    frame("response.output_item.done", { output_index: 0, item }) +
    frame(final.status === "incomplete" ? "response.incomplete" : "response.completed", { response: final })
  return { head, deltas, tail }
}
