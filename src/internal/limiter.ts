/**
 * What the Effect service and the Promise adapter share: the configured buckets, their queues, and the steps
 * of one call (charge, wait for admission, settle or release). Lookups and charges are synchronous so the
 * Promise adapter can queue a caller without starting a fiber for it.
 *
 * @internal
 */
import { Clock, Context, Duration, Effect, Either, FiberMap, Layer, Schedule } from "effect"
import { Backend, type BackendService, type BackendStatus, type Reservation } from "../Backend.js"
import * as CircuitBreaker from "../CircuitBreaker.js"
import { type BackendUnavailable, CapacityExceeded, type InvalidUsage, QueueOverflow, ReservationNotFound, UnknownBucket } from "../Errors.js"
import * as Provider from "../Provider.js"
import * as Quota from "../Quota.js"
import { BucketQueue, makeWaiter, type Waiter } from "./bucketQueue.js"
import { type LocalState, localStateOf } from "./localState.js"
import { capacityOf } from "./meters.js"

export interface Entry {
  /** Lowered when the provider reports lower limits than configured (`Limiter.learn`). */
  bucket: Quota.Bucket
  readonly queue: BucketQueue
  capacities: ReadonlyArray<number>
  /** Made on first use in basic mode, and dropped again when idle or least recently used. */
  readonly dynamic: boolean
  /** Used since the idle sweeper last looked. */
  used: boolean
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

/** Starts (or, with `Effect.void`, stops) the driver of the bucket of that name. */
export type RunDriver = (name: string, driver: Effect.Effect<void>) => unknown

export interface Admission {
  readonly entry: Entry
  /** What the call was charged, per quota of the bucket as it was then. */
  readonly charge: ReadonlyArray<number>
  readonly reservation: Reservation
  readonly waitedMs: number
}

/**
 * What a provider answered: the status and headers of a response (or of an SDK error), and its body when at
 * hand.
 */
export interface ProviderResponse {
  readonly status: number
  readonly headers: Provider.HeadersInput
  readonly body?: unknown
}

/** A provider's refusal that a retry may cure: what the limiter retries on its schedule. */
export class Refused {
  readonly _tag = "Refused"
  constructor(readonly response: ProviderResponse, readonly advice: Provider.RetryAdvice) {}
}

const WINDOW_MS: Record<Provider.LimitWindow, number> = { "1 second": 1_000, "1 minute": 60_000, "1 day": 86_400_000 }

/**
 * A learning bucket keeps a tenth of its shortest window of refill in hand: nobody configured the network's
 * jitter, which otherwise shows the provider two calls closer together than they were booked.
 */
const learningSkew = (windowMs: number): number => Math.ceil(windowMs / 10)

/** A rate is learnt from refusals once this many of the largest charges were consumed between two of them. */
const REFUSAL_SPAN = 10

/** A rate learnt from refusals is run this much below what was measured. */
const REFUSAL_BACKOFF = 0.95

/** The limit of a learning bucket's quota nobody has reported yet: never binding. */
const UNREPORTED = 1_000_000_000

/**
 * The window a continuously refilling quota refills over, from one report: `limit x (time to full) / used`,
 * with how much was used (the larger, the more precise). The time to full is taken a rounding step late
 * (`resetPrecision`: 1 ms, or 1 s for whole-second RFC 3339 resets) and the use a rounding step low
 * (`precision`, or 1), so the rate this gives errs low. `undefined` when the report cannot tell.
 */
const windowOf = (report: Provider.ReportedLimit, now: number): { readonly windowMs: number; readonly used: number } | undefined => {
  if (report.limit === undefined || report.remaining === undefined || report.resetAt === undefined) return undefined
  const used = report.limit - report.remaining - (report.precision ?? 1)
  const toFull = report.resetAt - now + (report.resetPrecision ?? 1)
  return used > 0 && toFull > 0 ? { windowMs: Math.ceil((report.limit * toFull) / used), used } : undefined
}

const retryScheduleOf = ({ baseDelay, maxAttempts, maxDelay }: Quota.Settings["retry"]): Schedule.Schedule<unknown, unknown> =>
  Schedule.exponential(Duration.millis(baseDelay)).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((delay) => Duration.min(delay, Duration.millis(maxDelay))),
    Schedule.zipRight(Schedule.identity<unknown>()),
    Schedule.modifyDelay((error, delay) =>
      error instanceof Refused ? Duration.max(delay, Duration.millis(error.advice.delayMs ?? 0)) : delay
    ),
    Schedule.intersect(Schedule.recurs(maxAttempts - 1))
  )

/** How a caller waiting through the callback API hears back. */
export interface Listener {
  readonly onAdmit: (reservation: Reservation) => void
  readonly onFail: (error: CapacityExceeded | QueueOverflow | BackendUnavailable) => void
  readonly onClosed: () => void
}

export class Limiter {
  private readonly entries = new Map<string, Entry>()
  readonly provider: Provider.Provider | undefined
  private readonly local: LocalState | undefined

  constructor(
    readonly settings: Quota.Settings,
    readonly backend: BackendService,
    readonly breaker: CircuitBreaker.CircuitBreakerService | undefined,
    private readonly runDriver: RunDriver,
    private readonly clock: Clock.Clock
  ) {
    this.provider = settings.provider === undefined ? undefined : Either.getOrUndefined(Provider.get(settings.provider))
    this.retrySchedule = retryScheduleOf(settings.retry)
    this.local = localStateOf(backend)
    for (const bucket of settings.buckets.values()) this.add(bucket, false)
  }

  private add(bucket: Quota.Bucket, dynamic: boolean, learning?: Entry["learning"]): Entry {
    const entry: Entry = {
      ...(learning === undefined ? {} : { learning }),
      bucket,
      queue: new BucketQueue(bucket, this.backend, () => this.clock.unsafeCurrentTimeMillis(), this.local),
      capacities: bucket.quotas.map((q) => capacityOf(q, bucket.safetyRatio, bucket.burstMultiplier)),
      dynamic,
      used: true
    }
    this.entries.set(bucket.name, entry)
    this.runDriver(bucket.name, entry.queue.run)
    return entry
  }

  /** Stops tracking a basic-mode bucket: its driver ends and its state is dropped. */
  private drop(entry: Entry): void {
    this.entries.delete(entry.bucket.name)
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
      if (other.dynamic && other !== entry && other.queue.length === 0) {
        this.drop(other)
        dynamic--
      }
    }
    return entry
  }

  /**
   * A bucket nobody configured, in intelligent mode with a provider: a token bucket per metric the provider
   * charges, at a limit nobody has reported yet, and one call in flight until a response reports the limits
   * (see `learnLimits`).
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
  readonly sweep: Effect.Effect<void> = Effect.sync(() => {
    for (const entry of [...this.entries.values()]) {
      if (entry.dynamic && !entry.used && entry.queue.length === 0) this.drop(entry)
      entry.used = false
    }
  })

  get queues(): ReadonlyArray<BucketQueue> {
    return [...this.entries.values()].map((entry) => entry.queue)
  }

  entry(name: string): Either.Either<Entry, UnknownBucket> {
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
  charge(entry: Entry, usage: Quota.Usage | undefined): Either.Either<ReadonlyArray<number>, InvalidUsage | CapacityExceeded> {
    return Either.flatMap(Quota.chargeOf(entry.bucket, usage), (charge) => {
      const i = charge.findIndex((amount, i) => amount > entry.capacities[i])
      return i < 0
        ? Either.right(charge)
        : Either.left(new CapacityExceeded({ bucket: entry.bucket.name, reason: "too-large", metric: entry.bucket.quotas[i].metric }))
    })
  }

  /** Queues a caller; returns the waiter to cancel, or the error that refused it. */
  enqueue(entry: Entry, charge: ReadonlyArray<number>, deadline: number, listener: Listener): Either.Either<Waiter, QueueOverflow> {
    if (entry.queue.length >= entry.bucket.maxQueue) {
      return Either.left(new QueueOverflow({ bucket: entry.bucket.name, maxQueue: entry.bucket.maxQueue }))
    }
    const waiter = makeWaiter(charge, deadline, listener.onAdmit, listener.onFail, listener.onClosed)
    entry.queue.enqueue(waiter)
    return Either.right(waiter)
  }

  /** How long a newcomer with this charge would wait behind everything queued and booked. */
  status(entry: Entry, charge: ReadonlyArray<number>): Effect.Effect<BackendStatus, BackendUnavailable> {
    return this.backend.status(entry.bucket, charge.map((amount, i) => amount + entry.queue.demand[i]))
  }

  /** Fails at once when the wait is known to exceed `maxWaitMs`, without booking or queueing. */
  checkWait(entry: Entry, charge: ReadonlyArray<number>, maxWaitMs: number): Effect.Effect<void, CapacityExceeded | BackendUnavailable> {
    if (maxWaitMs === Infinity) return Effect.void
    return Effect.flatMap(this.status(entry, charge), ({ waitMs }) =>
      waitMs > maxWaitMs
        ? Effect.fail(new CapacityExceeded({ bucket: entry.bucket.name, reason: "max-wait", retryAfterMs: waitMs }))
        : Effect.void)
  }

  /** Waits until the charge is booked. Interruption while waiting leaves nothing booked. */
  acquire(
    entry: Entry,
    charge: ReadonlyArray<number>,
    maxWaitMs: number
  ): Effect.Effect<Admission, CapacityExceeded | QueueOverflow | BackendUnavailable> {
    return Effect.suspend(() => {
      const now = entry.queue.tryNow(charge)
      if (now !== undefined) return Effect.succeed({ entry, charge, reservation: now, waitedMs: 0 })
      const start = entry.queue.now()
      const queued = Effect.async<Reservation, CapacityExceeded | QueueOverflow | BackendUnavailable>((resume) => {
        const waiter = this.enqueue(entry, charge, start + maxWaitMs, {
          onAdmit: (reservation) => resume(Effect.succeed(reservation)),
          onFail: (error) => resume(Effect.fail(error)),
          onClosed: () => resume(Effect.interrupt)
        })
        if (Either.isLeft(waiter)) return resume(Effect.fail(waiter.left))
        return Effect.sync(() => entry.queue.cancel(waiter.right))
      })
      const admitted = Effect.map(queued, (reservation) => ({ entry, charge, reservation, waitedMs: entry.queue.now() - start }))
      return maxWaitMs === Infinity ? admitted : Effect.zipRight(this.checkWait(entry, charge, maxWaitMs), admitted)
    })
  }

  settle(entry: Entry, id: string, actual: ReadonlyArray<number | undefined>): Effect.Effect<void, ReservationNotFound | BackendUnavailable> {
    return Effect.suspend(() => {
      const settled = entry.queue.settleNow(id, actual)
      if (settled === undefined) {
        return this.backend.settle(entry.bucket, id, actual).pipe(Effect.ensuring(Effect.sync(() => entry.queue.notify())))
      }
      return settled ? Effect.void : Effect.fail(new ReservationNotFound({ bucket: entry.bucket.name, id }))
    })
  }

  release(entry: Entry, id: string): Effect.Effect<void, ReservationNotFound | BackendUnavailable> {
    return this.backend.release(entry.bucket, id).pipe(Effect.ensuring(Effect.sync(() => entry.queue.notify())))
  }

  /**
   * Reads a provider's answer: every quota the headers report is raised to the provider's usage (others may
   * share the key), and a refusal a retry may cure blocks the bucket for its hint, for every caller of the
   * backend. Returns the refusal, if it is one.
   */
  learn(entry: Entry, response: ProviderResponse, charge: ReadonlyArray<number>): Effect.Effect<Refused | undefined, BackendUnavailable> {
    const provider = this.provider
    if (provider === undefined) return Effect.succeed(undefined)
    return Effect.gen(this, function*() {
      const now = yield* Clock.currentTimeMillis
      const reported = provider.parseHeaders(response.headers, now)
      const rates = entry.bucket.quotas.filter((q) => q.algorithm !== "concurrency")
      const reports = entry.bucket.quotas.map((quota) => {
        // Headers report rates, never concurrency. One quota on a metric takes that metric's report; several
        // (per minute and per day) go by window.
        if (quota.algorithm === "concurrency") return undefined
        const alone = rates.filter((q) => q.metric === quota.metric).length === 1
        return reported.find((r) =>
          r.metric === quota.metric && (alone || r.window === undefined || WINDOW_MS[r.window] === quota.windowMs)
        )
      })
      const advice = response.status >= 400 ? provider.retryAfter(response.status, response.headers, response.body, now) : undefined
      const refused = advice !== undefined && advice.retry && (advice.kind === "rate-limited" || advice.kind === "overloaded")
      const learning = entry.learning
      if (learning === undefined) yield* this.lowerTo(entry, reports)
      else if (learning.fromHeaders || reports.some((report) => report?.limit !== undefined)) {
        learning.fromHeaders = true
        yield* this.learnLimits(entry, reports, now)
      } else if (refused && advice.kind === "rate-limited") yield* this.learnFromRefusal(entry, learning, now)
      else if (response.status < 400) {
        charge.forEach((amount, i) => {
          learning.answered[i] += amount
          learning.largest[i] = Math.max(learning.largest[i], amount)
        })
        yield* this.probeUp(entry, learning, now)
      }
      const used = reports.map((report) => {
        if (report?.limit === undefined || report.remaining === undefined) return undefined
        // A rounded remainder may hide up to half its precision of usage: assume the worse half.
        return Math.max(0, report.limit - report.remaining + (report.precision ?? 0) / 2)
      })
      // A limit the bucket has no quota for, reported exhausted, blocks it until its reset (basic mode's state).
      const exhausted = reported.reduce((until, r) =>
        r.remaining === 0 && r.resetAt !== undefined && !entry.bucket.quotas.some((q) => q.metric === r.metric)
          ? Math.max(until, r.resetAt - now)
          : until, 0)
      const blockForMs = Math.max(refused ? advice.delayMs ?? 0 : 0, exhausted)
      if (blockForMs > 0 || used.some((u) => u !== undefined)) yield* this.backend.observe(entry.bucket, used, blockForMs)
      if (blockForMs > 0) entry.queue.notify()
      return refused ? new Refused(response, advice) : undefined
    })
  }

  /**
   * A limit the provider reports below the configured one wins: the bucket runs at it from now on (what is
   * booked stays booked), and the change is logged as a warning.
   */
  private lowerTo(entry: Entry, reports: ReadonlyArray<Provider.ReportedLimit | undefined>): Effect.Effect<void> {
    const quotas = entry.bucket.quotas.map((quota, i) => {
      const limit = reports[i]?.limit
      return limit !== undefined && Number.isFinite(limit) && limit >= 1 && Math.floor(limit) < quota.limit
        ? { ...quota, limit: Math.floor(limit) }
        : quota
    })
    const changes = this.retune(entry, quotas)
    return changes.length === 0
      ? Effect.void
      : Effect.logWarning(`quotaflow: bucket ${entry.bucket.name} runs at the lower limits its provider reports: ${changes.join(", ")}`)
  }

  /**
   * A learning bucket takes the limits its provider reports, and the window each refills over: for a quota
   * that refills continuously, `limit x (time to full) / used` (the time rounded up and the use down, so the
   * rate errs low). Once any limit is known, the cautious one call in flight is lifted.
   */
  private learnLimits(entry: Entry, reports: ReadonlyArray<Provider.ReportedLimit | undefined>, now: number): Effect.Effect<void> {
    const windowKnown = entry.learning?.windowKnown ?? []
    // Quotas the provider reports on one window (per minute, say) refill over one: the most used tells it best.
    const windows = new Map<Provider.LimitWindow | undefined, { readonly windowMs: number; readonly used: number }>()
    for (const report of reports) {
      const inferred = report === undefined ? undefined : windowOf(report, now)
      const best = report === undefined ? undefined : windows.get(report.window)
      if (report !== undefined && inferred !== undefined && (best === undefined || inferred.used > best.used)) windows.set(report.window, inferred)
    }
    let learnt = false
    const quotas = entry.bucket.quotas.map((quota, i) => {
      const report = reports[i]
      if (quota.algorithm !== "token-bucket" || report?.limit === undefined || !(report.limit >= 1)) return quota
      learnt = true
      const inferred = windowKnown[i] ? undefined : windows.get(report.window)?.windowMs
      if (inferred !== undefined) windowKnown[i] = true
      return { ...quota, limit: Math.min(quota.limit, Math.floor(report.limit)), windowMs: inferred ?? quota.windowMs }
    })
    const lifted = learnt ? quotas.map((q) => (q.algorithm === "concurrency" && q.limit === 1 ? { ...q, limit: UNREPORTED } : q)) : quotas
    const changes = this.retune(entry, lifted)
    return changes.length === 0
      ? Effect.void
      : Effect.logInfo(`quotaflow: bucket ${entry.bucket.name} learnt from its provider: ${changes.join(", ")}`)
  }

  /**
   * A learning bucket whose provider sends no rate-limit headers learns from its refusals. A refusal means the
   * provider's quota just ran dry; between two of them far enough apart it refilled at the rate this process
   * consumed: each rate quota is set a little below that, over a window that holds twice the largest charge
   * seen, and the cautious one call in flight is lifted. Until then each refusal's retry hint paces the calls.
   */
  private learnFromRefusal(entry: Entry, learning: Learning, now: number): Effect.Effect<void, BackendUnavailable> {
    const { answered, largest } = learning
    const last = learning.lastRefusal
    // The provider's quota held anything from nothing to one charge at each refusal: the span must consume
    // many charges for that not to matter (a tenth of the rate at most).
    const spans = (i: number) => answered[i] - (last?.answered[i] ?? 0) >= REFUSAL_SPAN * largest[i]
    const measured = last !== undefined && entry.bucket.quotas.every((q, i) => q.algorithm !== "token-bucket" || spans(i))
    if (last !== undefined && !measured) return Effect.void
    learning.lastRefusal = { at: now, answered: [...answered] }
    if (last === undefined) return Effect.void
    const elapsed = now - last.at
    const quotas = entry.bucket.quotas.map((quota, i) => {
      const rate = (answered[i] - last.answered[i]) / elapsed
      if (quota.algorithm === "concurrency") return { ...quota, limit: UNREPORTED }
      if (!(rate > 0)) return quota
      const windowMs = Math.max(1_000, Math.ceil((2 * largest[i]) / rate))
      return { ...quota, limit: Math.max(1, Math.floor(rate * windowMs * REFUSAL_BACKOFF)), windowMs }
    })
    learning.raisedAt = now
    const changes = this.retune(entry, quotas)
    // The provider's quota is dry now: so is ours.
    const dry = this.backend.observe(entry.bucket, quotas.map((q) => (q.algorithm === "token-bucket" ? q.limit : undefined)), 0)
    return changes.length === 0
      ? dry
      : Effect.zipRight(dry, Effect.logInfo(`quotaflow: bucket ${entry.bucket.name} learnt from refusals: ${changes.join(", ")}`))
  }

  /** Without headers, a bucket that answers well creeps its rates up (0.5% a window) until a refusal corrects them. */
  private probeUp(entry: Entry, learning: Learning, now: number): Effect.Effect<void> {
    if (learning.lastRefusal === undefined || learning.raisedAt === -Infinity) return Effect.void
    const windowMs = Math.max(...entry.bucket.quotas.filter((q) => q.algorithm === "token-bucket").map((q) => q.windowMs))
    if (now - learning.raisedAt < windowMs) return Effect.void
    learning.raisedAt = now
    this.retune(entry, entry.bucket.quotas.map((q) => (q.algorithm === "token-bucket" ? { ...q, limit: Math.ceil(q.limit * 1.005) } : q)))
    return Effect.void
  }

  /** Runs the entry's bucket at these quotas from now on; returns what changed, in words. */
  private retune(entry: Entry, quotas: ReadonlyArray<Quota.Quota>): ReadonlyArray<string> {
    const before = entry.bucket.quotas
    const changes = quotas.flatMap((quota, i) =>
      quota.limit === before[i].limit && quota.windowMs === before[i].windowMs
        ? []
        : [`${quota.metric} ${before[i].limit} per ${before[i].windowMs} ms -> ${quota.limit} per ${quota.windowMs} ms`]
    )
    if (changes.length === 0) return changes
    const windowMs = Math.min(...quotas.filter((q) => q.algorithm === "token-bucket").map((q) => q.windowMs))
    const skew = entry.learning === undefined ? entry.bucket.skew : learningSkew(windowMs)
    const bucket = { ...entry.bucket, quotas, skew }
    entry.bucket = bucket
    entry.capacities = quotas.map((q) => capacityOf(q, bucket.safetyRatio, bucket.burstMultiplier))
    entry.queue.retune(bucket)
    return changes
  }

  /** Retries a refused call: exponential and jittered from `baseDelay`, capped at `maxDelay`, never shorter than the hint. */
  readonly retrySchedule: Schedule.Schedule<unknown, unknown>

  /**
   * Runs `attempt`, and again on `retrySchedule` while the provider refuses it; the last refusal fails. A call
   * that is not refused never touches the schedule, which costs allocations on every call.
   */
  retryRefused<A, E, R>(attempt: Effect.Effect<A, E | Refused, R>): Effect.Effect<A, E | Refused, R> {
    const isRefused = (error: E | Refused): error is Refused => error instanceof Refused
    return Effect.catchIf(attempt, isRefused, (first) =>
      Effect.flatMap(Schedule.driver(this.retrySchedule), (driver) => {
        const again = (refused: Refused): Effect.Effect<A, E | Refused, R> =>
          Effect.matchEffect(driver.next(refused), {
            onFailure: () => Effect.fail(refused),
            onSuccess: () => Effect.catchIf(attempt, isRefused, again)
          })
        return again(first)
      }))
  }

  close(): void {
    for (const queue of this.queues) queue.close()
  }
}

/** Decodes the configuration and starts one driver per bucket for the lifetime of the scope. */
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
    const limiter = new Limiter(settings, backend, breaker, runDriver, yield* Effect.clock)
    if (settings.mode === "basic") {
      yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(settings.basic.idleAfter), limiter.sweep)))
    }
    yield* Effect.addFinalizer(() => Effect.sync(() => limiter.close()))
    return limiter
  })

/** The limiter core as a service, for the Promise adapter. */
export class LimiterCore extends Context.Tag("quotaflow/internal/Limiter")<LimiterCore, Limiter>() {}

export const layer = (config: unknown) => Layer.scoped(LimiterCore, make(config))
