/**
 * The schema pieces every decoded configuration shares (limiter configurations, Redis backend options), so that
 * every bad value is reported the same way: `path.to.field: expected <what>, got <value>`.
 *
 * @internal
 */
import { Duration, Option, ParseResult, Schema } from "effect"

/**
 * A value as an issue shows it: strings quoted, other primitives as written, objects by their kind only (an
 * object can be large, and may hold secrets).
 *
 * @example
 * ```ts
 * describe("x") // "\"x\""
 * describe([1]) // "an array"
 * ```
 * @since 0.2.0
 */
export const describe = (value: unknown): string => {
  if (typeof value === "string") return JSON.stringify(value)
  if (typeof value === "number" || typeof value === "boolean" || value === null || value === undefined) return String(value)
  return Array.isArray(value) ? "an array" : typeof value
}

/**
 * The `message` annotation of a schema whose every failure reads `expected <what>, got <value>`.
 *
 * @example
 * ```ts
 * const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.positive()).annotations({ message: expected("a positive integer") })
 * ```
 * @since 0.2.0
 */
export const expected = (what: string) => (issue: ParseResult.ParseIssue) => ({
  message: `expected ${what}, got ${describe(issue.actual)}`,
  override: true
})

/**
 * A positive integer.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(PositiveInt)(0) // Either.left: "expected a positive integer, got 0"
 * ```
 * @since 0.2.0
 */
export const PositiveInt = Schema.Number.pipe(Schema.int(), Schema.positive()).annotations({
  message: expected("a positive integer")
})

/**
 * A non-negative integer.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(NonNegativeInt)(0) // Either.right(0)
 * ```
 * @since 0.2.0
 */
export const NonNegativeInt = Schema.Number.pipe(Schema.int(), Schema.nonNegative()).annotations({
  message: expected("a non-negative integer")
})

/**
 * A fraction in (0, 1].
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(Ratio)(1.5) // Either.left: "expected a number in (0, 1], got 1.5"
 * ```
 * @since 0.2.0
 */
export const Ratio = Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(1)).annotations({
  message: expected("a number in (0, 1]")
})

/**
 * A finite number, at least 1.
 *
 * @example
 * ```ts
 * Schema.decodeUnknownEither(Multiplier)(1.5) // Either.right(1.5)
 * ```
 * @since 0.2.0
 */
export const Multiplier = Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1)).annotations({
  message: expected("a finite number >= 1")
})

const durationIssue = (actual: unknown) =>
  new ParseResult.Type(
    Schema.Number.ast,
    actual,
    `expected a positive duration ("1 minute", "10 seconds") or milliseconds, got ${describe(actual)}`
  )

/**
 * The milliseconds of a positive, finite duration: anything `Duration.decodeUnknown` reads (milliseconds, an
 * Effect duration string such as `"1 minute"`, a `Duration`).
 *
 * @example
 * ```ts
 * Schema.decodeUnknownSync(Millis)("1 minute") // 60000
 * ```
 * @since 0.2.0
 */
export const Millis = Schema.transformOrFail(Schema.Unknown, Schema.Number, {
  strict: true,
  decode: (input) => {
    const ms = millisOf(input)
    return ms === undefined ? ParseResult.fail(durationIssue(input)) : ParseResult.succeed(ms)
  },
  encode: ParseResult.succeed
})

/**
 * The milliseconds of a positive, finite duration, or `undefined` if the input is not one; what `Millis` decodes.
 *
 * @example
 * ```ts
 * millisOf("10 seconds") // 10000
 * millisOf(-5) // undefined
 * ```
 * @since 0.2.0
 */
export const millisOf = (input: unknown): number | undefined => {
  // Called for every window of every bucket: no closures (`Option.match` with handlers costs ten times this).
  // A whole number of milliseconds is its own duration; a fraction goes through `Duration`, which rounds it to
  // nanoseconds.
  if (typeof input === "number" && Number.isInteger(input)) return input > 0 ? input : undefined
  const duration = Duration.decodeUnknown(input)
  if (Option.isNone(duration)) return undefined
  const ms = Duration.toMillis(duration.value)
  return ms > 0 && Number.isFinite(ms) ? ms : undefined
}

const formatPath = (path: ReadonlyArray<PropertyKey>): string =>
  path.reduce<string>(
    (out, key) => (typeof key === "number" ? `${out}[${key}]` : out === "" ? String(key) : `${out}.${String(key)}`),
    ""
  )

/**
 * Every issue of a parse error as `path: message` (`buckets.gpt-4o.quotas[1].limit: expected a positive integer,
 * got -5`), or the message alone for an issue at the root.
 *
 * @example
 * ```ts
 * Either.mapLeft(decode(input), (error) => new ConfigurationError({ issues: formatIssues(error) }))
 * ```
 * @since 0.2.0
 */
export const formatIssues = (error: ParseResult.ParseError): Array<string> =>
  ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) =>
    issue.path.length === 0 ? issue.message : `${formatPath(issue.path)}: ${issue.message}`
  )
