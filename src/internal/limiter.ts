/**
 * The limiter's state: the configured buckets (and the ones basic or learning mode makes on first use), each
 * with its scheduler, the reservation tracker, and the checks every call passes before it queues: what it
 * is, what it costs, how long it may wait. Lookups and charges are synchronous, so that a caller that fits at
 * once needs no fiber.
 *
 * @internal
 */
import { Duration, Effect, Either, FiberMap, Option } from "effect"
import { Backend, type BackendService, type BackendStatus } from "../Backend.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import { type BackendUnavailable, CapacityExceeded, InvalidCall, type InvalidUsage, LimiterClosed, UnknownBucket } from "../Errors.js"
import * as Provider from "../Provider.js"
import * as Quota from "../Quota.js"
import { learningSkew, UNREPORTED } from "./learning.js"
import { capacityOf } from "./meters.js"
import * as Tracker from "./reservationTracker.js"
import { Scheduler } from "./scheduler.js"

export interface Entry {
  /** Lowered when the provider reports lower limits than configured (see `learning.ts`). */
  bucket: Quota.Bucket
  readonly scheduler: Scheduler
  capacities: ReadonlyArray<number>
  /** Made on first use in basic mode, and dropped again when idle or least recently used. */
  readonly dynamic: boolean
  /** Used since the idle sweeper last looked. */
  used: boolean
  /** The skew the bucket was configured with, and the one it has learnt on top of it (see `learning.ts`). */
  readonly jitter: { readonly configured: number; learnt: number }
  /**
   * Set while the bucket learns its limits from the provider (intelligent mode, no quotas configured): which of
   * its quotas' windows are known yet.
   */
  readonly learning?: Learning
}

/**
 * What a bucket nobody configured has learnt so far. From headers: which quotas' windows are known. Without
 * headers, from refusals alone: what the provider answered, the last refusal (when, and what had been answered
 * by then) and when the rates were last raised.
 */
export interface Learning {
  readonly windowKnown: Array<boolean>
  /** Headers reported limits once: refusals are not what the bucket learns from. */
  fromHeaders: boolean
  /** Charges of the calls the provider answered (refusals cost it nothing), per quota, and the largest one. */
  readonly answered: Array<number>
  readonly largest: Array<number>
  lastRefusal: { readonly at: number; readonly answered: ReadonlyArray<number> } | undefined
  raisedAt: number
}

/** A call, checked: its bucket, its charge per quota, and how long it may wait. */
export interface Request {
  readonly entry: Entry
  readonly charge: ReadonlyArray<number>
  readonly maxWaitMs: number
}

/** Starts (or, with `Effect.void`, stops) the driver of the bucket of that name. */
export type RunDriver = (name: string, driver: Effect.Effect<void>) => unknown

/** Every check a call's description and options can fail. */
export type RequestError = InvalidCall | InvalidUsage | UnknownBucket | CapacityExceeded | LimiterClosed

const describe = (value: unknown): string =>
  typeof value === "string" ? JSON.stringify(value) : value === null ? "null" : Array.isArray(value) ? "an array" : typeof value === "object" ? "an object" : String(value)

const noMaxWait = Either.right(Infinity)

/** `maxWait` in milliseconds (`Infinity` without one), or what is wrong with it. */
export const maxWaitOf = (maxWait: unknown): Either.Either<number, InvalidCall> => {
  if (maxWait === undefined) return noMaxWait
  // Duration.decodeUnknown reads a negative or NaN amount as zero: those are refused before it sees them.
  const negative = typeof maxWait === "number" ? !(maxWait >= 0) : typeof maxWait === "string" && maxWait.trim().startsWith("-")
  const ms = negative ? Option.none() : Option.map(Duration.decodeUnknown(maxWait), Duration.toMillis)
  return Option.isSome(ms)
    ? Either.right(ms.value)
    : Either.left(new InvalidCall({ issues: [`options.maxWait: expected a duration ("30 seconds") or milliseconds >= 0, got ${describe(maxWait)}`] }))
}

export class Limiter {
  private readonly entries = new Map<string, Entry>()
  readonly provider: Provider.Provider | undefined
  private closed = false

  constructor(
    readonly settings: Quota.Settings,
    readonly backend: BackendService,
    readonly breaker: CircuitBreaker.CircuitBreakerService | undefined,
    readonly tracker: Tracker.ReservationTracker,
    private readonly runDriver: RunDriver,
    private readonly clockNow: () => number
  ) {
    this.provider = settings.provider === undefined ? undefined : Either.getOrUndefined(Provider.get(settings.provider))
    for (const bucket of settings.buckets.values()) this.add(bucket, false)
  }

  private add(bucket: Quota.Bucket, dynamic: boolean, learning?: Entry["learning"]): Entry {
    const entry: Entry = {
      ...(learning === undefined ? {} : { learning }),
      bucket,
      scheduler: new Scheduler(bucket, this.backend, this.clockNow),
      capacities: bucket.quotas.map((q) => capacityOf(q, bucket.safetyRatio, bucket.burstMultiplier)),
      dynamic,
      used: true,
      jitter: { configured: bucket.skew, learnt: bucket.skew }
    }
    this.entries.set(bucket.name, entry)
    this.runDriver(bucket.name, entry.scheduler.run)
    return entry
  }

  /** Stops tracking a basic-mode bucket: its driver ends and its state is dropped. */
  private drop(entry: Entry): void {
    this.entries.delete(entry.bucket.name)
    entry.scheduler.unwatch()
    this.runDriver(entry.bucket.name, Effect.void)
    if (this.backend.forget !== undefined) Effect.runFork(this.backend.forget(entry.bucket))
  }

  /** A basic-mode bucket: no quotas, so it admits at once unless the provider said to wait. */
  private addBasic(name: string): Entry {
    const entry = this.add({ name, quotas: [], safetyRatio: 1, burstMultiplier: 1, skew: 0, maxQueue: Number.MAX_SAFE_INTEGER }, true)
    let dynamic = 0
    for (const other of this.entries.values()) if (other.dynamic) dynamic++
    // Least recently used first: the map keeps entries in the order they were last used.
    for (const other of this.entries.values()) {
      if (dynamic <= this.settings.basic.maxModels) break
      if (other.dynamic && other !== entry && other.scheduler.length === 0) {
        this.drop(other)
        dynamic--
      }
    }
    return entry
  }

  /**
   * A bucket nobody configured, in intelligent mode with a provider: a token bucket per metric the provider
   * charges, at a limit nobody has reported yet, and one call in flight until a response reports the limits
   * (see `learning.ts`).
   */
  private addLearning(name: string, provider: Provider.Provider): Entry {
    const rates = [...new Set(["requests", ...provider.charging.metrics])].map((metric): Quota.Quota => ({
      metric,
      limit: UNREPORTED,
      windowMs: 60_000,
      algorithm: "token-bucket",
      refunds: provider.charging.refunds
    }))
    const quotas = [...rates, { metric: "requests", limit: 1, windowMs: 0, algorithm: "concurrency" as const, refunds: true }]
    const bucket = { name, quotas, safetyRatio: 1, burstMultiplier: 1, skew: learningSkew(60_000), maxQueue: Number.MAX_SAFE_INTEGER }
    return this.add(bucket, false, {
      windowKnown: quotas.map(() => false),
      fromHeaders: false,
      answered: quotas.map(() => 0),
      largest: quotas.map(() => 0),
      lastRefusal: undefined,
      raisedAt: -Infinity
    })
  }

  /** Drops the basic-mode buckets nobody used since the last sweep; run every `idleAfter`. */
  readonly sweepIdle: Effect.Effect<void> = Effect.sync(() => {
    for (const entry of [...this.entries.values()]) {
      if (entry.dynamic && !entry.used && entry.scheduler.length === 0) this.drop(entry)
      entry.used = false
    }
  })

  /** The bucket of that name, made on first use in basic mode or, with a provider, to learn its limits. */
  entry(name: unknown): Either.Either<Entry, UnknownBucket | InvalidCall | LimiterClosed> {
    if (typeof name !== "string") return Either.left(new InvalidCall({ issues: [`meta.bucket: expected a bucket name, got ${describe(name)}`] }))
    if (this.closed) return Either.left(new LimiterClosed({}))
    const entry = this.entries.get(name)
    if (entry === undefined) {
      if (this.settings.mode === "basic") return Either.right(this.addBasic(name))
      return this.provider === undefined
        ? Either.left(new UnknownBucket({ bucket: name, known: [...this.entries.keys()] }))
        : Either.right(this.addLearning(name, this.provider))
    }
    entry.used = true
    if (entry.dynamic) {
      this.entries.delete(name)
      this.entries.set(name, entry)
    }
    return Either.right(entry)
  }

  /** The charge of a usage, or why it can never be admitted. */
  charge(entry: Entry, usage: unknown): Either.Either<ReadonlyArray<number>, InvalidUsage | CapacityExceeded> {
    const charge = Quota.chargeOf(entry.bucket, usage)
    if (Either.isLeft(charge)) return charge
    for (let i = 0; i < charge.right.length; i++) {
      if (charge.right[i] > entry.capacities[i]) {
        return Either.left(new CapacityExceeded({ bucket: entry.bucket.name, reason: "too-large", metric: entry.bucket.quotas[i].metric }))
      }
    }
    return charge
  }

  /** Checks a call: its bucket, its charge and its `maxWait`. */
  request(meta: unknown, maxWait: unknown): Either.Either<Request, RequestError> {
    if (typeof meta !== "object" || meta === null) {
      return Either.left(new InvalidCall({ issues: [`meta: expected { bucket, usage? }, got ${describe(meta)}`] }))
    }
    const { bucket, usage } = meta as { readonly bucket?: unknown; readonly usage?: unknown }
    const entry = this.entry(bucket)
    if (Either.isLeft(entry)) return Either.left(entry.left)
    const maxWaitMs = maxWaitOf(maxWait)
    if (Either.isLeft(maxWaitMs)) return Either.left(maxWaitMs.left)
    const charge = this.charge(entry.right, usage)
    if (Either.isLeft(charge)) return Either.left(charge.left)
    return Either.right({ entry: entry.right, charge: charge.right, maxWaitMs: maxWaitMs.right })
  }

  /** How long a newcomer with this charge would wait behind everything queued and booked. */
  status(entry: Entry, charge: ReadonlyArray<number>): Effect.Effect<BackendStatus, BackendUnavailable> {
    return this.backend.status(entry.bucket, charge.map((amount, i) => amount + entry.scheduler.demand[i]))
  }

  /**
   * Fails at once when the wait is known to exceed `maxWaitMs`, without booking or queueing. A wait that only
   * a release can end (a full concurrency quota) is not known: the caller waits up to `maxWaitMs` for one.
   */
  checkWait(entry: Entry, charge: ReadonlyArray<number>, maxWaitMs: number): Effect.Effect<void, CapacityExceeded | BackendUnavailable> {
    return Effect.flatMap(this.status(entry, charge), ({ waitMs }) =>
      waitMs > maxWaitMs && waitMs !== Infinity
        ? Effect.fail(new CapacityExceeded({ bucket: entry.bucket.name, reason: "max-wait", retryAfterMs: waitMs }))
        : Effect.void)
  }

  get isClosed(): boolean {
    return this.closed
  }

  /**
   * Shuts down: nothing more is admitted, waiting callers are told, and running calls get `shutdownTimeout` to
   * finish and settle; what is still open then is settled keeping its charge.
   */
  readonly shutdown: Effect.Effect<void> = Effect.suspend(() => {
    this.closed = true
    const schedulers = [...this.entries.values()].map((entry) => entry.scheduler)
    for (const scheduler of schedulers) scheduler.close()
    // Places in a shared line go now rather than when they expire, so that other processes are not held up.
    const leave = Effect.forEach(schedulers, (scheduler) => scheduler.leaveLine, { discard: true })
    return Effect.zipRight(leave, this.tracker.drain(this.settings.shutdownTimeout))
  })
}

/**
 * Decodes the configuration and starts one driver per bucket, the orphan sweeper and (in basic mode) the idle
 * sweeper, for the lifetime of the scope; closing the scope shuts the limiter down gracefully.
 */
export const make = (config: unknown) =>
  Effect.gen(function*() {
    const settings = yield* Quota.decodeSettings(config)
    const backend = yield* Backend
    // A backend shared by processes shares its circuits too.
    const breaker = settings.breaker === undefined
      ? undefined
      : backend.breaker?.(settings.breaker) ?? (yield* CircuitBreaker.make(settings.breaker))
    const drivers = yield* FiberMap.make<string>()
    const runDriver = yield* FiberMap.runtime(drivers)<never>()
    const clock = yield* Effect.clock
    const tracker = yield* Tracker.make(backend, settings.reservationTtl)
    const limiter = new Limiter(settings, backend, breaker, tracker, runDriver, () => clock.unsafeCurrentTimeMillis())
    if (settings.mode === "basic") {
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(settings.basic.idleAfter), limiter.sweepIdle)))
    }
    yield* Effect.addFinalizer(() => limiter.shutdown)
    return limiter
  })
