/**
 * The typed errors of quotaflow. Each is an `Error` subclass whose `name` is its tag, so Promise users can
 * test `error.name === "CapacityExceeded"` or `instanceof CapacityExceeded` and read the same fields.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A charge that can never fit a quota (larger than its capacity), or a call that would wait past its `maxWait`.
 * `retryAfterMs` says when the charge would fit; it is absent when it never will.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CapacityExceeded } from "quotaflow"
 *
 * const fallback = Effect.catchTag("CapacityExceeded", (e: CapacityExceeded) =>
 *   Effect.succeed(`try again in ${e.retryAfterMs ?? "never"} ms`))
 * ```
 * @since 0.1.0
 */
export class CapacityExceeded extends Schema.TaggedError<CapacityExceeded>()("CapacityExceeded", {
  bucket: Schema.String,
  reason: Schema.Literal("too-large", "max-wait"),
  metric: Schema.optional(Schema.String),
  retryAfterMs: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    return this.reason === "too-large"
      ? `bucket "${this.bucket}": the charge on "${this.metric}" is larger than the quota's capacity and can never fit`
      : `bucket "${this.bucket}": the call would wait ${Math.ceil(this.retryAfterMs ?? 0)} ms, past its maxWait`
  }
}

/**
 * The bucket's queue already holds `maxQueue` waiting calls.
 *
 * @example
 * ```ts
 * import { QueueOverflow } from "quotaflow"
 * const isOverflow = (e: unknown) => e instanceof QueueOverflow
 * ```
 * @since 0.1.0
 */
export class QueueOverflow extends Schema.TaggedError<QueueOverflow>()("QueueOverflow", {
  bucket: Schema.String,
  maxQueue: Schema.Number
}) {
  override get message(): string {
    return `bucket "${this.bucket}": ${this.maxQueue} calls are already waiting (maxQueue)`
  }
}

/**
 * A configuration that does not decode. `issues` lists every problem with the path of the field.
 *
 * @example
 * ```ts
 * import { ConfigurationError } from "quotaflow"
 * const describe = (e: ConfigurationError) => e.issues.join("\n")
 * ```
 * @since 0.1.0
 */
export class ConfigurationError extends Schema.TaggedError<ConfigurationError>()("ConfigurationError", {
  issues: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `invalid configuration: ${this.issues.join("; ")}`
  }
}

/**
 * A usage (charge or actual usage) that does not decode: a negative, fractional or non-finite amount, or a
 * metric the bucket does not limit.
 *
 * @example
 * ```ts
 * import { InvalidUsage } from "quotaflow"
 * const describe = (e: InvalidUsage) => `${e.bucket}: ${e.issues.join(", ")}`
 * ```
 * @since 0.1.0
 */
export class InvalidUsage extends Schema.TaggedError<InvalidUsage>()("InvalidUsage", {
  bucket: Schema.String,
  issues: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `bucket "${this.bucket}": invalid usage: ${this.issues.join("; ")}`
  }
}

/**
 * A bucket name that the limiter was not configured with (in intelligent mode without a provider to learn its
 * limits from).
 *
 * @example
 * ```ts
 * import { UnknownBucket } from "quotaflow"
 * const known = (e: UnknownBucket) => e.known
 * ```
 * @since 0.1.0
 */
export class UnknownBucket extends Schema.TaggedError<UnknownBucket>()("UnknownBucket", {
  bucket: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `unknown bucket "${this.bucket}" (known: ${this.known.join(", ") || "none"})`
  }
}

/**
 * A reservation id that is not open: already settled or released, or never made.
 *
 * @example
 * ```ts
 * import { ReservationNotFound } from "quotaflow"
 * const id = (e: ReservationNotFound) => e.id
 * ```
 * @since 0.1.0
 */
export class ReservationNotFound extends Schema.TaggedError<ReservationNotFound>()("ReservationNotFound", {
  bucket: Schema.String,
  id: Schema.String
}) {
  override get message(): string {
    return `bucket "${this.bucket}": reservation ${this.id} is not open (already settled or released)`
  }
}

/**
 * The shared backend (Redis) cannot be reached and the failure policy is `fail-closed`.
 *
 * @example
 * ```ts
 * import { BackendUnavailable } from "quotaflow"
 * const why = (e: BackendUnavailable) => e.cause
 * ```
 * @since 0.1.0
 */
export class BackendUnavailable extends Schema.TaggedError<BackendUnavailable>()("BackendUnavailable", {
  cause: Schema.String
}) {
  override get message(): string {
    return `backend unavailable: ${this.cause}`
  }
}

/**
 * The circuit for `key` is open after repeated failures: calls fail fast until `retryAfterMs` has passed, then
 * one probe call is let through.
 *
 * @example
 * ```ts
 * import { CircuitOpen } from "quotaflow"
 * const wait = (e: CircuitOpen) => e.retryAfterMs
 * ```
 * @since 0.1.0
 */
export class CircuitOpen extends Schema.TaggedError<CircuitOpen>()("CircuitOpen", {
  key: Schema.String,
  retryAfterMs: Schema.Number
}) {
  override get message(): string {
    return `circuit "${this.key}" is open after repeated failures; retry in ${Math.ceil(this.retryAfterMs)} ms`
  }
}

/**
 * The provider kept refusing the call (429, 529, 503) after every retry. `headers` are the last response's.
 *
 * @example
 * ```ts
 * import { RateLimitedByProvider } from "quotaflow"
 * const hint = (e: RateLimitedByProvider) => e.retryAfterMs ?? e.headers["retry-after"]
 * ```
 * @since 0.1.0
 */
export class RateLimitedByProvider extends Schema.TaggedError<RateLimitedByProvider>()("RateLimitedByProvider", {
  bucket: Schema.String,
  status: Schema.Number,
  attempts: Schema.Number,
  retryAfterMs: Schema.optional(Schema.Number),
  headers: Schema.Record({ key: Schema.String, value: Schema.String })
}) {
  override get message(): string {
    return `bucket "${this.bucket}": the provider answered ${this.status} to all ${this.attempts} attempts`
  }
}

/**
 * The limiter was closed (its layer's scope closed, or `limiter.close()`): it admits nothing more, callers still
 * waiting are told so, and every method called afterwards fails with this.
 *
 * @example
 * ```ts
 * import { LimiterClosed } from "quotaflow"
 * const closedAlready = (e: unknown) => e instanceof LimiterClosed
 * ```
 * @since 0.2.0
 */
export class LimiterClosed extends Schema.TaggedError<LimiterClosed>()("LimiterClosed", {}) {
  override get message(): string {
    return "the limiter is closed"
  }
}

/**
 * A call's description or options that do not decode: a bucket name that is not a string, a `maxWait` that is
 * not a duration. `issues` names each field that was wrong.
 *
 * @example
 * ```ts
 * import { InvalidCall } from "quotaflow"
 * const describe = (e: InvalidCall) => e.issues.join("; ") // "options.maxWait: expected a duration ..., got \"abc\""
 * ```
 * @since 0.2.0
 */
export class InvalidCall extends Schema.TaggedError<InvalidCall>()("InvalidCall", {
  issues: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `invalid call: ${this.issues.join("; ")}`
  }
}

/**
 * This process already holds `maxOpen` reservations that are neither settled nor released: a bound on the
 * memory the limiter keeps for calls in flight, so that a leak in the caller's code shows instead of growing.
 *
 * @example
 * ```ts
 * import { ReservationCapacity } from "quotaflow"
 * const limit = (e: ReservationCapacity) => e.maxOpen
 * ```
 * @since 0.2.0
 */
export class ReservationCapacity extends Schema.TaggedError<ReservationCapacity>()("ReservationCapacity", {
  maxOpen: Schema.Number
}) {
  override get message(): string {
    return `${this.maxOpen} reservations are open in this process (maxOpen): settle or release some first`
  }
}

/**
 * Every error a rate-limited call can fail with, besides the call's own.
 *
 * @since 0.1.0
 */
export type RateLimitError =
  | CapacityExceeded
  | InvalidCall
  | LimiterClosed
  | ReservationCapacity
  | QueueOverflow
  | InvalidUsage
  | UnknownBucket
  | BackendUnavailable
  | CircuitOpen
  | RateLimitedByProvider
