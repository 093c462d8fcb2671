/**
 * The emulator's HTTP handler: routes, admission, latency, provider-shaped
 * responses and rate-limit headers. Time comes from Effect's `Clock`, so a
 * `TestClock` drives latency, refill and header timestamps.
 *
 * Routes: `POST /v1/chat/completions` (OpenAI shape), `POST /v1/messages`
 * (Anthropic shape), `GET /stats`, `POST /reset`. The body shape follows the
 * route; admission accounting and headers follow the configured style.
 *
 * @example
 * import { makeApp } from "./App.js"
 * const app = makeApp(config, makeLedger(quotasOf(config), config.algorithm))
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpApp } from "@effect/platform"
import { Effect, Stream } from "effect"
import { admissionCharge, finalCharge } from "./Admission.js"
import { type ChatRequest, InvalidRequest, parseChatRequest, type Shape } from "./ChatRequest.js"
import { type Completion, completionBody, sseFrames } from "./ChatResponse.js"
import type { EmulatorConfig } from "./Config.js"
import { errorBody, rateLimitedBody, tooLargeBody } from "./ErrorBodies.js"
import type { Ledger } from "./Limits.js"
import { limitHeaders, retryHeaders } from "./RateLimitHeaders.js"

/**
 * Builds the handler over `ledger` (which holds all state, shared by every request).
 *
 * @example
 * const response = yield* app.pipe(Effect.provideService(HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(new Request("http://emulator/stats"))))
 */
export const makeApp = (config: EmulatorConfig, ledger: Ledger): HttpApp.Default => {
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

  const respondAdmitted = (chat: ChatRequest, n: number, ticket: number, requestId: string) => {
    const completion: Completion = {
      shape: chat.shape,
      id: chat.shape === "openai" ? `chatcmpl-emu-${n}` : `msg_emu_${n}`,
      model: chat.model,
      createdMs: lastNow,
      promptTokens: chat.promptTokens,
      maxTokens: chat.maxTokens,
      completionTokens: chat.completionTokens
    }
    // Ends the admission: the Anthropic style gives back unused output here.
    const settle = atNow((now) => ledger.settle(ticket, finalCharge(style, chat), now))
    const idHeader = requestIdHeader(chat.shape, requestId)
    if (!chat.stream) {
      return Effect.gen(function*() {
        yield* Effect.sleep(latency.baseMs + latency.perTokenMs * chat.completionTokens)
        return yield* atNow((now) => {
          ledger.settle(ticket, finalCharge(style, chat), now)
          return json(200, completionBody(completion), { ...headersAt(now), ...idHeader })
        })
      }).pipe(Effect.onInterrupt(() => settle))
    }
    const frames = sseFrames(completion, chat.includeUsage)
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

  const chat = (shape: Shape) =>
    Effect.suspend(() => {
      const n = ++counter
      return handleChat(shape, n).pipe(
        Effect.catchTag("InvalidRequest", (e) => invalid(shape, `req_emu_${n}`, e.message))
      )
    })

  const handleChat = (shape: Shape, n: number) =>
    Effect.gen(function*() {
      const requestId = `req_emu_${n}`
      const request = yield* HttpServerRequest.HttpServerRequest
      const text = yield* Effect.mapError(
        request.text,
        (e) => new InvalidRequest({ message: `Could not read the request body: ${e.message}` })
      )
      const parsed = yield* parseChatRequest(shape, text, config.completionFraction)
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
          return yield* respondAdmitted(parsed, n, decision.ticket, requestId)
      }
    })

  const withHeaders = (status: number, body: unknown) => atNow((now) => json(status, body, headersAt(now)))

  return HttpRouter.empty.pipe(
    HttpRouter.post("/v1/chat/completions", chat("openai")),
    HttpRouter.post("/v1/messages", chat("anthropic")),
    HttpRouter.get("/stats", Effect.suspend(() => withHeaders(200, ledger.stats()))),
    HttpRouter.post("/reset", Effect.zipRight(atNow(() => ledger.reset()), withHeaders(200, { ok: true }))),
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
