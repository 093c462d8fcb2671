/**
 * The HttpClient middleware: each generation request a client sends runs through the flow's `submit`, charged
 * by the configured provider from its JSON body under its model's bucket; the provider's answer is read as the
 * flow reads any (headers learnt, refusals retried), and the call settles with the usage the response reports:
 * its JSON body's, or the last a server-sent-events body reported once that body ends (`handOff`).
 *
 * @internal
 */
import * as Headers from "@effect/platform/Headers"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientError from "@effect/platform/HttpClientError"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpClientResponse from "@effect/platform/HttpClientResponse"
import * as IncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as UrlParams from "@effect/platform/UrlParams"
import type * as Cookies from "@effect/platform/Cookies"
import { Cause, Chunk, Effect, Either, Exit, Inspectable, Layer, Option, Predicate, Stream } from "effect"
import { ConfigurationError, RateLimitedByProvider, type RateLimitError } from "../Errors.js"
import * as Provider from "../Provider.js"
import type * as Quota from "../Quota.js"
import { RateLimited, type RateLimitedService } from "../RateLimited.js"
import type { LimitOptions } from "../HttpClient.js"
import { charge, type Charged, generationBody, isGeneration as isGenerationCall } from "./provider/generation.js"
import { parseBody } from "./provider/json.js"
import { sseUsageReader } from "./provider/sse.js"
import { type Flow, type FlowOptions, isFlow, LimiterId } from "./rateLimited.js"
import type { ProviderResponse } from "./learning.js"

export const isHttpClient = (value: unknown): value is HttpClient.HttpClient => Predicate.hasProperty(value, HttpClient.TypeId)

export const isGeneration = (request: HttpClientRequest.HttpClientRequest): boolean => isGenerationCall(request.method, request.url)

const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** The text of a request body, or why it has none the limiter can read before sending it. */
const bodyText = (body: HttpClientRequest.HttpClientRequest["body"]): Either.Either<string, string> => {
  switch (body._tag) {
    case "Uint8Array":
      return Either.right(decoder.decode(body.body))
    case "Raw":
      if (typeof body.body === "string") return Either.right(body.body)
      if (body.body instanceof Uint8Array) return Either.right(decoder.decode(body.body))
      return Either.left(`the request body is raw ${body.body === null ? "null" : typeof body.body}, not JSON text`)
    case "Empty":
      return Either.left("the request has no body")
    case "FormData":
      return Either.left("the request body is form data, not JSON")
    case "Stream":
      return Either.left("the request body is a stream: its charge cannot be read before it is sent")
  }
}

/** A quotaflow error as the HttpClient error a client's callers handle: the error itself is its `cause`. */
const requestError = (
  request: HttpClientRequest.HttpClientRequest,
  error: RateLimitError | Provider.InvalidRequest | ConfigurationError
) =>
  new HttpClientError.RequestError({
    request,
    reason: error._tag === "InvalidRequest" || error._tag === "ConfigurationError" ? "Encode" : "Transport",
    cause: error,
    description: error.message
  })

/** A response as read by the limiter: what the provider answered and the usage of its JSON body. */
interface Read {
  readonly response: HttpClientResponse.HttpClientResponse
  readonly answer: ProviderResponse
  readonly usage: Quota.Usage | undefined
}

const contentType = (response: HttpClientResponse.HttpClientResponse) => response.headers["content-type"] ?? ""

const isOk = (response: HttpClientResponse.HttpClientResponse) => response.status >= 200 && response.status < 300

/**
 * Reads a response: a refusal's body for its retry hints, a JSON answer's body for its usage (the text is
 * kept on a response the caller reads as it would the original). Anything else is left unread.
 */
const read = (provider: Provider.Provider, model: string) =>
(response: HttpClientResponse.HttpClientResponse): Effect.Effect<Read, HttpClientError.ResponseError> => {
  const answer = { status: response.status, headers: response.headers }
  if (!isOk(response)) {
    return Effect.map(
      Effect.orElseSucceed(response.text, () => ""),
      (text): Read => ({ response, answer: { ...answer, body: parseBody(text) }, usage: undefined })
    )
  }
  if (!contentType(response).includes("application/json")) return Effect.succeed({ response, answer, usage: undefined })
  return Effect.map(response.text, (text): Read => ({
    response: BodyResponse.ofText(response, text),
    answer,
    usage: provider.usageOf(parseBody(text), model)
  }))
}

/**
 * A server-sent-events body passed through byte for byte while its `data:` lines are read for usage: `settle`
 * gets the last usage they reported, once, when the body ends, fails or is interrupted.
 */
const follow = (
  body: Stream.Stream<Uint8Array, HttpClientError.ResponseError>,
  usageOf: (chunk: unknown) => Quota.Usage | undefined,
  settle: (usage: Quota.Usage | undefined) => void
): Stream.Stream<Uint8Array, HttpClientError.ResponseError> => {
  let settled = false
  return Stream.suspend(() => {
    const reader = sseUsageReader(usageOf)
    const text = new TextDecoder()
    return body.pipe(
      Stream.mapChunks((chunk) => {
        for (const bytes of chunk) reader.push(text.decode(bytes, { stream: true }))
        return chunk
      }),
      Stream.ensuring(Effect.sync(() => {
        if (settled) return
        settled = true
        reader.push(text.decode())
        settle(reader.end())
      }))
    )
  })
}

/**
 * A response whose body the limiter has read or follows: status, headers and cookies are the original's; the
 * body comes from `stream`, read once into the bytes `text`, `json` and the others decode.
 */
class BodyResponse extends Inspectable.Class implements HttpClientResponse.HttpClientResponse {
  readonly [HttpClientResponse.TypeId]: HttpClientResponse.TypeId = HttpClientResponse.TypeId
  readonly [IncomingMessage.TypeId]: IncomingMessage.TypeId = IncomingMessage.TypeId
  private readonly bytes: Effect.Effect<Uint8Array, HttpClientError.ResponseError>

  constructor(
    private readonly source: HttpClientResponse.HttpClientResponse,
    readonly stream: Stream.Stream<Uint8Array, HttpClientError.ResponseError>,
    bytes?: Uint8Array
  ) {
    super()
    this.bytes = bytes !== undefined ? Effect.succeed(bytes) : Effect.runSync(Effect.cached(
      Stream.runCollect(stream).pipe(Effect.map((chunks) => concat(Chunk.toReadonlyArray(chunks))))
    ))
  }

  static ofText(source: HttpClientResponse.HttpClientResponse, text: string): BodyResponse {
    const bytes = encoder.encode(text)
    return new BodyResponse(source, Stream.succeed(bytes), bytes)
  }

  get request(): HttpClientRequest.HttpClientRequest {
    return this.source.request
  }
  get status(): number {
    return this.source.status
  }
  get headers(): Headers.Headers {
    return this.source.headers
  }
  get cookies(): Cookies.Cookies {
    return this.source.cookies
  }
  get remoteAddress(): Option.Option<string> {
    return this.source.remoteAddress
  }

  private decode<A>(f: (bytes: Uint8Array) => A | Promise<A>): Effect.Effect<A, HttpClientError.ResponseError> {
    return Effect.flatMap(this.bytes, (bytes) =>
      Effect.tryPromise({
        try: async () => f(bytes),
        catch: (cause) => new HttpClientError.ResponseError({ request: this.request, response: this, reason: "Decode", cause })
      }))
  }

  get text(): Effect.Effect<string, HttpClientError.ResponseError> {
    return Effect.map(this.bytes, (bytes) => decoder.decode(bytes))
  }
  get json(): Effect.Effect<unknown, HttpClientError.ResponseError> {
    return this.decode((bytes) => {
      const text = decoder.decode(bytes)
      return text === "" ? null : JSON.parse(text) as unknown
    })
  }
  get arrayBuffer(): Effect.Effect<ArrayBuffer, HttpClientError.ResponseError> {
    return Effect.map(this.bytes, (bytes) => bytes.slice().buffer)
  }
  get urlParamsBody(): Effect.Effect<UrlParams.UrlParams, HttpClientError.ResponseError> {
    return this.decode((bytes) => UrlParams.fromInput(new URLSearchParams(decoder.decode(bytes))))
  }
  get formData(): Effect.Effect<FormData, HttpClientError.ResponseError> {
    return this.decode((bytes) => new Response(bytes, { headers: { "content-type": contentType(this) } }).formData())
  }

  toJSON(): unknown {
    // The body is not read here: logging a streamed response must not consume it.
    return { _id: "@effect/platform/HttpClientResponse", request: this.request.toJSON(), status: this.status, headers: Inspectable.redact(this.headers) }
  }
}

const concat = (chunks: ReadonlyArray<Uint8Array>): Uint8Array => {
  if (chunks.length === 1) return chunks[0]
  const out = new Uint8Array(chunks.reduce((size, chunk) => size + chunk.length, 0))
  let offset = 0
  for (const chunk of chunks) {
    out.set(chunk, offset)
    offset += chunk.length
  }
  return out
}

/** The answer carried by a failed attempt: a response error's response (a transport error has none). */
const answerOfFailure = (cause: Cause.Cause<HttpClientError.HttpClientError>): ProviderResponse | undefined =>
  Option.getOrUndefined(Option.flatMap(Cause.failureOption(cause), (error): Option.Option<ProviderResponse> =>
    error._tag === "ResponseError" ? Option.some({ status: error.response.status, headers: error.response.headers }) : Option.none()))

/** One generation request through the flow, charged as `charged` says. */
const submitRequest = (
  flow: Flow,
  provider: Provider.Provider,
  options: LimitOptions | undefined,
  charged: Charged,
  effect: Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError>,
  request: HttpClientRequest.HttpClientRequest
): Effect.Effect<HttpClientResponse.HttpClientResponse, HttpClientError.HttpClientError> => {
  const { limited, meta, model } = charged
  // The last attempt's response: a refusal on the last attempt is what the caller gets, as without a limiter.
  let last: HttpClientResponse.HttpClientResponse | undefined
  const once = Effect.flatMap(Effect.tap(effect, (response) => Effect.sync(() => (last = response))), read(provider, model))
  const flowOptions: FlowOptions<Read, HttpClientError.HttpClientError> = {
    ...(options?.maxWait === undefined ? {} : { maxWait: options.maxWait }),
    actualUsage: (r) => r.usage && limited(r.usage),
    response: (exit) => Exit.isSuccess(exit) ? exit.value.answer : answerOfFailure(exit.cause),
    handOff: (r, settle) => {
      const response = r.response
      if (!isOk(response) || !contentType(response).includes("text/event-stream")) return undefined
      const body = follow(response.stream, Provider.streamUsageOf(provider, model), (usage) => settle(usage && limited(usage)))
      return { ...r, response: new BodyResponse(response, body) }
    }
  }
  return flow.submit(meta, once, flowOptions).pipe(
    Effect.map((r) => r.response),
    Effect.catchIf(
      (error): error is RateLimitError => !HttpClientError.isHttpClientError(error),
      (error) =>
        error instanceof RateLimitedByProvider && last !== undefined ? Effect.succeed(last) : Effect.fail(requestError(request, error))
    )
  )
}

/** A client whose generation requests run through `flow`, charged by `provider`. */
const limitWith = (flow: Flow, provider: Provider.Provider, client: HttpClient.HttpClient, options: LimitOptions | undefined): HttpClient.HttpClient => {
  const generates = options?.isGeneration ?? isGeneration
  return HttpClient.transform(client, (effect, request) => {
    if (!generates(request)) return effect
    return Effect.suspend(() => {
      const charged = Either.flatMap(
        Either.mapLeft(Either.flatMap(bodyText(request.body), generationBody), (issue) => new Provider.InvalidRequest({ provider: provider.name, issue })),
        (body) => charge(flow[LimiterId], provider, body, options?.bucketOf)
      )
      if (Either.isLeft(charged)) return Effect.fail(requestError(request, charged.left))
      return submitRequest(flow, provider, options, charged.right, effect, request)
    })
  })
}

/** Why `limiter` cannot limit HTTP requests, or its flow and provider. */
const flowAndProvider = (limiter: RateLimitedService): Either.Either<readonly [Flow, Provider.Provider], ConfigurationError> => {
  if (!isFlow(limiter)) {
    return Either.left(new ConfigurationError({ issues: ["HttpClient: the RateLimited service was not made by RateLimited.make or RateLimited.layer"] }))
  }
  const provider = limiter[LimiterId].provider
  if (provider === undefined) {
    return Either.left(new ConfigurationError({
      issues: ["HttpClient: the limiter has no provider to charge requests by: set `provider` in its configuration (\"openai\", \"anthropic\", ...)"]
    }))
  }
  return Either.right([limiter, provider])
}

const optionIssues = (options: LimitOptions | undefined): ReadonlyArray<string> => {
  const issues: Array<string> = []
  for (const name of ["bucketOf", "isGeneration"] as const) {
    const value: unknown = options?.[name]
    if (value !== undefined && typeof value !== "function") issues.push(`HttpClient options.${name}: expected a function, got ${typeof value}`)
  }
  return issues
}

export const limit = (client: HttpClient.HttpClient, limiter: RateLimitedService, options?: LimitOptions): HttpClient.HttpClient => {
  const issues = optionIssues(options)
  const ready = issues.length > 0 ? Either.left(new ConfigurationError({ issues })) : flowAndProvider(limiter)
  if (Either.isRight(ready)) return limitWith(ready.right[0], ready.right[1], client, options)
  // Nothing to charge by: every generation request fails, saying why; the others pass.
  const generates = typeof options?.isGeneration === "function" ? options.isGeneration : isGeneration
  return HttpClient.transform(client, (effect, request) => generates(request) ? Effect.fail(requestError(request, ready.left)) : effect)
}

export const layer = (options?: LimitOptions): Layer.Layer<HttpClient.HttpClient, ConfigurationError, HttpClient.HttpClient | RateLimited> =>
  Layer.effect(
    HttpClient.HttpClient,
    Effect.gen(function*() {
      const issues = optionIssues(options)
      if (issues.length > 0) return yield* new ConfigurationError({ issues })
      const limiter = yield* RateLimited
      const [flow, provider] = yield* flowAndProvider(limiter)
      return limitWith(flow, provider, yield* HttpClient.HttpClient, options)
    })
  )
