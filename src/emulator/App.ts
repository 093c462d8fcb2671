/**
 * The emulator's HTTP handler: routes, admission, latency, provider-shaped
 * responses and rate-limit headers. Time comes from Effect's `Clock`, so a
 * `TestClock` drives latency, refill and header timestamps.
 *
 * Routes: `POST /v1/chat/completions`, `POST /v1/responses`, `GET /v1/responses/{id}`,
 * `POST /v1/embeddings` (OpenAI shapes), `POST /v1/messages` and `POST /v1/messages/count_tokens`
 * (Anthropic shapes), `GET /v1/models` and `GET /v1/models/{id}` (the Anthropic shape when the request
 * sends `anthropic-version`), `GET /stats`, `POST /reset`. The body shape follows the route; admission
 * accounting and headers follow the configured style.
 *
 * What is charged: chat completions, messages, responses and embeddings are admitted against the same
 * quotas (embeddings with no output). Models, token counts and stored responses are not charged on any
 * quota and carry no rate-limit headers: they spend no tokens, and Anthropic limits `count_tokens` with
 * requests-per-minute limits of its own, independent of message creation's, which the emulator does not
 * model.
 *
 * @example
 * import { makeApp } from "./App.js"
 * const app = makeApp(config, makeLedger(quotasOf(config), config.algorithm), makeStore())
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { Effect, Stream } from "effect"
import { admissionCharge, finalCharge } from "./Admission.js"
import { type ChatRequest, InvalidRequest, parseChatRequest, parseCountTokens, type Shape } from "./ChatRequest.js"
import { type Completion, completionBody, type SseFrames, sseFrames } from "./ChatResponse.js"
import type { EmulatorConfig } from "./Config.js"
import { embeddingsBody, parseEmbeddingsRequest } from "./Embeddings.js"
import { errorBody, rateLimitedBody, tooLargeBody } from "./ErrorBodies.js"
import type { Ledger } from "./Limits.js"
import { model, modelList } from "./Models.js"
import { limitHeaders, retryHeaders } from "./RateLimitHeaders.js"
import { parseResponsesRequest, responseBody, responseFrames } from "./Responses.js"
import type { Store } from "./Store.js"

/**
 * How an admitted request answers: its id, its JSON body, its stream (none: it never streams), and what to
 * do when it starts and once it has ended (a stored response, in progress, then in its final state).
 */
interface Answer {
  readonly id: string
  readonly body: (c: Completion) => unknown
  readonly frames?: (c: Completion) => SseFrames
  readonly started?: (c: Completion) => void
  readonly ended?: (c: Completion) => void
}

/** A request of a generating route: its sizes and how it answers once admitted. */
interface Generation {
  readonly chat: ChatRequest
  readonly answer: (n: number) => Answer
}

/**
 * Builds the handler over `ledger` (which holds all state, shared by every request).
 *
 * @example
 * const response = yield* app.pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(new Request("http://emulator/stats"))))
 */
export const makeApp = (config: EmulatorConfig, ledger: Ledger, store: Store): HttpApp.Default => {
  const { latency, style } = config
  let lastNow = Number.NEGATIVE_INFINITY
  let counter = 0

  // Runs `f` atomically against the ledger at the current Clock time (never going backwards).
  const atNow = <A>(f: (now: number) => A): Effect.Effect<A> =>
    Effect.clockWith((clock) =>
      Effect.sync(() => {
        lastNow = Math.max(lastNow, clock.unsafeCurrentTimeMillis())
        return f(lastNow)
      })
    )

  const headersAt = (now: number): Record<string, string> =>
    config.limitHeaders ? limitHeaders(style, ledger.status(now), now) : {}

  const json = (status: number, body: unknown, headers: Record<string, string>) =>
    HttpServerResponse.unsafeJson(body, { status, headers })

  const requestIdHeader = (shape: Shape, requestId: string): Record<string, string> =>
    shape === "openai" ? { "x-request-id": requestId } : { "request-id": requestId }

  const invalid = (shape: Shape, requestId: string, message: string) =>
    atNow((now) => {
      ledger.recordInvalid()
      return json(400, errorBody(shape, "invalid_request_error", message, requestId), {
        ...headersAt(now),
        ...requestIdHeader(shape, requestId)
      })
    })

  const respondAdmitted = (chat: ChatRequest, answer: Answer, ticket: number, requestId: string) => {
    const completion: Completion = {
      shape: chat.shape,
      id: answer.id,
      model: chat.model,
      createdMs: lastNow,
      promptTokens: chat.promptTokens,
      maxTokens: chat.maxTokens,
      completionTokens: chat.completionTokens
    }
    // Ends the admission: the Anthropic style gives back unused output here. Settling twice is a no-op.
    const end = (now: number) => {
      ledger.settle(ticket, finalCharge(style, chat), now)
      answer.ended?.(completion)
    }
    const settle = atNow(end)
    const idHeader = requestIdHeader(chat.shape, requestId)
    answer.started?.(completion)
    if (!chat.stream || answer.frames === undefined) {
      return Effect.gen(function*() {
        yield* Effect.sleep(latency.baseMs + latency.perTokenMs * chat.completionTokens)
        return yield* atNow((now) => {
          end(now)
          return json(200, answer.body(completion), { ...headersAt(now), ...idHeader })
        })
      }).pipe(Effect.onInterrupt(() => settle))
    }
    const frames = answer.frames(completion)
    const body = Stream.concat(
      Stream.fromEffect(Effect.as(Effect.sleep(latency.baseMs), frames.head)),
      Stream.concat(
        Stream.mapEffect(
          Stream.fromIterable(frames.deltas),
          (delta) => Effect.as(Effect.sleep(latency.perTokenMs * delta.tokens), delta.frame)
        ),
        Stream.fromEffect(Effect.as(settle, frames.tail))
      )
    ).pipe(Stream.ensuring(settle), Stream.encodeText)
    return atNow((now) =>
      HttpServerResponse.stream(body, {
        contentType: "text/event-stream",
        headers: { ...headersAt(now), ...idHeader, "cache-control": "no-cache" }
      })
    )
  }

  const bodyText = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
    Effect.mapError(request.text, (e) => new InvalidRequest({ message: `Could not read the request body: ${e.message}` })))

  /** A route whose request body can be refused as invalid (a 400 in the route's shape, counted in the stats). */
  const withBody = (shape: Shape, handle: (text: string, n: number) => Effect.Effect<HttpServerResponse.HttpServerResponse, InvalidRequest>) =>
    Effect.suspend(() => {
      const n = ++counter
      return Effect.flatMap(bodyText, (text) => handle(text, n)).pipe(
        Effect.catchTag("InvalidRequest", (e) => invalid(shape, `req_emu_${n}`, e.message))
      )
    })

  const generating = (shape: Shape, parse: (text: string) => Effect.Effect<Generation, InvalidRequest>) =>
    withBody(shape, (text, n) => Effect.flatMap(parse(text), (generation) => handleGeneration(shape, n, generation)))

  const chatAnswer = (chat: ChatRequest) => (n: number): Answer => ({
    id: chat.shape === "openai" ? `chatcmpl-emu-${n}` : `msg_emu_${n}`,
    body: completionBody,
    frames: (c) => sseFrames(c, chat.includeUsage)
  })

  const chat = (shape: Shape) =>
    generating(shape, (text) =>
      Effect.map(parseChatRequest(shape, text, config.completionFraction), (chat) => ({ chat, answer: chatAnswer(chat) })))

  const responses = generating("openai", (text) =>
    Effect.map(parseResponsesRequest(text, config.completionFraction), (call) => ({
      chat: call.chat,
      answer: (n): Answer => {
        // Retrievable from its start, in progress until it ends, as OpenAI's are.
        const keep = (stage: "in_progress" | "final") => (c: Completion) => {
          if (call.store) store.putResponse(c.id, responseBody(c, call, stage))
        }
        return {
          id: `resp_emu_${n}`,
          body: (c) => responseBody(c, call, "final"),
          frames: (c) => responseFrames(c, call),
          started: keep("in_progress"),
          ended: keep("final")
        }
      }
    })))

  const embeddings = generating("openai", (text) =>
    Effect.map(parseEmbeddingsRequest(text), (call) => ({
      // One request and its input tokens; nothing is generated.
      chat: { shape: "openai", model: call.model, promptTokens: call.promptTokens, maxTokens: 0, completionTokens: 0, stream: false, includeUsage: false },
      answer: (n): Answer => ({ id: `embd-emu-${n}`, body: () => embeddingsBody(call) })
    })))

  const countTokens = withBody("anthropic", (text, n) =>
    Effect.flatMap(parseCountTokens(text), ({ inputTokens, model }) =>
      Effect.sync(() => {
        store.sawModel(model)
        return json(200, { input_tokens: inputTokens }, requestIdHeader("anthropic", `req_emu_${n}`))
      })))

  const modelShape = Effect.map(
    HttpServerRequest.HttpServerRequest,
    (request): Shape => (request.headers["anthropic-version"] === undefined ? "openai" : "anthropic")
  )

  const models = Effect.map(modelShape, (shape) => json(200, modelList(shape, store.models()), {}))

  const oneModel = Effect.gen(function*() {
    const shape = yield* modelShape
    const { id } = yield* HttpRouter.params
    return json(200, model(shape, id ?? ""), {})
  })

  const storedResponse = Effect.gen(function*() {
    const { id } = yield* HttpRouter.params
    const found = id === undefined ? undefined : store.response(id)
    return found === undefined
      ? json(404, errorBody("openai", "invalid_request_error", `Response with id '${id ?? ""}' not found.`, "req_emu_0"), {})
      : json(200, found, {})
  })

  const handleGeneration = (shape: Shape, n: number, generation: Generation) =>
    Effect.gen(function*() {
      const requestId = `req_emu_${n}`
      const parsed = generation.chat
      store.sawModel(parsed.model)
      const { decision, headers } = yield* atNow((now) => ({
        decision: ledger.admit(admissionCharge(style, parsed), now),
        headers: { ...headersAt(now), ...requestIdHeader(shape, requestId) }
      }))
      switch (decision._tag) {
        case "TooLarge": {
          const windowMs = ledger.quotas[decision.metric]?.windowMs ?? config.windowMs
          return json(400, tooLargeBody(shape, parsed.model, decision, windowMs, requestId), headers)
        }
        case "RateLimited": {
          const windowMs = ledger.quotas[decision.metric]?.windowMs ?? config.windowMs
          const retry = config.limitHeaders ? retryHeaders(style, decision.retryAfterMs) : {}
          return json(429, rateLimitedBody(shape, parsed.model, decision, windowMs, requestId), {
            ...headers,
            ...retry
          })
        }
        case "Admitted":
          return yield* respondAdmitted(parsed, generation.answer(n), decision.ticket, requestId)
      }
    })

  const withHeaders = (status: number, body: unknown) => atNow((now) => json(status, body, headersAt(now)))

  return HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", chat("openai")),
    HttpRouter.post("/v1/messages", chat("anthropic")),
    HttpRouter.post("/v1/messages/count_tokens", countTokens),
    HttpRouter.post("/v1/responses", responses),
    HttpRouter.get("/v1/responses/:id", storedResponse),
    HttpRouter.post("/v1/embeddings", embeddings),
    HttpRouter.get("/v1/models", models),
    HttpRouter.get("/v1/models/:id", oneModel),
    HttpRouter.get("/stats", Effect.suspend(() => withHeaders(200, ledger.stats()))),
    HttpRouter.post(
      "/reset",
      Effect.zipRight(
        atNow(() => {
          ledger.reset()
          store.reset()
        }),
        withHeaders(200, { ok: true })
      )
    ),
    Effect.catchTag("RouteNotFound", (e) =>
      withHeaders(
        404,
        errorBody(style, "not_found_error", `Unknown route: ${e.request.method} ${e.request.url}`, "req_emu_0")
      )),
    Effect.catchAllDefect((defect) =>
      withHeaders(500, errorBody(style, "api_error", `Internal emulator error: ${String(defect)}`, "req_emu_0"))
    )
  )
}
