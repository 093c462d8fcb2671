/**
 * `limiter.fetch` against a recording server on a loopback socket: which bodies it reads, what it charges and
 * what it passes through, what it sends again on a retry, and how a refusal reaches the caller.
 */
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { CapacityExceeded, CircuitOpen, createRateLimiter, LimiterClosed, QueueOverflow } from "../src/index.js"
import type { RateLimiter, RateLimiterConfig } from "../src/index.js"

interface Received {
  readonly method: string
  readonly path: string
  readonly contentType: string | undefined
  readonly body: string
}

/** What the server answers next (a 200 with an OpenAI usage when nothing is scripted). */
type Reply = { readonly status: number; readonly headers?: Record<string, string> }

let server: Server
let url: string
let received: Array<Received> = []
let replies: Array<Reply> = []

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Array<Buffer> = []
    req.on("data", (chunk: Buffer) => chunks.push(chunk))
    req.on("end", () => {
      received.push({ method: req.method ?? "", path: req.url ?? "", contentType: req.headers["content-type"], body: Buffer.concat(chunks).toString("utf8") })
      const reply = replies.shift() ?? { status: 200 }
      const body = reply.status === 200
        ? { id: "x", object: "chat.completion", choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }
        : { error: { message: "Rate limit reached for gpt-4o on requests per min (RPM)", type: "requests", code: "rate_limit_exceeded" } }
      res.writeHead(reply.status, { "content-type": "application/json", ...reply.headers })
      res.end(JSON.stringify(body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))
beforeEach(() => {
  received = []
  replies = []
})

const config: RateLimiterConfig = {
  provider: "openai",
  buckets: {
    "gpt-4o": { quotas: [{ metric: "requests", limit: 100, window: "1 day" }, { metric: "tokens", limit: 100_000, window: "1 day" }] },
    "text-embedding-3-small": { quotas: [{ metric: "requests", limit: 100, window: "1 day" }, { metric: "tokens", limit: 100_000, window: "1 day" }] }
  }
}

const chatJson = JSON.stringify({ model: "gpt-4o", max_tokens: 10, messages: [{ role: "user", content: "Hello" }] })

/** Requests and tokens in use on a bucket (token buckets refilling over a day: to 3 decimals). */
const used = async (limiter: RateLimiter, bucket = "gpt-4o") => {
  const status = await limiter.status(bucket)
  const round = (n: number) => Math.round(n * 1000) / 1000
  return { requests: round(status.quotas[0].used), tokens: round(status.quotas[1].used) }
}

const streamOf = (text: string) =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      const bytes = new TextEncoder().encode(text)
      // In two chunks, as a body streamed from elsewhere comes.
      controller.enqueue(bytes.slice(0, 7))
      controller.enqueue(bytes.slice(7))
      controller.close()
    }
  })

describe("limiter.fetch", () => {
  const bodies: ReadonlyArray<readonly [string, () => NonNullable<RequestInit["body"]>]> = [
    ["a string", () => chatJson],
    ["a Uint8Array", () => new TextEncoder().encode(chatJson)],
    ["an ArrayBuffer", () => new TextEncoder().encode(chatJson).buffer as ArrayBuffer],
    ["a Blob", () => new Blob([chatJson], { type: "application/json" })],
    ["a ReadableStream", () => streamOf(chatJson)]
  ]

  it.each(bodies)("charges a generation whose body is %s, and sends the body intact", async (_, body) => {
    const limiter = createRateLimiter(config)
    const response = await limiter.fetch(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: body() })
    expect(response.status).toBe(200)
    expect(received.map((r) => r.body)).toEqual([chatJson])
    const { requests, tokens } = await used(limiter)
    expect(requests).toBe(1)
    expect(tokens).toBeGreaterThanOrEqual(10) // prompt + max_tokens, kept (OpenAI keeps its charge)
    await limiter.close()
  })

  it("charges a Request, with or without init, and sends its body intact", async () => {
    const limiter = createRateLimiter(config)
    const request = () => new Request(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: chatJson })
    expect((await limiter.fetch(request())).status).toBe(200)
    expect((await limiter.fetch(request(), { headers: { "content-type": "application/json", "x-extra": "1" } })).status).toBe(200)
    expect(received.map((r) => r.body)).toEqual([chatJson, chatJson])
    expect((await used(limiter)).requests).toBe(2)
    await limiter.close()
  })

  it("a one-shot body (a stream, a Request's) is buffered: a retried attempt sends the same bytes", async () => {
    const limiter = createRateLimiter({ ...config, retry: { maxAttempts: 2, baseDelay: "1 millis" } })
    replies = [{ status: 429, headers: { "retry-after-ms": "1" } }]
    const streamed = await limiter.fetch(`${url}/v1/chat/completions`, { method: "POST", body: streamOf(chatJson) })
    replies = [{ status: 429, headers: { "retry-after-ms": "1" } }]
    const request = await limiter.fetch(new Request(`${url}/v1/chat/completions`, { method: "POST", body: streamOf(chatJson), duplex: "half" } as RequestInit))
    expect([streamed.status, request.status]).toEqual([200, 200])
    expect(received.map((r) => r.body)).toEqual([chatJson, chatJson, chatJson, chatJson])
    await limiter.close()
  })

  it("requests that are not generations pass straight through, uncounted", async () => {
    const limiter = createRateLimiter(config)
    const post = (path: string, body: NonNullable<RequestInit["body"]>) => limiter.fetch(`${url}${path}`, { method: "POST", body })
    const form = new FormData()
    form.append("purpose", "batch")
    form.append("file", new Blob(["{}"]), "batch.jsonl")
    const answers = await Promise.all([
      limiter.fetch(`${url}/v1/models`),
      limiter.fetch(new Request(`${url}/v1/models/gpt-4o`)),
      // Each names the model of a configured bucket: charged, it would show there.
      post("/v1/messages/count_tokens", JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "Hi" }] })),
      post("/v1/moderations", JSON.stringify({ model: "gpt-4o", input: "Hi" })),
      // Token counts and other endpoints that name a model but generate nothing under its limits.
      post("/v1/responses/input_tokens", JSON.stringify({ model: "gpt-4o", input: "Hi" })),
      post("/v1/images/generations", JSON.stringify({ model: "gpt-4o", prompt: "A fox" })),
      post("/v1/batches", JSON.stringify({ input_file_id: "file-1", endpoint: "/v1/chat/completions", completion_window: "24h" })),
      post("/v1/files", form),
      post("/v1/chat/completions", new URLSearchParams({ model: "gpt-4o" })),
      post("/v1/chat/completions", "not json"),
      post("/v1/chat/completions", JSON.stringify({ messages: [] }))
    ])
    expect(answers.map((a) => a.status)).toEqual(Array(11).fill(200))
    expect(received.map((r) => `${r.method} ${r.path}`).sort()).toEqual([
      "GET /v1/models",
      "GET /v1/models/gpt-4o",
      "POST /v1/batches",
      "POST /v1/chat/completions",
      "POST /v1/chat/completions",
      "POST /v1/chat/completions",
      "POST /v1/files",
      "POST /v1/images/generations",
      "POST /v1/messages/count_tokens",
      "POST /v1/moderations",
      "POST /v1/responses/input_tokens"
    ])
    // Bodies go as they came: the form with its boundary, the parameters form-encoded.
    expect(received.find((r) => r.path === "/v1/files")?.contentType).toMatch(/^multipart\/form-data; boundary=/)
    expect(received.find((r) => r.body === "model=gpt-4o")?.contentType).toContain("application/x-www-form-urlencoded")
    expect(await used(limiter)).toEqual({ requests: 0, tokens: 0 })
    await limiter.close()
  })

  it("embeddings are charged on tokens, as OpenAI counts them against TPM", async () => {
    const limiter = createRateLimiter(config)
    const input = "The quick brown fox jumps over the lazy dog"
    const response = await limiter.fetch(`${url}/v1/embeddings`, { method: "POST", body: JSON.stringify({ model: "text-embedding-3-small", input }) })
    expect(response.status).toBe(200)
    const { requests, tokens } = await used(limiter, "text-embedding-3-small")
    expect(requests).toBe(1)
    expect(tokens).toBeGreaterThan(0)
    expect(tokens).toBeLessThan(20) // the input only: embeddings generate nothing
    await limiter.close()
  })

  it("the configured breaker guards fetch: after repeated refusals a call fails with CircuitOpen and is not sent", async () => {
    const limiter = createRateLimiter({
      ...config,
      retry: { maxAttempts: 1 },
      breaker: { failureThreshold: 2, failureWindow: "1 minute", openFor: "1 minute" }
    })
    const send = () => limiter.fetch(`${url}/v1/chat/completions`, { method: "POST", body: chatJson })
    replies = [{ status: 429, headers: { "retry-after-ms": "1" } }, { status: 429, headers: { "retry-after-ms": "1" } }]
    expect((await send()).status).toBe(429)
    expect((await send()).status).toBe(429)
    const error = await send().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(CircuitOpen)
    expect(received).toHaveLength(2)
    await limiter.close()
  })

  it("a refusal rejects with the quotaflow error itself: CapacityExceeded, QueueOverflow, LimiterClosed", async () => {
    const limiter = createRateLimiter({
      provider: "openai",
      buckets: { "gpt-4o": { maxQueue: 1, quotas: [{ metric: "requests", limit: 1, window: "1 minute" }, { metric: "tokens", limit: 1_000, window: "1 minute" }] } }
    })
    const send = (maxTokens: number) =>
      limiter.fetch(`${url}/v1/chat/completions`, { method: "POST", body: JSON.stringify({ model: "gpt-4o", max_tokens: maxTokens, messages: [] }) })
    expect(await send(2_000).catch((e: unknown) => e)).toBeInstanceOf(CapacityExceeded)
    expect((await send(10)).status).toBe(200)
    const waiting = send(10).catch((e: unknown) => e) // waits a minute for the next request
    expect(await send(10).catch((e: unknown) => e)).toBeInstanceOf(QueueOverflow)
    await limiter.close()
    expect(await waiting).toBeInstanceOf(LimiterClosed)
    expect(await send(10).catch((e: unknown) => e)).toBeInstanceOf(LimiterClosed)
    expect(received).toHaveLength(1)
  })

  it("a bad request is fetch's TypeError, sent nowhere", async () => {
    const limiter = createRateLimiter(config)
    await expect(limiter.fetch("not a url", { method: "POST", body: chatJson })).rejects.toThrow(TypeError)
    await expect(limiter.fetch(`${url}/v1/models`, { method: "GET", body: "x" })).rejects.toThrow(TypeError)
    expect(received).toHaveLength(0)
    await limiter.close()
  })
})
