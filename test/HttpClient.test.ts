/**
 * The HttpClient middleware against the emulator over real HTTP: what a request is charged, what it settles
 * at (JSON and server-sent events, ended, failed or interrupted), what passes through, what the provider
 * refuses, and the typed errors of bad input. Each runs over the fetch client and Node's own.
 */
import { FetchHttpClient, HttpBody, HttpClient, HttpClientRequest } from "@effect/platform"
import type { HttpClientError } from "@effect/platform"
import { NodeHttpClient } from "@effect/platform-node"
import { assert, describe, it } from "@effect/vitest"
import { Chunk, Context, Effect, Either, Exit, Fiber, Layer, Stream } from "effect"
import * as Emulator from "../src/emulator/Emulator.js"
import * as LimitedHttpClient from "../src/HttpClient.js"
import { ConfigurationError, MemoryBackendLive, Provider, RateLimited } from "../src/index.js"
import type { LimiterConfig } from "../src/index.js"

const clients = [["fetch", FetchHttpClient.layer], ["node", NodeHttpClient.layerUndici]] as const

/** An emulator, and the limited client with its limiter over `client`. */
const harness = (
  client: Layer.Layer<HttpClient.HttpClient>,
  emulator: Emulator.EmulatorConfigInput,
  config: LimiterConfig,
  options?: LimitedHttpClient.LimitOptions
) =>
  Effect.gen(function*() {
    const served = yield* Emulator.serve(emulator, { port: 0 })
    const context = yield* Layer.build(
      LimitedHttpClient.layer(options).pipe(
        Layer.provide(client),
        Layer.provideMerge(RateLimited.layer(config).pipe(Layer.provide(MemoryBackendLive)))
      )
    )
    return { emulator: served, http: Context.get(context, HttpClient.HttpClient), limiter: Context.get(context, RateLimited.RateLimited) }
  })

const chatBody = (fields: Record<string, unknown>) => ({
  model: "gpt-4o-2024-08-06",
  messages: [{ role: "user", content: "Hi" }],
  max_tokens: 100,
  x_prompt_tokens: 50,
  x_completion_tokens: 20,
  ...fields
})

const post = (url: string, body: unknown) => HttpClientRequest.post(url, { body: HttpBody.unsafeJson(body) })

/** Exact accounting: trailing windows, refunds to the actual usage, no learning from headers. */
const openai: LimiterConfig = {
  provider: "openai",
  buckets: {
    "gpt-4o": {
      quotas: [
        // Requests in flight: held from admission until settlement.
        { metric: "requests", limit: 10, algorithm: "concurrency" },
        { metric: "tokens", limit: 100_000, window: "1 minute", algorithm: "sliding-window", refunds: true }
      ]
    }
  }
}
const quiet = { style: "openai", limitHeaders: false, limits: { requests: 100, tokens: 100_000 } } as const

/** Each quota's use (`inFlight` for the concurrency quota on requests), and the reservations still open. */
const used = (limiter: RateLimited.RateLimitedService, bucket: string): Effect.Effect<Record<string, number>, unknown> =>
  Effect.map(limiter.status(bucket), (status) => ({
    ...Object.fromEntries(status.quotas.map((quota) => [quota.metric === "requests" ? "inFlight" : quota.metric, quota.used])),
    open: status.open
  }))

const charge = (provider: Provider.Provider, body: unknown) => Either.getOrThrow(provider.chargeOf(body))

describe.each(clients)("HttpClient middleware over the %s client", (_, client) => {
  it.live("a JSON call is charged by its body while it runs and settled at the usage of its response", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http, limiter } = yield* harness(client, { ...quiet, latency: { baseMs: 300 } }, openai)
      const body = chatBody({})
      const expected = charge(Provider.providers.openai, body).tokens ?? 0
      assert.isAbove(expected, 70)
      const fiber = yield* Effect.fork(http.execute(post(`${emulator.url}/v1/chat/completions`, body)))
      yield* Effect.sleep("150 millis")
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 1, tokens: expected, open: 1 })
      const response = yield* Fiber.join(fiber)
      assert.strictEqual(response.status, 200)
      // The caller reads the body the limiter read, as it would without a limiter.
      const json = (yield* response.json) as { usage: { total_tokens: number }; choices: ReadonlyArray<unknown> }
      assert.strictEqual(json.usage.total_tokens, 70)
      assert.strictEqual(json.choices.length, 1)
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 0, tokens: 70, open: 0 })
      assert.strictEqual((yield* emulator.stats).admitted, 1)
    })))

  it.live("a server-sent-events call settles with the usage its last events report, once its body ends", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http, limiter } = yield* harness(client, quiet, openai)
      const body = chatBody({ stream: true, stream_options: { include_usage: true } })
      const expected = charge(Provider.providers.openai, body).tokens ?? 0
      const response = yield* http.execute(post(`${emulator.url}/v1/chat/completions`, body))
      assert.strictEqual(response.status, 200)
      // Still open: the body has not been read.
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 1, tokens: expected, open: 1 })
      const text = yield* response.stream.pipe(Stream.decodeText(), Stream.mkString)
      assert.include(text, "data: [DONE]")
      assert.include(text, `"total_tokens":70`)
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 0, tokens: 70, open: 0 })
    })))

  it.live("a stream whose events report no usage keeps its charge when it ends", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http, limiter } = yield* harness(client, quiet, openai)
      const body = chatBody({ stream: true })
      const expected = charge(Provider.providers.openai, body).tokens ?? 0
      const response = yield* http.execute(post(`${emulator.url}/v1/chat/completions`, body))
      const text = yield* response.text
      assert.include(text, "data: [DONE]")
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 0, tokens: expected, open: 0 })
    })))

  it.live("a stream interrupted mid-way settles once, with the usage its events reported so far", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http, limiter } = yield* harness(
        client,
        { style: "anthropic", limitHeaders: false, latency: { baseMs: 0, perTokenMs: 100 }, limits: { requests: 100, input_tokens: 100_000, output_tokens: 100_000 } },
        {
          provider: "anthropic",
          buckets: {
            "claude-haiku-4-5": {
              quotas: [
                { metric: "input_tokens", limit: 100_000, window: "1 minute", algorithm: "sliding-window", refunds: true },
                { metric: "output_tokens", limit: 100_000, window: "1 minute", algorithm: "sliding-window", refunds: true },
                { metric: "requests", limit: 10, algorithm: "concurrency" }
              ]
            }
          }
        }
      )
      const body = { model: "claude-haiku-4-5", max_tokens: 500, stream: true, messages: [{ role: "user", content: "Hi" }], x_prompt_tokens: 40, x_completion_tokens: 100 }
      const response = yield* http.execute(post(`${emulator.url}/v1/messages`, body))
      // The first events arrive at once (message_start reports 40 in, 1 out); the rest 100 ms per token.
      // Read up to the first content block's start, and stop there: the body is cut while it still streams.
      const first = yield* response.stream.pipe(
        Stream.decodeText(),
        Stream.takeUntil((text) => text.includes("content_block_start")),
        Stream.runCollect,
        Effect.map(Chunk.join(""))
      )
      assert.include(first, "message_start")
      assert.notInclude(first, "message_delta")
      assert.deepStrictEqual(yield* used(limiter, "claude-haiku-4-5"), { inFlight: 0, input_tokens: 40, output_tokens: 1, open: 0 })
    })))

  it.live("an interrupted consumer settles the stream once, and its fiber ends", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http, limiter } = yield* harness(client, { ...quiet, latency: { baseMs: 0, perTokenMs: 100 } }, openai)
      const body = chatBody({ stream: true, stream_options: { include_usage: true } })
      const expected = charge(Provider.providers.openai, body).tokens ?? 0
      const reading = yield* Effect.fork(Stream.runDrain(Stream.unwrap(Effect.map(http.execute(post(`${emulator.url}/v1/chat/completions`, body)), (r) => r.stream))))
      yield* Effect.sleep("200 millis")
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 1, tokens: expected, open: 1 })
      const exit = yield* Fiber.interrupt(reading)
      assert.isTrue(Exit.isInterrupted(exit))
      // No usage was reported before the end of an OpenAI stream: the charge is kept, the slot is back.
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 0, tokens: expected, open: 0 })
    })))

  it.live("a call interrupted while it waits leaves nothing booked; one interrupted in flight keeps its charge", () =>
    Effect.scoped(Effect.gen(function*() {
      const oneAtATime: LimiterConfig = {
        provider: "openai",
        buckets: {
          "gpt-4o": {
            quotas: [
              { metric: "requests", limit: 1, algorithm: "concurrency" },
              { metric: "tokens", limit: 100_000, window: "1 minute", algorithm: "sliding-window", refunds: true }
            ]
          }
        }
      }
      const { emulator, http, limiter } = yield* harness(client, { ...quiet, latency: { baseMs: 400 } }, oneAtATime)
      const body = chatBody({})
      const expected = charge(Provider.providers.openai, body).tokens ?? 0
      const running = yield* Effect.fork(http.execute(post(`${emulator.url}/v1/chat/completions`, body)))
      yield* Effect.sleep("100 millis")
      const waiting = yield* Effect.fork(http.execute(post(`${emulator.url}/v1/chat/completions`, body)))
      yield* Effect.sleep("100 millis")
      assert.strictEqual((yield* limiter.status("gpt-4o")).queued, 1)
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(waiting)))
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 1, tokens: expected, open: 1 })
      assert.isTrue(Exit.isInterrupted(yield* Fiber.interrupt(running)))
      // The provider may have counted the one it received: its charge stays; its slot is back.
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 0, tokens: expected, open: 0 })
      assert.strictEqual((yield* limiter.status("gpt-4o")).queued, 0)
    })))

  it.live("requests that generate nothing pass through untouched and uncharged", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http, limiter } = yield* harness(client, quiet, openai)
      const models = yield* http.get(`${emulator.url}/v1/models`)
      assert.strictEqual(models.status, 200)
      assert.isAbove(((yield* models.json) as { data: ReadonlyArray<unknown> }).data.length, 0)
      const stats = yield* http.get(`${emulator.url}/stats`)
      assert.strictEqual(stats.status, 200)
      assert.deepStrictEqual(yield* used(limiter, "gpt-4o"), { inFlight: 0, tokens: 0, open: 0 })
    })))
}, { timeout: 20_000 })

describe("HttpClient middleware", () => {
  it.live("many concurrent calls at the emulator's exact limits: every one answered, not one 429", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http } = yield* harness(FetchHttpClient.layer, { style: "openai", windowMs: 1_000, limits: { requests: 4, tokens: 4_000 } }, {
        provider: "openai",
        buckets: {
          "gpt-4o": {
            quotas: [{ metric: "requests", limit: 4, window: "1 second" }, { metric: "tokens", limit: 4_000, window: "1 second" }],
            skew: "50 millis"
          }
        }
      })
      const started = Date.now()
      const statuses = yield* Effect.forEach(
        Array.from({ length: 16 }, (_, i) => chatBody({ max_tokens: 200 + i, x_prompt_tokens: undefined, messages: [{ role: "user", content: `Question ${i}` }] })),
        (body) => Effect.map(http.execute(post(`${emulator.url}/v1/chat/completions`, body)), (r) => r.status),
        { concurrency: "unbounded" }
      )
      const elapsed = Date.now() - started
      const stats = yield* emulator.stats
      assert.deepStrictEqual(statuses, Array(16).fill(200))
      assert.strictEqual(stats.rejected429, 0)
      assert.strictEqual(stats.violations, 0)
      // Token-bucket limits of 4 a second: 4 at once, then one every 250 ms.
      assert.isAtLeast(elapsed, 2_700)
    })), { timeout: 30_000 })

  it.live("a refused call is retried on the limiter's schedule after the provider's hint; the last refusal is the answer", () =>
    Effect.scoped(Effect.gen(function*() {
      const config: LimiterConfig = {
        provider: "openai",
        retry: { maxAttempts: 3, baseDelay: "50 millis", maxDelay: "2 seconds" },
        // The limiter believes in more than the provider allows: the provider refuses, and says when to retry.
        buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 100, window: "1 second" }] } }
      }
      const { emulator, http } = yield* harness(FetchHttpClient.layer, { style: "openai", windowMs: 1_000, limits: { requests: 1 } }, config)
      const statuses = yield* Effect.forEach(
        [1, 2],
        () => Effect.map(http.execute(post(`${emulator.url}/v1/chat/completions`, chatBody({}))), (r) => r.status),
        { concurrency: "unbounded" }
      )
      assert.deepStrictEqual(statuses, [200, 200])
      assert.isAtLeast((yield* emulator.stats).rejected429, 1)

      // No headers to learn the limit from before the refusal, and one attempt: the caller gets the 429.
      const once = yield* harness(FetchHttpClient.layer, { style: "openai", windowMs: 60_000, limitHeaders: false, limits: { requests: 1 } }, {
        ...config,
        retry: { maxAttempts: 1 }
      })
      const first = yield* once.http.execute(post(`${once.emulator.url}/v1/chat/completions`, chatBody({})))
      const refused = yield* once.http.execute(post(`${once.emulator.url}/v1/chat/completions`, chatBody({})))
      assert.strictEqual(first.status, 200)
      assert.strictEqual(refused.status, 429)
      assert.strictEqual(((yield* refused.json) as { error: { code: string } }).error.code, "rate_limit_exceeded")
    })), { timeout: 20_000 })

  const encodeError = (error: HttpClientError.HttpClientError) => {
    assert.strictEqual(error._tag, "RequestError")
    if (error._tag !== "RequestError") throw error
    assert.strictEqual(error.reason, "Encode")
    return error.cause
  }

  it.live("a generation request that cannot be charged fails with a RequestError carrying InvalidRequest, unsent", () =>
    Effect.scoped(Effect.gen(function*() {
      const { emulator, http } = yield* harness(FetchHttpClient.layer, quiet, openai)
      const url = `${emulator.url}/v1/chat/completions`
      const cases = [
        [HttpClientRequest.post(url, { body: HttpBody.text("not json") }), "the request body is not JSON"],
        [post(url, { messages: [] }), "the request body has no model (a string)"],
        [post(url, [1, 2]), "the request body is not a JSON object"],
        [post(url, chatBody({ max_tokens: -1 })), "max_tokens"],
        [HttpClientRequest.post(url), "the request has no body"],
        [HttpClientRequest.post(url, { body: HttpBody.stream(Stream.make(new Uint8Array([123]))) }), "stream"]
      ] as const
      for (const [request, issue] of cases) {
        const cause = encodeError(yield* Effect.flip(http.execute(request)))
        assert.instanceOf(cause, Provider.InvalidRequest)
        if (!(cause instanceof Provider.InvalidRequest)) continue
        assert.include(cause.issue, issue)
        assert.strictEqual(cause.provider, "openai")
      }
      const stats = yield* emulator.stats
      assert.strictEqual(stats.admitted + stats.rejected400, 0)
    })))

  it.live("a limiter without a provider: the layer fails with a ConfigurationError, `limit` fails each generation request", () =>
    Effect.scoped(Effect.gen(function*() {
      const noProvider = RateLimited.layer({ buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 10, window: "1 second" }] } } })
        .pipe(Layer.provide(MemoryBackendLive))
      const built = yield* Effect.either(Layer.build(LimitedHttpClient.layer().pipe(Layer.provide(FetchHttpClient.layer), Layer.provide(noProvider))))
      assert.isTrue(Either.isLeft(built))
      if (Either.isRight(built)) return
      assert.instanceOf(built.left, ConfigurationError)
      assert.include(built.left.issues[0], "no provider")

      const context = yield* Layer.build(Layer.merge(noProvider, FetchHttpClient.layer))
      const limiter = Context.get(context, RateLimited.RateLimited)
      const http = LimitedHttpClient.limit(Context.get(context, HttpClient.HttpClient), limiter)
      const served = yield* Emulator.serve(quiet, { port: 0 })
      const cause = encodeError(yield* Effect.flip(http.execute(post(`${served.url}/v1/chat/completions`, chatBody({})))))
      assert.instanceOf(cause, ConfigurationError)
      // What generates nothing still passes.
      assert.strictEqual((yield* http.get(`${served.url}/v1/models`)).status, 200)
    })))

  it.live("options that are not functions fail the layer with a ConfigurationError naming them", () =>
    Effect.scoped(Effect.gen(function*() {
      const bad = { bucketOf: "gpt-4o" } as unknown as LimitedHttpClient.LimitOptions
      const built = yield* Effect.either(Layer.build(
        LimitedHttpClient.layer(bad).pipe(Layer.provide(FetchHttpClient.layer), Layer.provide(RateLimited.layer(openai).pipe(Layer.provide(MemoryBackendLive))))
      ))
      assert.isTrue(Either.isLeft(built))
      if (Either.isLeft(built)) assert.deepStrictEqual(built.left.issues, ["HttpClient options.bucketOf: expected a function, got string"])
    })))

  it.live("bucketOf and isGeneration choose the bucket and what is charged; limit works on a client at hand", () =>
    Effect.scoped(Effect.gen(function*() {
      const config: LimiterConfig = { ...openai, buckets: { shared: openai.buckets?.["gpt-4o"] ?? { quotas: [] } } }
      const context = yield* Layer.build(Layer.merge(RateLimited.layer(config).pipe(Layer.provide(MemoryBackendLive)), FetchHttpClient.layer))
      const limiter = Context.get(context, RateLimited.RateLimited)
      const http = Context.get(context, HttpClient.HttpClient).pipe(
        LimitedHttpClient.limit(limiter, { bucketOf: () => "shared", isGeneration: (request) => request.url.endsWith("/v1/embeddings") })
      )
      const served = yield* Emulator.serve(quiet, { port: 0 })
      const chat = yield* http.execute(post(`${served.url}/v1/chat/completions`, chatBody({})))
      assert.strictEqual(chat.status, 200)
      assert.deepStrictEqual(yield* used(limiter, "shared"), { inFlight: 0, tokens: 0, open: 0 })
      const embedding = yield* http.execute(post(`${served.url}/v1/embeddings`, { model: "text-embedding-3-small", input: "hello", x_prompt_tokens: 7 }))
      assert.strictEqual(embedding.status, 200)
      assert.deepStrictEqual(yield* used(limiter, "shared"), { inFlight: 0, tokens: 7, open: 0 })
    })))
})

describe("isGeneration", () => {
  it("charges POSTs to the generating endpoints only", () => {
    const base = "https://api.example.com/v1"
    assert.isTrue(LimitedHttpClient.isGeneration(HttpClientRequest.post(`${base}/chat/completions`)))
    assert.isTrue(LimitedHttpClient.isGeneration(HttpClientRequest.post(`${base}/responses?x=1`)))
    assert.isTrue(LimitedHttpClient.isGeneration(HttpClientRequest.post(`${base}/messages`)))
    assert.isTrue(LimitedHttpClient.isGeneration(HttpClientRequest.post(`${base}/embeddings`)))
    assert.isFalse(LimitedHttpClient.isGeneration(HttpClientRequest.get(`${base}/chat/completions`)))
    assert.isFalse(LimitedHttpClient.isGeneration(HttpClientRequest.post(`${base}/messages/count_tokens`)))
    assert.isFalse(LimitedHttpClient.isGeneration(HttpClientRequest.post(`${base}/responses/resp_1/cancel`)))
    assert.isFalse(LimitedHttpClient.isGeneration(HttpClientRequest.get(`${base}/models`)))
  })
})
