/**
 * Defensive readers for parsed JSON bodies: every reader returns `undefined` for a value of the wrong shape and
 * never throws.
 */

/**
 * A plain object (not an array, not null).
 *
 * @example
 * isRecord({ a: 1 }) // true
 * isRecord([1]) // false
 */
export const isRecord = (value: unknown): value is Readonly<Record<string, unknown>> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * The value at `path` inside `value`, or `undefined` where a step is missing.
 *
 * @example
 * at({ error: { message: "x" } }, "error", "message") // "x"
 */
export const at = (value: unknown, ...path: ReadonlyArray<string>): unknown => {
  let current = value
  for (const key of path) {
    if (!isRecord(current)) return undefined
    current = current[key]
  }
  return current
}

/**
 * A finite, non-negative number (a token count), or `undefined`.
 *
 * @example
 * count(12) // 12
 * count(-1) // undefined
 */
export const count = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : undefined

/**
 * A string, or `undefined`.
 *
 * @example
 * str(1) // undefined
 */
export const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)

/**
 * An array, or an empty array.
 *
 * @example
 * list(undefined) // []
 */
export const list = (value: unknown): ReadonlyArray<unknown> => (Array.isArray(value) ? value : [])

/**
 * A body as given: a string is parsed as JSON when it is JSON, and kept as text otherwise.
 *
 * @example
 * parseBody('{"message":"Overloaded"}') // { message: "Overloaded" }
 * parseBody("Bad Gateway") // "Bad Gateway"
 */
export const parseBody = (body: unknown): unknown => {
  if (typeof body !== "string") return body
  const trimmed = body.trim()
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      return JSON.parse(trimmed) as unknown
    } catch {
      return body
    }
  }
  return body
}

/**
 * `JSON.stringify` that never throws (cycles and BigInts give an empty string).
 *
 * @example
 * stringify({ a: 1 }) // '{"a":1}'
 */
export const stringify = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? ""
  } catch {
    return ""
  }
}

/**
 * Drops metrics whose amount is undefined and rounds the rest up to integers; `undefined` when nothing is left.
 *
 * @example
 * usageFrom({ tokens: 10.2, input_tokens: undefined }) // { tokens: 11 }
 */
export const usageFrom = (entries: Readonly<Record<string, number | undefined>>): Record<string, number> | undefined => {
  const out: Record<string, number> = {}
  let any = false
  for (const [metric, amount] of Object.entries(entries)) {
    if (amount === undefined || !Number.isFinite(amount) || amount < 0) continue
    out[metric] = Math.ceil(amount)
    any = true
  }
  return any ? out : undefined
}
