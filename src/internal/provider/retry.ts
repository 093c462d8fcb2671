/**
 * What a failed response says about retrying: how long to wait (with the precedence of the official SDKs) and
 * what kind of failure it is.
 */
import type { HeadersInput, RetryAdvice, RetryKind, RetrySource } from "../../Provider.js"
import { goDurationPattern, headerReader, parseAmount, parseGoDuration, parseHttpDate } from "./headers.js"
import { at, isRecord, list, parseBody, str } from "./json.js"

/**
 * The parts of an error body that classify it.
 *
 * @example
 * const facts: ErrorFacts = { status: 429, message: "Rate limit exceeded", types: ["429"], quotaIds: [], body: {} }
 */
export interface ErrorFacts {
  readonly status: number
  /** `error.message`, `message` or the raw text of the body. */
  readonly message: string
  /** Every type-like string found: `error.type`, `error.status`, `error.code`, `error_type`, `x-amzn-ErrorType`. */
  readonly types: ReadonlyArray<string>
  /** Gemini `QuotaFailure` quota ids and metrics. */
  readonly quotaIds: ReadonlyArray<string>
  /** The parsed body. */
  readonly body: unknown
}

const firstString = (...values: ReadonlyArray<unknown>): string | undefined => {
  for (const value of values) if (typeof value === "string" && value.length > 0) return value
  return undefined
}

/**
 * The facts of a response, from its status, headers and body (parsed or text).
 *
 * @example
 * errorFacts(529, {}, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
 * // { status: 529, message: "Overloaded", types: ["overloaded_error"], quotaIds: [], body: {...} }
 */
export const errorFacts = (status: number, headers: HeadersInput, body: unknown): ErrorFacts => {
  const parsed = parseBody(body)
  // Gemini clients sometimes see the error wrapped in a list.
  const root = Array.isArray(parsed) ? parsed[0] : parsed
  const error = at(root, "error")
  const message =
    firstString(
      at(error, "message"),
      isRecord(error) ? undefined : error,
      at(root, "message"),
      at(root, "Message"),
      typeof root === "string" ? root : undefined
    ) ?? ""
  const types: Array<string> = []
  for (
    const value of [
      at(error, "type"),
      at(error, "status"),
      at(error, "code"),
      at(error, "metadata", "error_type"),
      at(error, "error_type"),
      at(root, "error_type"),
      at(root, "type") === "error" ? undefined : at(root, "type"),
      at(root, "__type"),
      headerReader(headers)("x-amzn-errortype")?.split(":")[0]
    ]
  ) {
    if (typeof value === "string" && value.length > 0) types.push(value)
    if (typeof value === "number") types.push(String(value))
  }
  const quotaIds: Array<string> = []
  for (const detail of list(at(error, "details"))) {
    for (const violation of list(at(detail, "violations"))) {
      for (const key of ["quotaId", "quotaMetric"]) {
        const id = str(at(violation, key))
        if (id !== undefined) quotaIds.push(id)
      }
    }
  }
  return { status, message, types, quotaIds, body: root }
}

const DAILY = /per[ _-]?day|\bRPD\b|\bTPD\b/i
const TOO_LARGE_TYPES = new Set(["request_too_large"])
// OpenAI's `insufficient_quota` comes as a 429 like its rate limits; Anthropic's `billing_error` as a 402.
const BILLING_TYPES = new Set(["insufficient_quota", "billing_error"])
const BILLING_MESSAGE = /credit balance is too low/i
const OVERLOADED_TYPES = new Set(["overloaded_error", "UNAVAILABLE", "ServiceUnavailableException", "ModelNotReadyException"])
const RATE_LIMIT_TYPES = new Set([
  "rate_limit_error",
  "rate_limit_exceeded",
  "tokens",
  "requests",
  "RESOURCE_EXHAUSTED",
  "ThrottlingException",
  "dynamic_request_limited",
  "dynamic_token_limited",
  "429"
])

/**
 * The generic classification:
 * - `too-large`: 413, `request_too_large`, or "Request too large" (OpenAI, Groq): no retry can succeed;
 * - `billing`: out of credit or over a spending limit: OpenAI's `insufficient_quota` (a 429), Anthropic's
 *   `billing_error` and "credit balance is too low", and any 402 (DeepSeek "Insufficient Balance", Venice
 *   "Insufficient USD or Diem balance", OpenRouter's credits) a provider's own rule does not claim first. It is
 *   told by type, never by "exceeded your current quota": Gemini words its per-minute 429s that way too;
 * - `daily`: the message or quota id says per day (`…PerDay…`, "tokens per day (TPD)", "Too many tokens per day");
 * - `overloaded`: 529, 503, `overloaded_error`, `UNAVAILABLE`, Azure's "high demand", Bedrock's
 *   `ServiceUnavailableException` / `ModelNotReadyException`;
 * - `rate-limited`: any other 429 or rate-limit error type (also mid-stream, after a 200);
 * - `other`.
 *
 * @example
 * classify(errorFacts(429, {}, { message: "Too many tokens per day, please wait before trying again." })) // "daily"
 */
export const classify = (facts: ErrorFacts): RetryKind => {
  const { message, quotaIds, status, types } = facts
  const hasType = (set: ReadonlySet<string>) => types.some((t) => set.has(t))
  if (status === 413 || hasType(TOO_LARGE_TYPES) || /request too large/i.test(message)) return "too-large"
  if (status === 402 || hasType(BILLING_TYPES) || BILLING_MESSAGE.test(message)) return "billing"
  const limited = status === 429 || hasType(RATE_LIMIT_TYPES) || /too many (?:tokens|requests)/i.test(message)
  if ((limited || status >= 500) && (DAILY.test(message) || quotaIds.some((id) => DAILY.test(id)))) return "daily"
  if (
    status === 529 || status === 503 || hasType(OVERLOADED_TYPES) || /high demand|\boverloaded\b/i.test(message)
  ) return "overloaded"
  return limited ? "rate-limited" : "other"
}

const AZURE_SECONDS = /(?:try again in|retry after|retry in)\s+(\d+(?:\.\d+)?)\s*seconds?\b/i
const GO_HINT = new RegExp(`(?:try again in|retry in|retry after|wait)\\s+(${goDurationPattern})(?![A-Za-z\u00b5\u03bc])`, "i")
const PROTO_DURATION = /^(\d+(?:\.\d+)?)s$/

/**
 * Gemini's `google.rpc.RetryInfo.retryDelay` (`"47s"`) in milliseconds.
 *
 * @example
 * retryInfoDelay({ error: { details: [{ "@type": "type.googleapis.com/google.rpc.RetryInfo", retryDelay: "47s" }] } }) // 47000
 */
export const retryInfoDelay = (body: unknown): number | undefined => {
  for (const detail of list(at(body, "error", "details"))) {
    const type = str(at(detail, "@type")) ?? ""
    const delay = str(at(detail, "retryDelay"))
    if (!type.endsWith("google.rpc.RetryInfo") || delay === undefined) continue
    const match = PROTO_DURATION.exec(delay.trim())
    if (match !== null) return Number(match[1]) * 1000
  }
  return undefined
}

/**
 * A delay stated in an error message: Azure's "Try again in 2 seconds" / "retry after 86400 seconds", then
 * Go durations as OpenAI, Groq and Gemini write them ("Please try again in 644ms", "in 1.5s", "retry in 33.9s")
 * and as Venice's block of repeated failures does ("Please wait 30s and try again").
 *
 * @example
 * messageDelay("Rate limit is exceeded. Try again in 2 seconds.") // 2000
 * messageDelay("Please try again in 644ms. Visit …") // 644
 */
export const messageDelay = (message: string): number | undefined => {
  const seconds = AZURE_SECONDS.exec(message)
  if (seconds !== null) return Number(seconds[1]) * 1000
  const go = GO_HINT.exec(message)
  return go === null ? undefined : parseGoDuration(go[1])
}

/**
 * Options of `retryAdvice` for one provider.
 *
 * @example
 * const rules: RetryRules = { classify: (facts) => (facts.status === 402 ? "rate-limited" : undefined) }
 */
export interface RetryRules {
  /** Runs before the generic classification; `undefined` falls through to it. */
  readonly classify?: (facts: ErrorFacts) => RetryKind | undefined
  /** A provider-specific delay header read after `retry-after` (Together's `x-ratelimit-reset`). */
  readonly delayHeader?: (read: (name: string) => string | undefined, now: number) => number | undefined
}

const RETRYABLE_STATUS = (status: number) => status === 408 || status === 409 || status === 429 || status >= 500

/**
 * The retry advice for a response, following openai-node 7.5 and anthropic-sdk-typescript 0.120:
 * 1. `x-should-retry: true | false` decides whether to retry; without it, `too-large`, `billing` and `daily`
 *    are not retried (no retry soon can succeed), `other` only on 408, 409, 429 and 5xx;
 * 2. `retry-after-ms` (a float of milliseconds, `0` included);
 * 3. `retry-after` as seconds (a float) or an HTTP date (minus `now`);
 * 4. then hints in the body: Gemini `RetryInfo.retryDelay`, then the message.
 * Negative, non-finite or malformed values are skipped. Unlike the SDKs, delays above 60 s are kept: a long
 * delay (Azure's "retry after 86400 seconds") is information a limiter needs.
 *
 * @example
 * retryAdvice(429, { "retry-after-ms": "644", "retry-after": "1" }, "", 0)
 * // { kind: "rate-limited", retry: true, delayMs: 644, source: "retry-after-ms" }
 */
export const retryAdvice = (
  status: number,
  headers: HeadersInput,
  body: unknown,
  now: number,
  rules: RetryRules = {}
): RetryAdvice => {
  const read = headerReader(headers)
  const facts = errorFacts(status, headers, body)
  const kind = rules.classify?.(facts) ?? classify(facts)
  const should = read("x-should-retry")?.toLowerCase()
  const retry = should === "true"
    ? true
    : should === "false"
    ? false
    : kind === "other"
    ? RETRYABLE_STATUS(status)
    : kind === "rate-limited" || kind === "overloaded"
  const base = { kind, retry, ...(facts.message === "" ? {} : { message: facts.message }) }
  // A daily quota's delay is kept although it is not retried: it says when the quota may be back.
  if (!retry && kind !== "daily") return base
  const found = (delayMs: number | undefined, source: RetrySource): RetryAdvice | undefined =>
    delayMs !== undefined && Number.isFinite(delayMs) && delayMs >= 0
      ? { ...base, delayMs: Math.ceil(delayMs), source }
      : undefined
  const retryAfter = read("retry-after")
  const httpDate = parseHttpDate(retryAfter)
  return (
    found(parseAmount(read("retry-after-ms")), "retry-after-ms") ??
      found(mapDefined(parseAmount(retryAfter), (s) => s * 1000), "retry-after") ??
      found(mapDefined(httpDate, (at) => at - now), "retry-after") ??
      found(rules.delayHeader?.(read, now), "header") ??
      found(retryInfoDelay(facts.body), "retry-info") ??
      found(messageDelay(facts.message), "message") ??
      base
  )
}

const mapDefined = <A, B>(value: A | undefined, f: (a: A) => B): B | undefined => (value === undefined ? undefined : f(value))
