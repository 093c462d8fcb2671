/**
 * Header access and the value formats providers use in rate-limit headers: Go durations, RFC 3339 timestamps,
 * HTTP dates and plain numbers. Every parser returns `undefined` for a malformed value.
 */
import type { HeadersInput, LimitWindow, ReportedLimit } from "../../Provider.js"

/**
 * The headers as lower-case name/value pairs (a repeated header keeps its first value).
 *
 * @example
 * headerEntries({ "Retry-After": "2" }) // [["retry-after", "2"]]
 */
export const headerEntries = (headers: HeadersInput): ReadonlyArray<readonly [string, string]> => {
  const out: Array<readonly [string, string]> = []
  const seen = new Set<string>()
  const push = (name: string, value: string) => {
    const key = name.toLowerCase()
    if (seen.has(key)) return
    seen.add(key)
    out.push([key, value])
  }
  if (typeof Headers !== "undefined" && headers instanceof Headers) {
    headers.forEach((value, name) => push(name, value))
    return out
  }
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === "string") push(name, value)
    else if (Array.isArray(value) && typeof value[0] === "string") push(name, value[0])
  }
  return out
}

/**
 * A case-insensitive reader of one header.
 *
 * @example
 * headerReader(new Headers({ "Retry-After": "2" }))("retry-after") // "2"
 */
export const headerReader = (headers: HeadersInput): ((name: string) => string | undefined) => {
  const map = new Map(headerEntries(headers))
  return (name) => {
    const value = map.get(name.toLowerCase())
    return value === undefined ? undefined : value.trim()
  }
}

const NUMBER = /^\d+(?:\.\d+)?$/

/**
 * A non-negative decimal number (`"8000"`, `"1.5"`); negatives such as Azure's `-1` and garbage give `undefined`.
 *
 * @example
 * parseAmount("8000") // 8000
 * parseAmount("-1") // undefined
 */
export const parseAmount = (value: string | undefined): number | undefined =>
  value !== undefined && NUMBER.test(value.trim()) ? Number(value.trim()) : undefined

const GO_UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  "\u00b5s": 1e-3, // MICRO SIGN
  "\u03bcs": 1e-3, // GREEK SMALL LETTER MU
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000
}
const GO_PART = "(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h)"
const GO_DURATION = new RegExp(`^(?:${GO_PART})+$`)
const GO_PARTS = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)/g

/**
 * The source of a Go duration, for finding one inside a message.
 *
 * @example
 * new RegExp(`in (${goDurationPattern})`).exec("try again in 644ms.")?.[1] // "644ms"
 */
export const goDurationPattern = `(?:${GO_PART})+`

/**
 * A Go `time.Duration` string in milliseconds: `"1s"` 1000, `"6m0s"` 360000, `"12ms"` 12, `"2m59.56s"` 179560,
 * `"1h2m3.5s"` 3723500, `"20us"` 0.02; `"0"` is 0. Signs are rejected (a reset is never negative).
 *
 * @example
 * parseGoDuration("2m59.56s") // 179560
 * parseGoDuration("-1s") // undefined
 */
export const parseGoDuration = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined
  const text = value.trim()
  if (text === "0") return 0
  if (!GO_DURATION.test(text)) return undefined
  let total = 0
  for (const match of text.matchAll(GO_PARTS)) {
    total += Number(match[1]) * (GO_UNIT_MS[match[2]!] ?? Number.NaN)
  }
  return Number.isFinite(total) ? total : undefined
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/

/**
 * An RFC 3339 timestamp (`2025-11-08T12:00:30Z`) in epoch milliseconds.
 *
 * @example
 * parseRfc3339("1970-01-01T00:00:01.5Z") // 1500
 */
export const parseRfc3339 = (value: string | undefined): number | undefined => {
  if (value === undefined || !RFC3339.test(value.trim())) return undefined
  const ms = Date.parse(value.trim())
  return Number.isFinite(ms) ? ms : undefined
}

// IMF-fixdate (`Wed, 21 Oct 2015 07:28:00 GMT`), RFC 850 (`Wednesday, 21-Oct-15 07:28:00 GMT`) and asctime.
const HTTP_DATE =
  /^(?:[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT|[A-Za-z]+, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT|[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})$/

/**
 * An HTTP date in epoch milliseconds.
 *
 * @example
 * parseHttpDate("Thu, 01 Jan 1970 00:00:02 GMT") // 2000
 */
export const parseHttpDate = (value: string | undefined): number | undefined => {
  if (value === undefined || !HTTP_DATE.test(value.trim())) return undefined
  const text = value.trim()
  const ms = Date.parse(/GMT$/.test(text) ? text : `${text} GMT`)
  return Number.isFinite(ms) ? ms : undefined
}

/**
 * A reset whose format is not documented (Together, OpenRouter): a Go duration or a number of seconds from now,
 * an epoch timestamp in seconds (>= 1e9) or milliseconds (>= 1e12), an RFC 3339 timestamp or an HTTP date.
 *
 * @example
 * parseLooseReset("2", 1000) // 3000
 * parseLooseReset("1762603260", 0) // 1762603260000
 */
export const parseLooseReset = (value: string | undefined, now: number): number | undefined => {
  if (value === undefined) return undefined
  const amount = parseAmount(value)
  if (amount !== undefined) {
    if (amount >= 1e12) return Math.ceil(amount)
    if (amount >= 1e9) return Math.ceil(amount * 1000)
    return Math.ceil(now + amount * 1000)
  }
  const duration = parseGoDuration(value)
  if (duration !== undefined) return Math.ceil(now + duration)
  return parseRfc3339(value) ?? parseHttpDate(value)
}

/**
 * A reported limit with its undefined fields left out, or `undefined` when nothing valid was reported.
 *
 * @example
 * reported("requests", "1 minute", { limit: 60, remaining: undefined }) // { metric: "requests", window: "1 minute", limit: 60 }
 */
export const reported = (
  metric: string,
  window: LimitWindow | undefined,
  fields: {
    readonly limit?: number | undefined
    readonly remaining?: number | undefined
    readonly resetAt?: number | undefined
    readonly resetPrecision?: number | undefined
    readonly precision?: number | undefined
    readonly cost?: number | undefined
  }
): ReportedLimit | undefined => {
  if (fields.limit === undefined && fields.remaining === undefined && fields.resetAt === undefined && fields.cost === undefined) {
    return undefined
  }
  return {
    metric,
    ...(window === undefined ? {} : { window }),
    ...(fields.limit === undefined ? {} : { limit: fields.limit }),
    ...(fields.remaining === undefined ? {} : { remaining: fields.remaining }),
    ...(fields.resetAt === undefined ? {} : { resetAt: fields.resetAt }),
    ...(fields.resetAt === undefined || fields.resetPrecision === undefined ? {} : { resetPrecision: fields.resetPrecision }),
    ...(fields.precision === undefined || fields.remaining === undefined ? {} : { precision: fields.precision }),
    ...(fields.cost === undefined ? {} : { cost: fields.cost })
  }
}

const goReset = (value: string | undefined, now: number): number | undefined => {
  const reset = parseGoDuration(value)
  return reset === undefined ? undefined : Math.ceil(now + reset)
}

/**
 * The `x-ratelimit-{limit,remaining,reset}-<metric>` family (OpenAI, Azure OpenAI, Groq), resets as Go
 * durations from `now` unless `resetAt` reads them otherwise (Venice sends epoch seconds and seconds from
 * now). Metric names are lower-cased (`requests`, `tokens`, `images`, `tokens_usage_based`).
 *
 * @example
 * parseOpenAIStyle({ "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s" }, 0, () => "1 minute")
 * // [{ metric: "requests", window: "1 minute", remaining: 59, resetAt: 1000 }]
 */
export const parseOpenAIStyle = (
  headers: HeadersInput,
  now: number,
  windowOf: (metric: string) => LimitWindow | undefined,
  resetAt: (value: string | undefined, now: number) => number | undefined = goReset
): Array<ReportedLimit> => {
  const groups = new Map<string, { limit?: string; remaining?: string; reset?: string }>()
  for (const [name, value] of headerEntries(headers)) {
    const match = /^x-ratelimit-(limit|remaining|reset)-([a-z0-9_-]+)$/.exec(name)
    if (match === null) continue
    const group = groups.get(match[2]!) ?? {}
    group[match[1] as "limit" | "remaining" | "reset"] = value.trim()
    groups.set(match[2]!, group)
  }
  const out: Array<ReportedLimit> = []
  for (const [metric, group] of groups) {
    const entry = reported(metric, windowOf(metric), {
      limit: parseAmount(group.limit),
      remaining: parseAmount(group.remaining),
      resetAt: resetAt(group.reset, now)
    })
    if (entry !== undefined) out.push(entry)
  }
  return out
}
