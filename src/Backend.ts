/**
 * Where quota state lives. Every operation on a bucket is one atomic step: the memory backend runs it in this
 * process, the Redis backend as one call of a Lua function library on the server's clock.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { CircuitBreakerService } from "./CircuitBreaker.js"
import type { BackendUnavailable, CapacityExceeded, ReservationNotFound } from "./Errors.js"
import type { Bucket } from "./Quota.js"

/**
 * A booking of a charge: it may start at `at` (epoch milliseconds on the backend's clock).
 *
 * @since 0.1.0
 */
export interface Reservation {
  readonly id: string
  readonly bucket: string
  readonly at: number
}

/**
 * The answer to a reserve: booked, or the time until the charge would fit when that is beyond `maxWaitMs`
 * (`Infinity` when only a release of a concurrency slot can make room). Nothing is booked in the second case.
 *
 * @since 0.1.0
 */
export type ReserveResult =
  | { readonly _tag: "Reserved"; readonly reservation: Reservation }
  | { readonly _tag: "Wait"; readonly retryAfterMs: number }

/**
 * A booking's outcome in a bucket whose state is in this process: booked under `id`, the time until the charge
 * would fit (beyond `maxWaitMs`), or a charge larger than a quota's capacity.
 *
 * @since 0.2.0
 */
export type LocalOutcome =
  | { readonly _tag: "Reserved"; readonly id: string; readonly at: number }
  | { readonly _tag: "Wait"; readonly retryAfterMs: number }
  | { readonly _tag: "TooLarge"; readonly metric: string }

/**
 * One bucket of a backend whose state lives in this process, operated on synchronously: the same steps as the
 * backend's effects, at the time `now` (see `LocalBackend.now`).
 *
 * @since 0.2.0
 */
export interface LocalBucket {
  readonly reserve: (charge: ReadonlyArray<number>, now: number, maxWaitMs: number) => LocalOutcome
  /** false when `id` is not open. */
  readonly settle: (id: string, actual: ReadonlyArray<number | undefined>, now: number) => boolean
  /** false when `id` is not open. */
  readonly release: (id: string, now: number) => boolean
  /** The same quotas at other limits (a provider reported them): what is booked stays booked. */
  readonly retune: (bucket: Bucket) => void
}

/**
 * The synchronous face of a backend whose state lives in this process (the memory backend): a call that fits at
 * once is booked and settled without a fiber hop or a promise of its own.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend, MemoryBackend, Quota } from "quotaflow"
 *
 * const program = Effect.gen(function*() {
 *   const backend = yield* MemoryBackend.make
 *   const [chat] = (yield* Quota.decodeConfig({ buckets: { chat: { quotas: [{ metric: "requests", limit: 2, window: "1 second" }] } } })).values()
 *   const local = backend.local!
 *   return local.bucket(chat).reserve([1], local.now(), 0) // { _tag: "Reserved", id: "1", at: ... }
 * })
 * ```
 * @since 0.2.0
 */
export interface LocalBackend {
  /** The time the backend books at, in epoch milliseconds (fractional). */
  readonly now: () => number
  /** The state of a bucket, made on first use; handed a lowered bucket of the same name, it retunes. */
  readonly bucket: (bucket: Bucket) => LocalBucket
}

/**
 * One quota's state at a moment.
 *
 * @since 0.1.0
 */
export interface QuotaStatus {
  readonly metric: string
  readonly algorithm: string
  readonly windowMs: number
  /** The limit it runs at, after the safety ratio. */
  readonly limit: number
  /** The largest single charge that can ever fit. */
  readonly capacity: number
  readonly used: number
  readonly remaining: number
}

/**
 * A bucket's state at a moment, as the backend sees it.
 *
 * @since 0.1.0
 */
export interface BackendStatus {
  readonly quotas: ReadonlyArray<QuotaStatus>
  /** Reservations not yet settled or released. */
  readonly open: number
  /** Reservations booked for a time still in the future. */
  readonly booked: number
  /** Time until a charge of the asked demand would fit, behind every booking. */
  readonly waitMs: number
}

/**
 * A waiting line shared by every process on a backend, one per bucket: a caller that `reserve` cannot admit
 * yet keeps a place in it (by its `waiter`), and the oldest place is admitted first, whichever process it is
 * in; a later caller goes ahead only where it cannot delay the places before it. Each process presents only
 * the first of its waiting callers of a bucket, so that big calls are not starved by small ones elsewhere.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend, Quota } from "quotaflow"
 *
 * const program = Effect.gen(function*() {
 *   const [chat] = (yield* Quota.decodeConfig({ buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }] } } })).values()
 *   const backend = yield* Backend.Backend
 *   const stop = backend.line?.watch(chat, () => console.log("room may have come for a waiter of chat"))
 *   stop?.()
 * })
 * ```
 * @since 0.2.0
 */
export interface SharedLine {
  /** How often a waiting caller asks again when no wake-up came: a safety net behind `watch`. */
  readonly pollMs: number
  /** Calls `wake` whenever room may have come for the bucket's line; returns the function that stops it. */
  readonly watch: (bucket: Bucket, wake: () => void) => () => void
  /** The waiter gave up (it was cancelled, its deadline passed, its limiter closed): its place goes. */
  readonly leave: (bucket: Bucket, waiter: object) => Effect.Effect<void>
}

/**
 * The store of quota state. Charges are arrays aligned with `bucket.quotas` (see `Quota.chargeOf`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend, MemoryBackendLive, Quota } from "quotaflow"
 *
 * const program = Effect.gen(function*() {
 *   const buckets = yield* Quota.decodeConfig({ buckets: { chat: { quotas: [{ metric: "requests", limit: 2, window: "1 second" }] } } })
 *   const backend = yield* Backend.Backend
 *   return yield* backend.reserve(buckets.get("chat")!, [1], 0)
 * }).pipe(Effect.provide(MemoryBackendLive))
 * ```
 * @since 0.1.0
 */
export interface BackendService {
  /**
   * For a backend shared with other processes: the waiting line it keeps across them. Absent for a backend only
   * this process uses, whose line is the limiter's own queue.
   */
  readonly line?: SharedLine
  /**
   * Books `charge` at the earliest time it fits, or answers how long that is when it is beyond `maxWaitMs`.
   * `waiter`, the same object for every attempt of one waiting caller, keeps that caller's place in a shared
   * line (see `SharedLine`); a backend without one ignores it.
   */
  readonly reserve: (
    bucket: Bucket,
    charge: ReadonlyArray<number>,
    maxWaitMs: number,
    waiter?: object
  ) => Effect.Effect<ReserveResult, CapacityExceeded | BackendUnavailable>
  /** Settles with the actual usage per quota (`undefined` keeps the charge): refunds or charges the difference. */
  readonly settle: (
    bucket: Bucket,
    id: string,
    actual: ReadonlyArray<number | undefined>
  ) => Effect.Effect<void, ReservationNotFound | BackendUnavailable>
  /** Takes back a reservation whose call never ran: its capacity returns exactly. */
  readonly release: (bucket: Bucket, id: string) => Effect.Effect<void, ReservationNotFound | BackendUnavailable>
  /**
   * Learns from the provider: raises each quota's usage to what it reports as used (`undefined`: nothing
   * reported), and blocks every admission for `blockForMs` (a 429's retry hint; 0 for none), on the backend's
   * own clock so that every process sharing the backend waits alike.
   */
  readonly observe: (
    bucket: Bucket,
    used: ReadonlyArray<number | undefined>,
    blockForMs: number
  ) => Effect.Effect<void, BackendUnavailable>
  /**
   * For a backend shared with other processes: a circuit breaker whose circuits they all share, so that the
   * failures one process sees open the circuit for every one. Absent: each process breaks on its own.
   */
  readonly breaker?: (options: {
    readonly failureThreshold: number
    readonly failureWindow: number
    readonly openFor: number
  }) => CircuitBreakerService
  /** Drops a bucket's state (a model no longer tracked); a backend whose state expires on its own may omit it. */
  readonly forget?: (bucket: Bucket) => Effect.Effect<void>
  /** The bucket's state, and how long a charge of `demand` would wait. */
  readonly status: (bucket: Bucket, demand: ReadonlyArray<number>) => Effect.Effect<BackendStatus, BackendUnavailable>
  /**
   * Present when the state lives in this process: the same operations, synchronously. The limiter uses it for
   * callers that fit at once; a backend that wraps another one leaves it out unless it wraps it too.
   */
  readonly local?: LocalBackend
}

/**
 * The backend service tag.
 *
 * @since 0.1.0
 */
export class Backend extends Context.Tag("quotaflow/Backend")<Backend, BackendService>() {}
