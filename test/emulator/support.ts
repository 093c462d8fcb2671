// Drives the emulator's HttpApp in-process, so Effect's TestClock controls its time.
import { HttpServerRequest, type HttpServerResponse } from "@effect/platform"
import { Effect, Fiber, Stream, TestClock } from "effect"
import type { Emulator } from "../../src/emulator/Emulator.js"

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly text: string
}

/** Runs one request through the app and returns the response without reading its body. */
export const respond = (emulator: Emulator, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
  emulator.app.pipe(
    Effect.provideService(
      HttpServerRequest.HttpServerRequest,
      HttpServerRequest.fromWeb(
        new Request(`http://emulator.test${path}`, {
          method,
          headers: { "content-type": "application/json", ...headers },
          ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) })
        })
      )
    )
  )

/** Reads a response body, running a streamed body to its end. */
export const readBody = (response: HttpServerResponse.HttpServerResponse): Effect.Effect<string> => {
  const body = response.body
  switch (body._tag) {
    case "Uint8Array":
      return Effect.succeed(new TextDecoder().decode(body.body))
    case "Stream":
      return body.stream.pipe(Stream.decodeText(), Stream.mkString, Effect.orDie)
    case "Empty":
      return Effect.succeed("")
    default:
      return Effect.die(new Error(`unexpected body ${body._tag}`))
  }
}

/** Runs one request and reads the whole response. */
export const call = (emulator: Emulator, method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
  Effect.gen(function*() {
    const response = yield* respond(emulator, method, path, body, headers)
    const text = yield* readBody(response)
    return { status: response.status, headers: response.headers, text } satisfies Reply
  })

/** Runs `effect` in the background while the TestClock moves forward by `ms`. */
export const withTimePassing = <A, E>(effect: Effect.Effect<A, E>, ms: number) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(ms)
    return yield* Fiber.join(fiber)
  })

/** An OpenAI chat completions body with fixed token counts. */
export const openaiBody = (prompt: number, maxTokens: number, completion?: number, extra: object = {}) => ({
  model: "gpt-4o",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: maxTokens,
  x_prompt_tokens: prompt,
  ...(completion === undefined ? {} : { x_completion_tokens: completion }),
  ...extra
})

/** An Anthropic messages body with fixed token counts. */
export const anthropicBody = (prompt: number, maxTokens: number, completion?: number, extra: object = {}) => ({
  model: "claude-sonnet-4-5",
  messages: [{ role: "user", content: "hi" }],
  max_tokens: maxTokens,
  x_prompt_tokens: prompt,
  ...(completion === undefined ? {} : { x_completion_tokens: completion }),
  ...extra
})

/** The JSON payloads of the `data:` lines of a server-sent events body. */
export const sseData = (text: string): Array<string> =>
  text.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice("data: ".length))

/** The `event:` names of a server-sent events body. */
export const sseEvents = (text: string): Array<string> =>
  text.split("\n").filter((line) => line.startsWith("event: ")).map((line) => line.slice("event: ".length))

/** A small deterministic pseudo-random generator (mulberry32). */
export const prng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}
