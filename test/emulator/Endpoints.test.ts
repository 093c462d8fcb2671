import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, TestClock } from "effect"
import * as Emulator from "../../src/emulator/Emulator.js"
import { DEFAULT_MAX_OUTPUT_TOKENS } from "../../src/emulator/Responses.js"
import { STORED_RESPONSES } from "../../src/emulator/Store.js"
import * as Provider from "../../src/Provider.js"
import { anthropicBody, call, openaiBody, readBody, respond, sseData, sseEvents, withTimePassing } from "./support.js"

const responsesBody = (prompt: number, maxOutput: number | undefined, completion?: number, extra: object = {}) => ({
  model: "gpt-4o",
  input: [{ role: "user", content: [{ type: "input_text", text: "hi" }] }],
  ...(maxOutput === undefined ? {} : { max_output_tokens: maxOutput }),
  x_prompt_tokens: prompt,
  ...(completion === undefined ? {} : { x_completion_tokens: completion }),
  ...extra
})

const rateLimitHeaders = (headers: Readonly<Record<string, string>>) =>
  Object.keys(headers).filter((name) => name.includes("ratelimit") || name.startsWith("retry-after"))

interface Snapshot {
  status: string
  output: Array<{ type: string; content: Array<{ type: string; text: string }> }>
  usage: unknown
}

/** A Responses stream event, with the fields each kind carries. */
interface StreamEvent {
  readonly type: string
  readonly sequence_number: number
  readonly response: Snapshot
  readonly output_index: number
  readonly content_index: number
  readonly item: Snapshot["output"][number]
  readonly part: Snapshot["output"][number]["content"][number]
  readonly delta: string
  readonly text: string
}

const eventsOf = (text: string): Array<StreamEvent> => sseData(text).map((data) => JSON.parse(data) as StreamEvent)

/**
 * Applies Responses stream events the way the openai SDK's stream helper does: the first event must be
 * response.created, items and parts are appended at the next index only, deltas go to an existing text part,
 * lifecycle events replace the snapshot and `.done` events replace what they name.
 */
const accumulate = (events: ReadonlyArray<StreamEvent>): Snapshot => {
  let snapshot: Snapshot | undefined
  for (const event of events) {
    const type = event.type
    if (snapshot === undefined) {
      assert.strictEqual(type, "response.created")
      snapshot = structuredClone(event.response)
      continue
    }
    const output = snapshot.output[event.output_index]
    switch (type) {
      case "response.output_item.added":
        assert.strictEqual(event.output_index, snapshot.output.length)
        snapshot.output.push(structuredClone(event.item))
        break
      case "response.output_item.done":
        assert.isDefined(output)
        snapshot.output[event.output_index] = structuredClone(event.item)
        break
      case "response.content_part.added":
        assert.isDefined(output)
        assert.strictEqual(event.content_index, output!.content.length)
        output!.content.push(structuredClone(event.part))
        break
      case "response.content_part.done":
        assert.isDefined(output?.content[event.content_index])
        output!.content[event.content_index] = structuredClone(event.part)
        break
      case "response.output_text.delta":
        assert.strictEqual(output?.content[event.content_index]?.type, "output_text")
        output!.content[event.content_index]!.text += event.delta
        break
      case "response.output_text.done":
        assert.strictEqual(output?.content[event.content_index]?.text, event.text)
        break
      case "response.in_progress":
      case "response.completed":
      case "response.incomplete":
        snapshot = structuredClone(event.response)
        break
      default:
        assert.fail(`unexpected event ${type}`)
    }
  }
  assert.isDefined(snapshot)
  return snapshot!
}

describe("POST /v1/responses", () => {
  it.effect("answers a response object with its output and usage, charged like a chat on the same quotas", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai", limits: { requests: 10, tokens: 1_000 } })
      const reply = yield* call(emulator, "POST", "/v1/responses", responsesBody(100, 300, 40, { instructions: "Be brief." }))
      assert.strictEqual(reply.status, 200)
      assert.strictEqual(reply.headers["x-ratelimit-remaining-tokens"], "600")
      assert.strictEqual(reply.headers["x-ratelimit-remaining-requests"], "9")
      assert.match(reply.headers["x-request-id"] ?? "", /^req_emu_/)
      const body = JSON.parse(reply.text)
      expect(body).toMatchObject({
        object: "response",
        status: "completed",
        model: "gpt-4o",
        instructions: "Be brief.",
        max_output_tokens: 300,
        incomplete_details: null,
        error: null,
        usage: { input_tokens: 100, output_tokens: 40, total_tokens: 140, input_tokens_details: { cached_tokens: 0 } }
      })
      assert.match(body.id, /^resp_/)
      assert.strictEqual(body.output.length, 1)
      expect(body.output[0]).toMatchObject({ type: "message", role: "assistant", status: "completed" })
      assert.strictEqual(body.output[0].content[0].type, "output_text")
      assert.isAbove(body.output[0].content[0].text.length, 0)
      // quotaflow's readers settle with what the body reports.
      assert.deepStrictEqual(Provider.providers.openai.usageOf(body), { tokens: 140 })

      // The same token quota as chat: 400 + 600 now spent, so a chat of 1 more does not fit.
      assert.strictEqual((yield* call(emulator, "POST", "/v1/chat/completions", openaiBody(100, 500))).status, 200)
      const limited = yield* call(emulator, "POST", "/v1/responses", responsesBody(1, 16))
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(JSON.parse(limited.text).error.code, "rate_limit_exceeded")
      assert.isAbove(Number(limited.headers["retry-after-ms"]), 0)
      const stats = yield* emulator.stats
      assert.strictEqual(stats.admitted, 2)
      assert.strictEqual(stats.charged.tokens, 1_000)
    }))

  it.effect("without max_output_tokens, charges the default output limit; a text input counts its characters", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai", completionFraction: 0, limits: { tokens: 100_000 } })
      const reply = yield* call(emulator, "POST", "/v1/responses", { model: "gpt-4o-mini", input: "x".repeat(40), instructions: "y".repeat(8) })
      assert.strictEqual(reply.status, 200)
      const body = JSON.parse(reply.text)
      assert.isNull(body.max_output_tokens)
      assert.strictEqual(body.usage.input_tokens, 12) // ceil(48 / 4)
      assert.strictEqual((yield* emulator.stats).charged.tokens, 12 + DEFAULT_MAX_OUTPUT_TOKENS)
    }))

  it.effect("streams the events in the order the SDK accumulates them, ending with response.completed", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai", limits: { tokens: 10_000 }, latency: { baseMs: 100, perTokenMs: 1 } })
      const response = yield* respond(emulator, "POST", "/v1/responses", responsesBody(12, 50, 30, { stream: true }))
      assert.strictEqual(response.status, 200)
      assert.strictEqual(response.headers["content-type"], "text/event-stream")
      const text = yield* withTimePassing(readBody(response), 100 + 30)
      const names = sseEvents(text)
      assert.deepStrictEqual(names.slice(0, 4), [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added"
      ])
      assert.deepStrictEqual(names.slice(-4), [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed"
      ])
      assert.isAbove(names.filter((name) => name === "response.output_text.delta").length, 0)
      // No `[DONE]`: the Responses API ends with its last event.
      const events = eventsOf(text)
      assert.deepStrictEqual(events.map((e) => e.type), names)
      assert.deepStrictEqual(events.map((e) => e.sequence_number), events.map((_, i) => i))
      assert.isNull(events[0].response.usage)
      assert.strictEqual(events[0].response.status, "in_progress")

      const snapshot = accumulate(events)
      assert.strictEqual(snapshot.status, "completed")
      assert.deepStrictEqual(snapshot.usage, events.at(-1)?.response.usage)
      expect(snapshot.usage).toMatchObject({ input_tokens: 12, output_tokens: 30, total_tokens: 42 })
      const deltas = events.filter((e) => e.type === "response.output_text.delta").map((e) => e.delta).join("")
      assert.strictEqual(snapshot.output[0]?.content[0]?.text, deltas)

      // The stream settles with the usage of response.completed.
      const usageOf = Provider.streamUsageOf(Provider.providers.openai)
      let usage: unknown
      for (const event of events) usage = usageOf(event)
      assert.deepStrictEqual(usage, { tokens: 42 })
      assert.strictEqual((yield* emulator.stats).violations, 0)
    }))

  it.effect("output cut at max_output_tokens ends the stream with response.incomplete", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai" })
      const streamed = yield* call(emulator, "POST", "/v1/responses", responsesBody(5, 16, 16, { stream: true }))
      const events = eventsOf(streamed.text)
      const last = events.at(-1)
      assert.strictEqual(last?.type, "response.incomplete")
      expect(last?.response).toMatchObject({ status: "incomplete", incomplete_details: { reason: "max_output_tokens" } })
      assert.strictEqual(accumulate(events).status, "incomplete")
      assert.deepStrictEqual(Provider.providers.openai.streamUsage(last), { tokens: 21 })
      const plain = JSON.parse((yield* call(emulator, "POST", "/v1/responses", responsesBody(5, 16, 16))).text)
      assert.strictEqual(plain.status, "incomplete")
      assert.strictEqual(plain.output[0].status, "incomplete")
    }))

  it.effect("the anthropic style corrects the output of a response at its end, as it does a message's", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "anthropic", limits: { input_tokens: 1_000, output_tokens: 1_000 } })
      assert.strictEqual((yield* call(emulator, "POST", "/v1/responses", responsesBody(100, 600, 50))).status, 200)
      const stats = yield* emulator.stats
      assert.strictEqual(stats.charged.input_tokens, 100)
      assert.strictEqual(stats.charged.output_tokens, 50)
    }))

  it.effect("bad bodies are 400s in OpenAI's shape", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai" })
      const noInput = yield* call(emulator, "POST", "/v1/responses", { model: "gpt-4o" })
      assert.strictEqual(noInput.status, 400)
      expect(JSON.parse(noInput.text).error).toMatchObject({ type: "invalid_request_error", message: expect.stringContaining("input") })
      const empty = yield* call(emulator, "POST", "/v1/responses", { model: "gpt-4o", input: [] })
      expect(JSON.parse(empty.text).error.message).toContain("input: expected at least one item")
      const negative = yield* call(emulator, "POST", "/v1/responses", { model: "gpt-4o", input: "hi", max_output_tokens: 0 })
      expect(JSON.parse(negative.text).error.message).toContain("max_output_tokens: expected a positive integer")
      assert.strictEqual((yield* emulator.stats).rejected400, 3)
    }))
})

describe("GET /v1/responses/{id}", () => {
  it.effect("a stored response can be fetched: in progress while it runs, then final; store: false keeps none", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai", latency: { baseMs: 1_000 } })
      const running = yield* Effect.fork(call(emulator, "POST", "/v1/responses", responsesBody(10, 20, 5)))
      yield* TestClock.adjust(10)
      const during = yield* call(emulator, "GET", "/v1/responses/resp_emu_1")
      assert.strictEqual(during.status, 200)
      expect(JSON.parse(during.text)).toMatchObject({ id: "resp_emu_1", status: "in_progress", usage: null, output: [] })
      assert.deepStrictEqual(rateLimitHeaders(during.headers), [])
      yield* TestClock.adjust(1_000)
      const done = yield* running.await
      assert.isTrue(Exit.isSuccess(done))
      const after = yield* call(emulator, "GET", "/v1/responses/resp_emu_1")
      if (Exit.isSuccess(done)) assert.deepStrictEqual(JSON.parse(after.text), JSON.parse(done.value.text))

      yield* withTimePassing(call(emulator, "POST", "/v1/responses", responsesBody(10, 20, 5, { store: false })), 1_000)
      const unstored = yield* call(emulator, "GET", "/v1/responses/resp_emu_2")
      assert.strictEqual(unstored.status, 404)
      expect(JSON.parse(unstored.text).error).toMatchObject({ type: "invalid_request_error", message: "Response with id 'resp_emu_2' not found." })

      // Fetching is not a request on any quota.
      assert.strictEqual((yield* emulator.stats).admitted, 2)
      yield* emulator.reset
      assert.strictEqual((yield* call(emulator, "GET", "/v1/responses/resp_emu_1")).status, 404)
    }))

  it.effect("keeps a bounded number of responses, forgetting the oldest", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai" })
      for (let i = 0; i <= STORED_RESPONSES; i++) yield* call(emulator, "POST", "/v1/responses", responsesBody(1, 16, 1))
      assert.strictEqual((yield* call(emulator, "GET", "/v1/responses/resp_emu_1")).status, 404)
      assert.strictEqual((yield* call(emulator, "GET", "/v1/responses/resp_emu_2")).status, 200)
      assert.strictEqual((yield* call(emulator, "GET", `/v1/responses/resp_emu_${STORED_RESPONSES + 1}`)).status, 200)
    }))
})

describe("POST /v1/embeddings", () => {
  it.effect("answers vectors as floats, or base64 float32 (what the openai SDK asks for by default), charged its input tokens", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai", limits: { requests: 10, tokens: 100 } })
      const floats = yield* call(emulator, "POST", "/v1/embeddings", {
        model: "text-embedding-3-small",
        input: ["x".repeat(10), "y"],
        encoding_format: "float",
        dimensions: 8
      })
      assert.strictEqual(floats.status, 200)
      assert.strictEqual(floats.headers["x-ratelimit-remaining-tokens"], "96") // ceil(10 / 4) + 1
      const body = JSON.parse(floats.text)
      expect(body).toMatchObject({ object: "list", model: "text-embedding-3-small", usage: { prompt_tokens: 4, total_tokens: 4 } })
      assert.deepStrictEqual(body.data.map((d: { index: number; object: string }) => [d.object, d.index]), [["embedding", 0], ["embedding", 1]])
      assert.strictEqual(body.data[0].embedding.length, 8)
      assert.notDeepEqual(body.data[0].embedding, body.data[1].embedding)
      assert.deepStrictEqual(Provider.providers.openai.usageOf(body), { tokens: 4 })

      const encoded = yield* call(emulator, "POST", "/v1/embeddings", {
        model: "text-embedding-3-small",
        input: ["x".repeat(10), "y"],
        encoding_format: "base64",
        dimensions: 8
      })
      const base64 = JSON.parse(encoded.text).data[0].embedding
      assert.isString(base64)
      const bytes = Buffer.from(base64, "base64")
      const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4))
      assert.deepStrictEqual(decoded, body.data[0].embedding)

      // Token lists count their length; without dimensions the vector is 1536 long.
      const tokens = JSON.parse((yield* call(emulator, "POST", "/v1/embeddings", { model: "text-embedding-3-small", input: [1, 2, 3] })).text)
      assert.strictEqual(tokens.usage.prompt_tokens, 3)
      assert.strictEqual(tokens.data.length, 1)
      assert.strictEqual(tokens.data[0].embedding.length, 1536)
      const stats = yield* emulator.stats
      assert.strictEqual(stats.admitted, 3)
      assert.strictEqual(stats.charged.requests, 3)
      assert.strictEqual(stats.charged.tokens, 4 + 4 + 3)
    }))

  it.effect("shares the token quota with chat and refuses empty input", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai", limits: { tokens: 100 } })
      assert.strictEqual((yield* call(emulator, "POST", "/v1/chat/completions", openaiBody(50, 40))).status, 200)
      const limited = yield* call(emulator, "POST", "/v1/embeddings", { model: "text-embedding-3-small", input: "x", x_prompt_tokens: 20 })
      assert.strictEqual(limited.status, 429)
      assert.strictEqual(JSON.parse(limited.text).error.type, "tokens")
      const empty = yield* call(emulator, "POST", "/v1/embeddings", { model: "text-embedding-3-small", input: "" })
      assert.strictEqual(empty.status, 400)
      expect(JSON.parse(empty.text).error.message).toContain("input: expected non-empty inputs")
      assert.strictEqual((yield* call(emulator, "POST", "/v1/embeddings", { model: "m", input: [] })).status, 400)
    }))
})

describe("GET /v1/models", () => {
  it.effect("lists and finds models in OpenAI's shape, or Anthropic's when the request sends anthropic-version; never charged", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "openai", limits: { requests: 1 } })
      assert.strictEqual((yield* call(emulator, "POST", "/v1/chat/completions", { ...openaiBody(1, 1), model: "my-model" })).status, 200)
      const list = yield* call(emulator, "GET", "/v1/models")
      assert.strictEqual(list.status, 200)
      assert.deepStrictEqual(rateLimitHeaders(list.headers), [])
      const body = JSON.parse(list.text)
      assert.strictEqual(body.object, "list")
      assert.deepStrictEqual(body.data.map((m: { id: string }) => m.id), ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "my-model"])
      expect(body.data[0]).toEqual({ id: "gpt-4o", object: "model", created: 1_704_067_200, owned_by: "quotaflow-emulator" })
      const one = yield* call(emulator, "GET", "/v1/models/ft:gpt-4o-mini:org::abc")
      assert.deepStrictEqual(JSON.parse(one.text), { id: "ft:gpt-4o-mini:org::abc", object: "model", created: 1_704_067_200, owned_by: "quotaflow-emulator" })

      const anthropic = JSON.parse((yield* call(emulator, "GET", "/v1/models", undefined, { "anthropic-version": "2023-06-01" })).text)
      expect(anthropic).toMatchObject({ has_more: false, first_id: "claude-sonnet-4-5", last_id: "my-model" })
      expect(anthropic.data[0]).toEqual({ type: "model", id: "claude-sonnet-4-5", display_name: "claude-sonnet-4-5", created_at: "2024-01-01T00:00:00.000Z" })
      const anthropicOne = JSON.parse((yield* call(emulator, "GET", "/v1/models/claude-haiku-4-5", undefined, { "anthropic-version": "2023-06-01" })).text)
      assert.strictEqual(anthropicOne.type, "model")

      // The one request allowed is spent, and listing still answers: it is not on the quota.
      assert.strictEqual((yield* call(emulator, "POST", "/v1/chat/completions", openaiBody(1, 1))).status, 429)
      assert.strictEqual((yield* call(emulator, "GET", "/v1/models")).status, 200)
      assert.strictEqual((yield* emulator.stats).admitted, 1)
    }))
})

describe("POST /v1/messages/count_tokens", () => {
  it.effect("answers input_tokens as /v1/messages counts them, on no quota and with no rate-limit headers", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "anthropic", limits: { requests: 1, input_tokens: 100 } })
      const { max_tokens: _, ...countBody } = anthropicBody(0, 1)
      const counted = yield* call(emulator, "POST", "/v1/messages/count_tokens", {
        ...countBody,
        x_prompt_tokens: undefined,
        messages: [{ role: "user", content: "x".repeat(30) }],
        system: "y".repeat(6)
      })
      assert.strictEqual(counted.status, 200)
      assert.deepStrictEqual(JSON.parse(counted.text), { input_tokens: 9 }) // ceil(36 / 4)
      assert.match(counted.headers["request-id"] ?? "", /^req_emu_/)
      assert.deepStrictEqual(rateLimitHeaders(counted.headers), [])
      // Counting more than the input limit is fine, and leaves the one request for a message.
      assert.strictEqual((yield* call(emulator, "POST", "/v1/messages/count_tokens", { ...countBody, x_prompt_tokens: 5_000 })).status, 200)
      assert.strictEqual((yield* call(emulator, "POST", "/v1/messages", anthropicBody(10, 10))).status, 200)
      assert.strictEqual((yield* call(emulator, "POST", "/v1/messages/count_tokens", countBody)).status, 200)
      const stats = yield* emulator.stats
      assert.strictEqual(stats.admitted, 1)
      assert.strictEqual(stats.charged.input_tokens, 10)
      // The answer is a count, not a usage: quotaflow's reader does not settle with it.
      assert.isUndefined(Provider.providers.anthropic.usageOf(JSON.parse(counted.text)))
    }))

  it.effect("a bad body is a 400 in Anthropic's shape", () =>
    Effect.gen(function*() {
      const emulator = yield* Emulator.make({ style: "anthropic" })
      const reply = yield* call(emulator, "POST", "/v1/messages/count_tokens", { model: "claude-sonnet-4-5", messages: [] })
      assert.strictEqual(reply.status, 400)
      expect(JSON.parse(reply.text)).toMatchObject({ type: "error", error: { type: "invalid_request_error" } })
      expect(JSON.parse(reply.text).error.message).toContain("messages: expected at least one message")
      assert.strictEqual((yield* emulator.stats).rejected400, 1)
    }))
})
