/**
 * The Redis backend's options, decoded with `effect/Schema` before anything connects: a misspelled policy or an
 * unreadable duration is a `ConfigurationError` listing every bad option by path, not a backend that quietly
 * runs another policy, nor a defect at the first call.
 *
 * @internal
 */
import { Either, ParseResult, Schema } from "effect"
import type { Cluster, Redis, RedisOptions } from "ioredis"
import type { UnavailablePolicy } from "../../Backend/Redis.js"
import { ConfigurationError } from "../../Errors.js"
import { describe, expected, formatIssues, Millis, Multiplier, NonNegativeInt, Ratio } from "../schema.js"

/**
 * The Redis backend's options once decoded: durations in milliseconds, defaults filled in.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { decodeOptions } from "./internal/redis/options.js"
 *
 * const settings = decodeOptions({ url: "redis://127.0.0.1:6379", commandTimeout: "1 second" })
 * Either.map(settings, (s) => s.commandTimeoutMs) // Either.right(1000)
 * ```
 * @since 0.2.0
 */
export interface Settings {
  readonly url: string | undefined
  readonly client: Redis | undefined
  readonly cluster: Cluster | undefined
  readonly connection: RedisOptions | undefined
  readonly namespace: string
  readonly reservationTtlMs: number
  readonly commandTimeoutMs: number
  readonly connectTimeoutMs: number
  readonly policy: UnavailablePolicy
  readonly localShare: number
  readonly pollMs: number
  readonly retry: {
    readonly times: number
    readonly baseMs: number
    readonly factor: number
    readonly maxDelayMs: number
  }
}

/**
 * A value kept as it is: a client or cluster you own is the caller's to get right, and `instanceof` would refuse
 * one made by another copy of ioredis.
 */
const unchecked = <A>() => Schema.declare((_: unknown): _ is A => true)

/**
 * A URL quoted back in an issue, with what comes before its last `@` (after `//`, if any) hidden: a password,
 * most likely, and one the URL could not be parsed to find.
 */
const redacted = (url: string): string => {
  const at = url.lastIndexOf("@")
  if (at < 0) return url
  const slashes = url.indexOf("//")
  const from = slashes >= 0 && slashes < at ? slashes + 2 : 0
  return `${url.slice(0, from)}***${url.slice(at)}`
}

const urlIssue = (actual: unknown) =>
  new ParseResult.Type(
    Schema.String.ast,
    actual,
    `expected a redis:// or rediss:// URL, got ${typeof actual === "string" ? describe(redacted(actual)) : describe(actual)}`
  )

/** A URL ioredis reads as a server's: `redis://` or `rediss://`, then the host (`redis:host` is a path, not a host). */
const isRedisUrl = (input: string): boolean => {
  if (!/^rediss?:\/\//i.test(input)) return false
  try {
    const { protocol } = new URL(input)
    return protocol === "redis:" || protocol === "rediss:"
  } catch {
    return false
  }
}

const RedisUrl = Schema.transformOrFail(Schema.Unknown, Schema.String, {
  strict: true,
  decode: (input) => (typeof input === "string" && isRedisUrl(input) ? ParseResult.succeed(input) : ParseResult.fail(urlIssue(input))),
  encode: ParseResult.succeed
})

const Connection = Schema.declare(
  (input: unknown): input is RedisOptions => typeof input === "object" && input !== null && !Array.isArray(input)
).annotations({ message: expected("ioredis options (an object)") })

const Namespace = Schema.String.pipe(Schema.minLength(1)).annotations({ message: expected("a non-empty string") })

const Policy = Schema.Literal("fail-closed", "fail-open", "local").annotations({
  message: expected(`"fail-closed" | "fail-open" | "local"`)
})

/**
 * An object of options, decoded by `struct` once the keys set to `undefined` are dropped: the options are typed
 * with optional properties, so `{ url: process.env.REDIS_URL }` type checks, and `undefined` has always meant
 * the default. (A struct of non-exact optional keys would take `undefined` too, but then reports every bad
 * value twice: once as not `undefined`.)
 */
const optionsObject = <Fields extends Schema.Struct.Fields>(what: string, struct: Schema.Struct<Fields>) =>
  Schema.transformOrFail(Schema.Unknown, struct, {
    strict: false,
    decode: (input, _, ast) =>
      typeof input === "object" && input !== null && !Array.isArray(input)
        ? ParseResult.succeed(Object.fromEntries(Object.entries(input).filter(([, value]) => value !== undefined)))
        : ParseResult.fail(new ParseResult.Type(ast, input, `expected ${what}, got ${describe(input)}`)),
    encode: ParseResult.succeed
  })

const defaultRetry = { times: 2, base: 20, factor: 2, maxDelay: 200 }

const RetrySchema = optionsObject(
  "an object of times, base, factor, maxDelay",
  Schema.Struct({
    times: Schema.optionalWith(NonNegativeInt, { exact: true, default: () => defaultRetry.times }),
    base: Schema.optionalWith(Millis, { exact: true, default: () => defaultRetry.base }),
    factor: Schema.optionalWith(Multiplier, { exact: true, default: () => defaultRetry.factor }),
    maxDelay: Schema.optionalWith(Millis, { exact: true, default: () => defaultRetry.maxDelay })
  })
)

const OptionsSchema = optionsObject(
  "the Redis backend's options (an object)",
  Schema.Struct({
    url: Schema.optionalWith(RedisUrl, { exact: true }),
    client: Schema.optionalWith(unchecked<Redis>(), { exact: true }),
    cluster: Schema.optionalWith(unchecked<Cluster>(), { exact: true }),
    connection: Schema.optionalWith(Connection, { exact: true }),
    namespace: Schema.optionalWith(Namespace, { exact: true, default: () => "quotaflow" }),
    reservationTtl: Schema.optionalWith(Millis, { exact: true, default: () => 600_000 }),
    onUnavailable: Schema.optionalWith(Policy, { exact: true, default: () => "fail-closed" as const }),
    localShare: Schema.optionalWith(Ratio, { exact: true, default: () => 1 }),
    retry: Schema.optionalWith(RetrySchema, { exact: true, default: () => defaultRetry }),
    commandTimeout: Schema.optionalWith(Millis, { exact: true, default: () => 500 }),
    connectTimeout: Schema.optionalWith(Millis, { exact: true, default: () => 2_000 }),
    pollInterval: Schema.optionalWith(Millis, { exact: true, default: () => 500 })
  })
)

// Excess properties are errors: a misspelled option (`onUnavailible`) would otherwise be its default, silently.
const decode = Schema.decodeUnknownEither(OptionsSchema, { errors: "all", onExcessProperty: "error" })

/**
 * Decodes the Redis backend's options, synchronously and without connecting: every bad option is an issue of
 * the `ConfigurationError`, named by its path (`localShare: expected a number in (0, 1], got 2`). `make` and
 * `layer` fail with it before they connect; code that takes options without running an effect (the Promise
 * adapter, when the limiter is created) can report them at once.
 *
 * @example
 * ```ts
 * import { decodeOptions } from "./internal/redis/options.js"
 *
 * const decoded = decodeOptions({ onUnavailable: "fail_closed" })
 * // Either.left(ConfigurationError { issues: ['onUnavailable: expected "fail-closed" | "fail-open" | "local", got "fail_closed"'] })
 * ```
 * @since 0.2.0
 */
export const decodeOptions = (options: unknown): Either.Either<Settings, ConfigurationError> =>
  Either.match(decode(options), {
    onLeft: (error) => Either.left(new ConfigurationError({ issues: formatIssues(error) })),
    onRight: (o) =>
      Either.right({
        url: o.url,
        client: o.client,
        cluster: o.cluster,
        connection: o.connection,
        namespace: o.namespace,
        // Whole milliseconds (the library keeps expiries in them), and never 0: a sub-millisecond duration is
        // still positive.
        reservationTtlMs: Math.max(1, Math.ceil(o.reservationTtl)),
        commandTimeoutMs: Math.max(1, o.commandTimeout),
        connectTimeoutMs: Math.max(1, o.connectTimeout),
        policy: o.onUnavailable,
        localShare: o.localShare,
        pollMs: Math.max(1, o.pollInterval),
        retry: { times: o.retry.times, baseMs: o.retry.base, factor: o.retry.factor, maxDelayMs: o.retry.maxDelay }
      })
  })
