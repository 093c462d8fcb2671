/**
 * Successful chat responses in each provider's real shape: a JSON body, or the
 * server-sent events of a streamed response split into a head, content deltas
 * (each with the number of tokens it carries, for the latency model) and a tail.
 * The content is filler words.
 *
 * @example
 * import { completionBody } from "./ChatResponse.js"
 * completionBody({ shape: "openai", id: "chatcmpl-emu-1", model: "gpt-4o", createdMs: 0, promptTokens: 5, maxTokens: 10, completionTokens: 6 })
 * // { object: "chat.completion", choices: [...], usage: { prompt_tokens: 5, completion_tokens: 6, total_tokens: 11 }, ... }
 */
import type { Shape } from "./ChatRequest.js"

/**
 * Everything a response needs to know about the completed request.
 *
 * @example
 * const completion: Completion = { shape: "anthropic", id: "msg_emu_1", model: "claude-sonnet-4-5", createdMs: 0, promptTokens: 5, maxTokens: 10, completionTokens: 6 }
 */
export interface Completion {
  readonly shape: Shape
  readonly id: string
  readonly model: string
  readonly createdMs: number
  readonly promptTokens: number
  readonly maxTokens: number
  readonly completionTokens: number
}

/**
 * A streamed response: `head` is sent first, then each delta after its tokens were generated, then `tail`.
 *
 * @example
 * const frames: SseFrames = { head: "data: {...}\n\n", deltas: [{ frame: "data: {...}\n\n", tokens: 3 }], tail: "data: [DONE]\n\n" }
 */
export interface SseFrames {
  readonly head: string
  readonly deltas: ReadonlyArray<{ readonly frame: string; readonly tokens: number }>
  readonly tail: string
}

const filler = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]

/**
 * The filler text of `tokens` generated tokens, as at most four pieces sharing them (a stream sends one
 * piece per delta).
 *
 * @example
 * pieces(6).map((p) => p.tokens) // [1, 2, 1, 2]
 */
export const pieces = (tokens: number): ReadonlyArray<{ readonly text: string; readonly tokens: number }> => {
  const count = Math.min(4, tokens)
  return Array.from({ length: count }, (_, i) => {
    const share = Math.floor((tokens * (i + 1)) / count) - Math.floor((tokens * i) / count)
    const words = Array.from({ length: Math.min(share, 8) }, (_, j) => filler[(i * 8 + j) % filler.length])
    return { text: `${i === 0 ? "" : " "}${words.join(" ")}`, tokens: share }
  })
}

/**
 * Whether the output ran into its limit (`length`, `max_tokens`, an incomplete response).
 *
 * @example
 * finished({ ...completion, completionTokens: 10, maxTokens: 10 }) // true
 */
export const finished = (c: Completion) => c.completionTokens >= c.maxTokens

const usage = (c: Completion) =>
  c.shape === "openai"
    ? { prompt_tokens: c.promptTokens, completion_tokens: c.completionTokens, total_tokens: c.promptTokens + c.completionTokens }
    : { input_tokens: c.promptTokens, output_tokens: c.completionTokens }

/**
 * The JSON body of a non-streamed response, with `usage`.
 *
 * @example
 * completionBody(completion).usage
 */
export const completionBody = (c: Completion) => {
  const text = pieces(c.completionTokens).map((p) => p.text).join("")
  return c.shape === "openai"
    ? {
      id: c.id,
      object: "chat.completion",
      created: Math.floor(c.createdMs / 1000),
      model: c.model,
      choices: [{
        index: 0,
        message: { role: "assistant", content: text, refusal: null },
        logprobs: null,
        finish_reason: finished(c) ? "length" : "stop"
      }],
      usage: usage(c),
      system_fingerprint: null
    }
    : {
      id: c.id,
      type: "message",
      role: "assistant",
      model: c.model,
      content: [{ type: "text", text }],
      stop_reason: finished(c) ? "max_tokens" : "end_turn",
      stop_sequence: null,
      usage: usage(c)
    }
}

const data = (payload: unknown) => `data: ${JSON.stringify(payload)}\n\n`
/**
 * A named server-sent event whose data carries its `type` too (the Anthropic and Responses API streams).
 *
 * @example
 * event("message_stop", {}) // 'event: message_stop\ndata: {"type":"message_stop"}\n\n'
 */
export const event = (type: string, payload: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...payload })}\n\n`

/**
 * The server-sent events of a streamed response. For OpenAI the final chunk
 * carries `usage` only when `includeUsage` (`stream_options.include_usage`) is set;
 * Anthropic always reports usage in `message_start` and `message_delta`.
 *
 * @example
 * const { head, deltas, tail } = sseFrames(completion, true)
 */
export const sseFrames = (c: Completion, includeUsage: boolean): SseFrames => {
  const parts = pieces(c.completionTokens)
  if (c.shape === "openai") {
    const chunk = (delta: object, finishReason: string | null) => ({
      id: c.id,
      object: "chat.completion.chunk",
      created: Math.floor(c.createdMs / 1000),
      model: c.model,
      system_fingerprint: null,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(includeUsage ? { usage: null } : {})
    })
    const usageChunk = {
      id: c.id,
      object: "chat.completion.chunk",
      created: Math.floor(c.createdMs / 1000),
      model: c.model,
      system_fingerprint: null,
      choices: [],
      usage: usage(c)
    }
    return {
      head: data(chunk({ role: "assistant", content: "", refusal: null }, null)),
      deltas: parts.map((p) => ({ frame: data(chunk({ content: p.text }, null)), tokens: p.tokens })),
      tail: data(chunk({}, finished(c) ? "length" : "stop")) + (includeUsage ? data(usageChunk) : "") + "data: [DONE]\n\n"
    }
  }
  const message = {
    id: c.id,
    type: "message",
    role: "assistant",
    model: c.model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: c.promptTokens, output_tokens: Math.min(1, c.completionTokens) }
  }
  return {
    head: event("message_start", { message }) +
      event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }),
    deltas: parts.map((p) => ({
      frame: event("content_block_delta", { index: 0, delta: { type: "text_delta", text: p.text } }),
      tokens: p.tokens
    })),
    tail: event("content_block_stop", { index: 0 }) +
      event("message_delta", {
        delta: { stop_reason: finished(c) ? "max_tokens" : "end_turn", stop_sequence: null },
        usage: { output_tokens: c.completionTokens }
      }) +
      event("message_stop", {})
  }
}
