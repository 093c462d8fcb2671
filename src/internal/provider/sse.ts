/**
 * The usage a server-sent-events body reports, read as its text arrives: every `data:` line that is JSON goes
 * to a provider's stream reader, and the last usage it returned wins. Both HTTP adapters follow a streamed body
 * with it: `limiter.fetch` (`promise/answer.ts`) and the HttpClient middleware.
 *
 * @internal
 */
import type { Usage } from "../../Quota.js"

/** A reader fed the body's text in pieces of any size. */
export interface SseUsageReader {
  /** Reads the complete lines of `text` (with what was left of the previous piece). */
  readonly push: (text: string) => void
  /** Reads the last line, if it had no newline, and gives the last usage seen (`undefined`: none). */
  readonly end: () => Usage | undefined
}

/**
 * A reader over `usageOf`, which sees each parsed `data:` payload in order (a `Provider.streamUsageOf`
 * accumulator, say).
 *
 * @example
 * const reader = sseUsageReader(Provider.streamUsageOf(Provider.providers.openai))
 * reader.push('data: {"usage":{"total_tokens":12}}\n\ndata: [DONE]\n')
 * reader.end() // { tokens: 12 }
 */
export const sseUsageReader = (usageOf: (chunk: unknown) => Usage | undefined): SseUsageReader => {
  let partial = ""
  let usage: Usage | undefined
  const line = (text: string) => {
    if (!text.startsWith("data:")) return
    const payload = text.slice(5).trim()
    if (!payload.startsWith("{")) return
    let chunk: unknown
    try {
      chunk = JSON.parse(payload)
    } catch {
      return
    }
    usage = usageOf(chunk) ?? usage
  }
  return {
    push: (text) => {
      const lines = (partial + text).split("\n")
      partial = lines.pop() ?? ""
      for (const text of lines) line(text.endsWith("\r") ? text.slice(0, -1) : text)
    },
    end: () => {
      line(partial)
      partial = ""
      return usage
    }
  }
}
