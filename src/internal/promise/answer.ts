/**
 * What the Promise adapter reads off the values plain async code deals in: a fetch `Response` or an SDK error
 * carrying a provider's answer, and a server-sent-events body followed for the usage its events report.
 *
 * @internal
 */
import type * as Quota from "../../Quota.js"
import type { ProviderResponse } from "../learning.js"
import { sseUsageReader } from "../provider/sse.js"

export const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** A provider's answer on a fetch `Response`: its status and headers, and its body when it is a refusal. */
export const answerOfResponse = async (response: Response): Promise<ProviderResponse> => {
  const body = response.ok ? undefined : await response.clone().text().then(parseJson, () => undefined)
  return { status: response.status, headers: response.headers, body }
}

/** A provider's answer on an SDK error (`status`, `headers`, `error`), or `undefined` for any other failure. */
export const answerOfError = (error: unknown): ProviderResponse | undefined => {
  if (typeof error !== "object" || error === null || !("status" in error) || typeof error.status !== "number") return undefined
  const headers = "headers" in error && (error.headers instanceof Headers || (typeof error.headers === "object" && error.headers !== null))
    ? error.headers as Headers | Record<string, string>
    : {}
  const body = "error" in error ? { error: error.error } : undefined
  return { status: error.status, headers, body }
}

/** The JSON body of a successful response, or `undefined` when it has none. */
export const jsonBodyOf = async (response: Response): Promise<unknown> => {
  if (!response.ok || !(response.headers.get("content-type") ?? "").includes("application/json")) return undefined
  return response.clone().json().catch(() => undefined)
}

/**
 * A server-sent-events response, passed through byte for byte while its `data:` lines are read for usage:
 * `finish` gets the usage they reported once the body ends, fails or is cancelled. Anything else: `undefined`.
 */
export const followStream = (
  response: Response,
  usageOf: (chunk: unknown) => Quota.Usage | undefined,
  finish: (usage: Quota.Usage | undefined) => void
): Response | undefined => {
  const streamed = (response.headers.get("content-type") ?? "").includes("text/event-stream")
  if (!response.ok || !streamed || response.body === null) return undefined
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  const usage = sseUsageReader(usageOf)
  let ended = false
  const end = () => {
    if (ended) return
    ended = true
    usage.push(decoder.decode())
    finish(usage.end())
  }
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read()
        if (done) {
          end()
          return controller.close()
        }
        usage.push(decoder.decode(value, { stream: true }))
        controller.enqueue(value)
      } catch (error) {
        end()
        controller.error(error)
      }
    },
    cancel(reason) {
      end()
      return reader.cancel(reason)
    }
  })
  const followed = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  // SDKs read the URL a response came from.
  Object.defineProperty(followed, "url", { value: response.url })
  return followed
}
