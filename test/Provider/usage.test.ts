import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as Provider from "../../src/Provider.js"

const { anthropic, bedrock, deepseek, gemini, groq, mistral, openai, openrouter, together, venice, vertex } = Provider.providers
const azure = Provider.providers["azure-openai"]

const charge = (provider: Provider.Provider, request: unknown, model?: string) => Either.getOrThrow(provider.chargeOf(request, model))
const chargeError = (provider: Provider.Provider, request: unknown, model?: string) =>
  Either.getOrElse(Either.flip(provider.chargeOf(request, model)), () => {
    throw new Error("expected an InvalidRequest")
  })

describe("token estimation", () => {
  it("counts OpenAI text with gpt-tokenizer, by model family", () => {
    expect(Provider.OpenAI.countTokens("Hello, world!", "gpt-4o")).toBe(4)
    expect(Provider.OpenAI.countTokens("The quick brown fox jumps over the lazy dog.", "gpt-4o-2024-08-06")).toBe(10)
    // o200k_base has whole-word tokens for Japanese that cl100k_base splits.
    expect(Provider.OpenAI.countTokens("こんにちは世界", "gpt-4o")).toBe(2)
    expect(Provider.OpenAI.countTokens("こんにちは世界", "gpt-4-turbo")).toBe(4)
    expect(Provider.OpenAI.countTokens("こんにちは世界", "some-future-model")).toBe(2)
  })

  it("chooses the encoding by family, falling back to o200k_base", () => {
    expect(Provider.OpenAI.encodingFor("gpt-4o-mini-2024-07-18")).toBe("o200k_base")
    expect(Provider.OpenAI.encodingFor("gpt-4.1")).toBe("o200k_base")
    expect(Provider.OpenAI.encodingFor("o3-mini")).toBe("o200k_base")
    expect(Provider.OpenAI.encodingFor("gpt-5")).toBe("o200k_base")
    expect(Provider.OpenAI.encodingFor("gpt-4")).toBe("cl100k_base")
    expect(Provider.OpenAI.encodingFor("gpt-4-0613")).toBe("cl100k_base")
    expect(Provider.OpenAI.encodingFor("gpt-3.5-turbo-0125")).toBe("cl100k_base")
    expect(Provider.OpenAI.encodingFor("text-embedding-3-small")).toBe("cl100k_base")
    expect(Provider.OpenAI.encodingFor(undefined)).toBe("o200k_base")
  })

  it("counts a chat prompt as texts + 4 per message + 3 to prime the reply", () => {
    const request = {
      model: "gpt-4o",
      messages: [
        { role: "system", content: "You are a helpful assistant." },
        { role: "user", content: "Hello, world!" }
      ]
    }
    expect(Provider.OpenAI.promptTokens(request)).toBe(6 + 4 + 2 * 4 + 3)
  })

  it("estimates other providers from characters: ceil(ASCII / 3.5) + 1 per other character", () => {
    expect(Provider.CHARS_PER_TOKEN).toBe(3.5)
    expect(Provider.MESSAGE_OVERHEAD_TOKENS).toBe(4)
    expect(Provider.estimateTextTokens("")).toBe(0)
    expect(Provider.estimateTextTokens("abc")).toBe(1)
    expect(Provider.estimateTextTokens("abcdefg")).toBe(2)
    expect(Provider.estimateTextTokens("The quick brown fox jumps over the lazy dog.")).toBe(13) // 44 / 3.5 = 12.57
    expect(Provider.estimateTextTokens("こんにちは世界")).toBe(7)
    expect(Provider.estimateTextTokens("café")).toBe(2) // ceil(3 / 3.5) + 1
  })
})

describe("chargeOf", () => {
  it("OpenAI: prompt + max_tokens (or max_completion_tokens) × n; a documented default when absent", () => {
    const messages = [{ role: "user", content: "Hello, world!" }]
    expect(charge(openai, { model: "gpt-4o", messages, max_tokens: 100 })).toEqual({ tokens: 11 + 100 })
    expect(charge(openai, { model: "o3", messages, max_completion_tokens: 500, max_tokens: 100 })).toEqual({ tokens: 11 + 500 })
    expect(charge(openai, { model: "gpt-4o", messages, max_tokens: 100, n: 3 })).toEqual({ tokens: 11 + 300 })
    expect(charge(openai, { model: "gpt-4o", messages })).toEqual({ tokens: 11 + Provider.OpenAI.DEFAULT_MAX_TOKENS })
    expect(charge(Provider.OpenAI.make({ defaultMaxTokens: 50 }), { model: "gpt-4o", messages })).toEqual({ tokens: 61 })
    // The model argument overrides the body's.
    expect(charge(openai, { messages, max_tokens: 0 }, "gpt-4o")).toEqual({ tokens: 11 })
  })

  it("OpenAI: tool calls, tool definitions and images count; embeddings have no output; images models charge images", () => {
    const withTools = charge(openai, {
      model: "gpt-4o",
      max_tokens: 0,
      messages: [
        { role: "user", content: [{ type: "text", text: "Hello, world!" }, { type: "image_url", image_url: { url: "data:image/png;base64,AAAA", detail: "low" } }] }
      ],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }]
    })
    expect(withTools.tokens).toBeGreaterThan(11 + 85)
    expect(charge(openai, { model: "text-embedding-3-small", input: ["Hello, world!", "Hello, world!"] })).toEqual({ tokens: 8 })
    expect(charge(openai, { model: "dall-e-3", prompt: "a cat", n: 2 })).toEqual({ images: 2 })
  })

  it("OpenAI: the Responses API shape", () => {
    expect(charge(openai, { model: "gpt-4o", input: "Hello, world!", max_output_tokens: 10 })).toEqual({ tokens: 14 })
  })

  it("rejects non-object bodies and malformed limits", () => {
    expect(chargeError(openai, "hello")._tag).toBe("InvalidRequest")
    expect(chargeError(openai, { model: "gpt-4o", messages: [], max_tokens: -1 }).message).toBe(
      "openai: max_tokens must be a non-negative integer, got -1"
    )
    expect(chargeError(groq, { messages: [], max_tokens: "10" }).issue).toContain("max_tokens")
  })

  it("Azure: like OpenAI, with best_of", () => {
    expect(charge(azure, { model: "gpt-4o", messages: [{ role: "user", content: "Hello, world!" }], max_tokens: 100, best_of: 2 })).toEqual({
      tokens: 211
    })
  })

  it("Anthropic: input estimate (system, messages, tools) and max_tokens, which is required", () => {
    expect(charge(anthropic, { model: "claude-sonnet-4-5", max_tokens: 1024, messages: [{ role: "user", content: "Hello, Claude" }] })).toEqual({
      input_tokens: 4 + 4,
      output_tokens: 1024
    })
    const rich = charge(anthropic, {
      model: "claude-sonnet-4-5",
      max_tokens: 10,
      system: [{ type: "text", text: "You are terse." }],
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is in this image?" },
            { type: "image", source: { type: "base64", media_type: "image/png", data: "A".repeat(100_000) } }
          ]
        },
        { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "look", input: { q: "x" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: "a cat" }] }
      ]
    })
    // The base64 payload is not text: the image costs a flat 1600.
    expect(rich.input_tokens).toBeGreaterThan(1600)
    expect(rich.input_tokens).toBeLessThan(1700)
    expect(chargeError(anthropic, { model: "claude-sonnet-4-5", messages: [] }).message).toContain("max_tokens is required")
    expect(chargeError(anthropic, { model: "claude-sonnet-4-5", messages: [], max_tokens: 0 }).message).toContain("positive integer")
  })

  it("Bedrock: input + burndown × output limit; the model maximum when unset", () => {
    const sonnet4 = "anthropic.claude-sonnet-4-20250514-v1:0"
    const messages = [{ role: "user", content: "Hi" }]
    expect(charge(bedrock, { anthropic_version: "bedrock-2023-05-31", max_tokens: 1000, messages }, sonnet4)).toEqual({ tokens: 5 + 5000 })
    expect(charge(bedrock, { anthropic_version: "bedrock-2023-05-31", max_tokens: 1000, messages }, "anthropic.claude-3-5-sonnet-20240620-v1:0"))
      .toEqual({ tokens: 5 + 1000 })
    // Converse, without an output limit: Sonnet's maximum, 64,000.
    expect(charge(bedrock, { messages: [{ role: "user", content: [{ text: "Hi" }] }] }, sonnet4)).toEqual({ tokens: 5 + 5 * 64_000 })
    expect(charge(bedrock, { messages: [{ role: "user", content: [{ text: "Hi" }] }], inferenceConfig: { maxTokens: 100 } }, sonnet4))
      .toEqual({ tokens: 505 })
    // Bedrock's own reservation, without the burndown.
    expect(charge(Provider.Bedrock.make({ burndownAtAdmission: false }), { max_tokens: 1000, messages }, sonnet4)).toEqual({ tokens: 1005 })
    expect(charge(bedrock, { prompt: "Hi", max_gen_len: 10 }, "meta.llama3-1-70b-instruct-v1:0")).toEqual({ tokens: 11 })
  })

  it("Gemini and Vertex: input tokens only", () => {
    const body = { contents: [{ role: "user", parts: [{ text: "Hello, Gemini" }] }], generationConfig: { maxOutputTokens: 1000 } }
    expect(charge(gemini, body, "gemini-2.0-flash")).toEqual({ tokens: 8 })
    expect(charge(vertex, { ...body, systemInstruction: { parts: [{ text: "Be brief." }] } })).toEqual({ tokens: 8 + 3 })
    expect(charge(gemini, { contents: [{ parts: [{ inlineData: { mimeType: "image/png", data: "AAAA" } }] }] })).toEqual({
      tokens: 4 + Provider.Gemini.MEDIA_TOKENS.image
    })
  })

  it("OpenAI-compatible: character estimate + max_tokens; OpenRouter charges requests only", () => {
    const body = { model: "llama-3.1-8b-instant", messages: [{ role: "user", content: "Hello, world!" }], max_tokens: 100 }
    for (const provider of [groq, together, mistral, deepseek, venice]) {
      expect(charge(provider, body)).toEqual({ tokens: 4 + 4 + 100 })
    }
    expect(charge(openrouter, body)).toEqual({})
  })
})

describe("usageOf", () => {
  it("OpenAI and Azure: prompt + completion tokens", () => {
    const body = { usage: { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 } }
    expect(openai.usageOf(body)).toEqual({ tokens: 42 })
    expect(azure.usageOf(body)).toEqual({ tokens: 42 })
    expect(openai.usageOf({ usage: { input_tokens: 5, output_tokens: 7, total_tokens: 12 } })).toEqual({ tokens: 12 })
    expect(openai.usageOf({ choices: [] })).toBeUndefined()
    expect(openai.usageOf("not json")).toBeUndefined()
  })

  it("Anthropic: input + cache creation (not cache reads), output", () => {
    const usage = { input_tokens: 10, cache_creation_input_tokens: 200, cache_read_input_tokens: 5000, output_tokens: 42 }
    expect(anthropic.usageOf({ type: "message", model: "claude-sonnet-4-5-20250929", usage })).toEqual({ input_tokens: 210, output_tokens: 42 })
    // Haiku 3.x counts cache reads.
    expect(anthropic.usageOf({ type: "message", model: "claude-3-5-haiku-20241022", usage })).toEqual({ input_tokens: 5210, output_tokens: 42 })
  })

  it("Bedrock: input + cache writes + burndown × output, for each response shape", () => {
    const sonnet4 = "anthropic.claude-sonnet-4-20250514-v1:0"
    expect(bedrock.usageOf({ usage: { input_tokens: 100, output_tokens: 200, cache_read_input_tokens: 900 } }, sonnet4)).toEqual({ tokens: 1100 })
    expect(bedrock.usageOf({ type: "message", model: "claude-sonnet-4-20250514", usage: { input_tokens: 100, output_tokens: 200 } })).toEqual({
      tokens: 1100
    })
    expect(bedrock.usageOf({ usage: { inputTokens: 100, outputTokens: 200, totalTokens: 300, cacheWriteInputTokens: 50 } }, sonnet4)).toEqual({
      tokens: 1150
    })
    expect(bedrock.usageOf({ usage: { inputTokens: 100, outputTokens: 200 } }, "amazon.nova-pro-v1:0")).toEqual({ tokens: 300 })
    expect(bedrock.usageOf({ generation: "…", prompt_token_count: 10, generation_token_count: 20 }, "meta.llama3-1-70b-instruct-v1:0")).toEqual({
      tokens: 30
    })
    expect(Provider.Bedrock.make({ burndown: { "anthropic.claude-3-5-sonnet": 3 } }).usageOf({ usage: { input_tokens: 1, output_tokens: 1 } }, "anthropic.claude-3-5-sonnet-20240620-v1:0"))
      .toEqual({ tokens: 4 })
  })

  it("Gemini: usageMetadata.promptTokenCount", () => {
    expect(gemini.usageOf({ usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 20, totalTokenCount: 27 } })).toEqual({ tokens: 7 })
    expect(gemini.usageOf({ candidates: [] })).toBeUndefined()
  })

  it("Groq leaves cached tokens out; OpenRouter reports nothing", () => {
    expect(groq.usageOf({ usage: { prompt_tokens: 100, completion_tokens: 10, prompt_tokens_details: { cached_tokens: 60 } } })).toEqual({ tokens: 50 })
    expect(openrouter.usageOf({ usage: { prompt_tokens: 100, completion_tokens: 10 } })).toBeUndefined()
  })
})

describe("stream usage", () => {
  it("OpenAI: only the final chunk with include_usage reports", () => {
    expect(openai.streamUsage({ choices: [{ delta: { content: "Hi" } }], usage: null })).toBeUndefined()
    expect(openai.streamUsage({ choices: [], usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 } })).toEqual({ tokens: 21 })
    expect(openai.streamUsage({ type: "response.completed", response: { usage: { input_tokens: 9, output_tokens: 3, total_tokens: 12 } } })).toEqual({
      tokens: 12
    })
  })

  it("Anthropic: message_start reports input, message_delta the running output; the accumulator keeps both", () => {
    const start = {
      type: "message_start",
      message: { model: "claude-sonnet-4-5", usage: { input_tokens: 25, cache_creation_input_tokens: 5, cache_read_input_tokens: 100, output_tokens: 1 } }
    }
    const delta = { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 15 } }
    expect(anthropic.streamUsage(start)).toEqual({ input_tokens: 30, output_tokens: 1 })
    expect(anthropic.streamUsage(delta)).toEqual({ output_tokens: 15 })
    expect(anthropic.streamUsage({ type: "content_block_delta", delta: { type: "text_delta", text: "Hi" } })).toBeUndefined()

    const usageOf = Provider.streamUsageOf(anthropic)
    expect(usageOf({ type: "ping" })).toBeUndefined()
    expect(usageOf(start)).toEqual({ input_tokens: 30, output_tokens: 1 })
    expect(usageOf({ type: "content_block_delta" })).toEqual({ input_tokens: 30, output_tokens: 1 })
    expect(usageOf(delta)).toEqual({ input_tokens: 30, output_tokens: 15 })
  })

  it("mergeUsage: the last value per metric wins", () => {
    expect(Provider.mergeUsage()).toBeUndefined()
    expect(Provider.mergeUsage(undefined, { a: 1, b: 2 }, { b: 5 }, undefined, { c: 0 })).toEqual({ a: 1, b: 5, c: 0 })
  })

  it("Bedrock: the final chunk's invocation metrics settle the total", () => {
    const id = "us.anthropic.claude-sonnet-4-20250514-v1:0"
    const usageOf = Provider.streamUsageOf(bedrock, id)
    expect(usageOf({ type: "message_start", message: { usage: { input_tokens: 100, output_tokens: 1 } } })).toEqual({ tokens: 105 })
    expect(usageOf({ type: "message_delta", usage: { output_tokens: 50 } })).toEqual({ tokens: 105 })
    expect(
      usageOf({
        type: "message_stop",
        "amazon-bedrock-invocationMetrics": { inputTokenCount: 100, outputTokenCount: 50, invocationLatency: 900, firstByteLatency: 300 }
      })
    ).toEqual({ tokens: 350 })
    // ConverseStream's metadata event.
    expect(bedrock.streamUsage({ metadata: { usage: { inputTokens: 10, outputTokens: 2, totalTokens: 12 } } }, id)).toEqual({ tokens: 20 })
  })

  it("Gemini: every chunk carries running usageMetadata; Groq: x_groq.usage", () => {
    expect(gemini.streamUsage({ candidates: [], usageMetadata: { promptTokenCount: 7, candidatesTokenCount: 3 } })).toEqual({ tokens: 7 })
    expect(groq.streamUsage({ choices: [], x_groq: { usage: { prompt_tokens: 10, completion_tokens: 5 } } })).toEqual({ tokens: 15 })
  })
})

// Bodies and events as the Responses and embeddings APIs send them.
const RESPONSE_USAGE = {
  input_tokens: 36,
  input_tokens_details: { cached_tokens: 20 },
  output_tokens: 87,
  output_tokens_details: { reasoning_tokens: 0 },
  total_tokens: 123
}
const response = (status: string, usage: unknown) => ({
  id: "resp_1",
  object: "response",
  created_at: 1_762_603_200,
  status,
  model: "gpt-4o-2024-08-06",
  output: status === "in_progress" ? [] : [{ id: "msg_1", type: "message", status: "completed", role: "assistant", content: [{ type: "output_text", text: "Hi", annotations: [] }] }],
  usage
})
const EMBEDDINGS = {
  object: "list",
  data: [{ object: "embedding", index: 0, embedding: [0.1, -0.2] }, { object: "embedding", index: 1, embedding: [0.3, 0.4] }],
  model: "text-embedding-3-small",
  usage: { prompt_tokens: 8, total_tokens: 8 }
}

describe("Responses API and embeddings usage", () => {
  const openaiShaped = [openai, azure, deepseek, mistral, together, venice, Provider.make({ name: "gateway" })]

  it("a Responses body: input_tokens + output_tokens", () => {
    for (const provider of openaiShaped) expect(provider.usageOf(response("completed", RESPONSE_USAGE))).toEqual({ tokens: 123 })
  })

  it("a Responses stream: nothing until response.completed (or response.incomplete), whose response carries the usage", () => {
    for (const provider of openaiShaped) {
      const usageOf = Provider.streamUsageOf(provider)
      expect(usageOf({ type: "response.created", sequence_number: 0, response: response("in_progress", null) })).toBeUndefined()
      expect(usageOf({ type: "response.in_progress", sequence_number: 1, response: response("in_progress", null) })).toBeUndefined()
      expect(usageOf({ type: "response.output_item.added", sequence_number: 2, output_index: 0, item: { id: "msg_1", type: "message", content: [] } }))
        .toBeUndefined()
      expect(usageOf({ type: "response.output_text.delta", sequence_number: 3, item_id: "msg_1", output_index: 0, content_index: 0, delta: "Hi" }))
        .toBeUndefined()
      expect(usageOf({ type: "response.completed", sequence_number: 4, response: response("completed", RESPONSE_USAGE) })).toEqual({ tokens: 123 })
    }
    // Cut short by max_output_tokens, the stream ends with response.incomplete and its usage.
    expect(openai.streamUsage({ type: "response.incomplete", response: response("incomplete", { input_tokens: 5, output_tokens: 16 }) }))
      .toEqual({ tokens: 21 })
  })

  it("Groq leaves the Responses API's cached input tokens out, as it does chat's", () => {
    expect(groq.usageOf(response("completed", RESPONSE_USAGE))).toEqual({ tokens: 103 })
    expect(groq.streamUsage({ type: "response.completed", response: response("completed", RESPONSE_USAGE) })).toEqual({ tokens: 103 })
  })

  it("embeddings: prompt_tokens, with no output", () => {
    for (const provider of openaiShaped) expect(provider.usageOf(EMBEDDINGS)).toEqual({ tokens: 8 })
    expect(groq.usageOf(EMBEDDINGS)).toEqual({ tokens: 8 })
    expect(openai.usageOf({ ...EMBEDDINGS, usage: { total_tokens: 8 } })).toEqual({ tokens: 8 })
  })

  it("what carries no usage reads as none: model lists, a token count, a stored response still running", () => {
    expect(openai.usageOf({ object: "list", data: [{ id: "gpt-4o", object: "model", created: 0, owned_by: "system" }] })).toBeUndefined()
    expect(openai.usageOf(response("in_progress", null))).toBeUndefined()
    // Anthropic's count_tokens answer is a count, not a usage: nothing to settle with.
    expect(anthropic.usageOf({ input_tokens: 14 })).toBeUndefined()
  })
})
