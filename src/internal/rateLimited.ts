/**
 * The flow of one call, written once: check it, admit it, run it, learn from the provider's answer, settle it,
 * and retry what the provider refused. The Promise adapter runs the same flow (see `promise.ts`).
 *
 * Admission is the only step that waits interruptibly. Everything from the hand-over of a reservation to its
 * settlement runs uninterruptibly, and the hand-over itself goes through a ticket the driver fills in one
 * synchronous step: a caller interrupted at the instant it is admitted still finds its reservation there, and
 * gives it back.
 *
 * @internal
 */
import { Cause, Duration, Effect, Either, Exit, Option, Schedule, type Scope, Stream } from "effect"
import type { Reservation } from "../Backend.js"
import {
  type BackendUnavailable,
  type CapacityExceeded,
  InvalidUsage,
  LimiterClosed,
  type QueueOverflow,
  type RateLimitError,
  RateLimitedByProvider,
  ReservationCapacity,
  ReservationNotFound
} from "../Errors.js"
import * as Quota from "../Quota.js"
import type {
  LimiterStatus,
  Meta,
  Permit,
  ProviderResponse,
  StreamOptions,
  SubmitOptions,
  WaitOptions
} from "../RateLimited.js"
import { learn, Refused } from "./learning.js"
import type { Limiter, Request } from "./limiter.js"
import { MAX_OPEN, type Open } from "./reservationTracker.js"
import type { Ticket } from "./scheduler.js"

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * Options the Promise adapter adds: `handOff` takes over the settlement of a result that is still running
 * (a streamed body) and returns what the caller gets instead, or `undefined` to settle now.
 */
export interface FlowOptions<A, E> extends SubmitOptions<A, E> {
  readonly handOff?: (result: A, settle: (usage: Quota.Usage | undefined) => void) => A | undefined
}

/** A caller of the Effect API waiting for admission: the ticket the driver hands its reservation to. */
class WaitingCall implements Ticket {
  deadline = Infinity
  prev: Ticket | undefined = undefined
  next: Ticket | undefined = undefined
  queued = false
  /** Set by the driver at the hand-over; from then on this call settles or releases it. */
  open: Open | undefined = undefined
  private resume: ((effect: Effect.Effect<void, CapacityExceeded | BackendUnavailable | QueueOverflow>) => void) | undefined
  private readonly start: number

  constructor(private readonly limiter: Limiter, private readonly request: Request) {
    this.start = request.entry.scheduler.now()
  }

  get charge(): ReadonlyArray<number> {
    return this.request.charge
  }

  admit(reservation: Reservation): void {
    const { entry, charge } = this.request
    this.open = this.limiter.tracker.open(entry, reservation, charge, entry.scheduler.now() - this.start)
    this.resume?.(Effect.void)
  }

  fail(error: CapacityExceeded | BackendUnavailable | LimiterClosed): void {
    // A limiter shutting down interrupts its waiting Effect callers, as closing their scope would.
    this.resume?.(error._tag === "LimiterClosed" ? Effect.interrupt : Effect.fail(error))
  }

  /** Queues the ticket and waits for the driver; interruption takes it out of the queue. */
  readonly wait = Effect.async<void, CapacityExceeded | BackendUnavailable | QueueOverflow>((resume) => {
    const { scheduler } = this.request.entry
    this.resume = resume
    // Taken now, after any status round trip: maxWait counts from when the caller joins the queue.
    if (this.request.maxWaitMs !== Infinity) this.deadline = scheduler.now() + this.request.maxWaitMs
    const refused = scheduler.enqueue(this)
    if (refused !== undefined) return resume(refused._tag === "LimiterClosed" ? Effect.interrupt : Effect.fail(refused))
    return Effect.sync(() => scheduler.cancel(this))
  })
}

export const make = (limiter: Limiter) => {
  const { tracker } = limiter

  /** Admits a checked call at once, synchronously, when it fits and nobody waits; `undefined` when it cannot. */
  const admitNow = (request: Request): Open | undefined => {
    if (tracker.size >= MAX_OPEN) return undefined
    const now = request.entry.scheduler.tryNow(request.charge)
    return now === undefined ? undefined : tracker.open(request.entry, now, request.charge, 0)
  }

  /** Admits a checked call: at once when it fits and nobody waits, else through a ticket (see `WaitingCall`). */
  const admit = (request: Request, restore: Restore): Effect.Effect<Open, RateLimitError> => {
    const open = admitNow(request)
    return open === undefined ? admitLater(request, restore) : Effect.succeed(open)
  }

  /** What `admitNow` could not admit: a ticket waits for the scheduler's driver. */
  const admitLater = (request: Request, restore: Restore): Effect.Effect<Open, RateLimitError> => {
    if (tracker.size >= MAX_OPEN) return Effect.fail(new ReservationCapacity({ maxOpen: MAX_OPEN }))
    const ticket = new WaitingCall(limiter, request)
    const { entry, charge, maxWaitMs } = request
    const wait = maxWaitMs === Infinity ? ticket.wait : Effect.zipRight(limiter.checkWait(entry, charge, maxWaitMs), ticket.wait)
    return Effect.flatMap(Effect.exit(restore(wait)), (exit): Effect.Effect<Open, RateLimitError> => {
      const open = ticket.open
      if (open === undefined) return Exit.isFailure(exit) ? Effect.failCause(exit.cause) : Effect.dieMessage("admitted without a reservation")
      if (Exit.isSuccess(exit)) return Effect.succeed(open)
      // Interrupted at the instant of admission: the reservation was handed over, and goes back.
      const released = tracker.release(open)
      return released === undefined ? Effect.failCause(exit.cause) : Effect.zipRight(released, Effect.failCause(exit.cause))
    })
  }

  /** Settles with a usage read off the result (a bad one still settles, keeping the charge), then ends as `exit`. */
  const settleThen = <A, E>(open: Open, usage: Either.Either<Quota.Usage | undefined, InvalidUsage>, exit: Exit.Exit<A, E>) => {
    const [settled, invalid] = settleBy(limiter, open, usage)
    const outcome: Effect.Effect<A, E | InvalidUsage> = invalid ?? exit
    return settled === undefined ? outcome : Effect.zipRight(settled, outcome)
  }

  const usageFrom = <A, E>(bucket: string, options: SubmitOptions<A, E> | undefined, exit: Exit.Exit<A, E>) =>
    Exit.isSuccess(exit) ? usageOf(bucket, options?.actualUsage, exit.value) : Either.right(undefined)

  /** Admitted, run, then `finish`ed (settled) whatever its exit, uninterruptibly. */
  const attempt = <A, E, R, E2>(
    meta: Meta,
    maxWait: unknown,
    effect: Effect.Effect<A, E, R>,
    finish: (open: Open, exit: Exit.Exit<A, E>) => Effect.Effect<A, E2>
  ): Effect.Effect<A, E2 | RateLimitError, R> =>
    Effect.uninterruptibleMask((restore) => {
      // Checked on every run of the effect (each retry too), as the call stands then.
      const checked = limiter.request(meta, maxWait)
      if (Either.isLeft(checked)) return checked.left
      const request = checked.right
      const run = (open: Open) =>
        Effect.matchCauseEffect(restore(effect), {
          onFailure: (cause) => finish(open, Exit.failCause(cause)),
          onSuccess: (value) => finish(open, Exit.succeed(value))
        })
      // A call that fits at once goes straight to its run: no effect to admit it.
      const open = admitNow(request)
      return open === undefined ? Effect.flatMap(admitLater(request, restore), run) : run(open)
    })

  /** After the provider's answer: learn from it, then settle (a refusal keeps its charge: the provider counted it). */
  const finishReading = <A, E>(meta: Meta, options: FlowOptions<A, E>, read: NonNullable<SubmitOptions<A, E>["response"]>) =>
  (open: Open, exit: Exit.Exit<A, E>): Effect.Effect<A, E | RateLimitError | Refused> => {
    const response = read(exit)
    const provider = limiter.provider
    const learnt = response === undefined || provider === undefined
      ? Effect.succeed(undefined)
      : learn(provider, limiter.backend, open.holder, response, open.charge, limiter.settings.retry.maxDelay)
    return Effect.flatMap(Effect.either(learnt), (learned): Effect.Effect<A, E | RateLimitError | Refused> => {
      // The backend could not take what the provider said: the call still settles, keeping its charge.
      if (Either.isLeft(learned)) return settleThen(open, Either.right(undefined), Exit.fail(learned.left))
      if (learned.right !== undefined) return settleThen(open, Either.right(undefined), Exit.fail(learned.right))
      const handOff = options.handOff
      if (handOff !== undefined && Exit.isSuccess(exit)) {
        const handed = handOff(exit.value, (usage) => settleLater(open, usage))
        if (handed !== undefined) return Effect.succeed(handed)
      }
      return settleThen(open, usageFrom(meta.bucket, options, exit), exit)
    })
  }

  /** A settlement that comes after the call returned (a streamed body ended): it runs on its own. */
  const settleLater = (open: Open, usage: Quota.Usage | undefined): void => {
    const actual = Either.getOrElse(Quota.actualOf(open.holder.bucket, usage), () => [])
    const settled = tracker.settle(open, actual)
    if (settled !== undefined) Effect.runFork(settled)
  }

  const retrySchedule = retryScheduleOf(limiter.settings.retry)

  /**
   * Runs `first`, and `again` on the retry schedule while the provider refuses it; the last refusal fails. A
   * call that is not refused never touches the schedule, which costs allocations on every call.
   */
  const retryRefused = <A, E, R>(
    first: Effect.Effect<A, E | Refused, R>,
    again: () => Effect.Effect<A, E | Refused, R>
  ): Effect.Effect<A, E | Refused, R> =>
    Effect.catchIf(first, isRefused, (refused) =>
      Effect.flatMap(Schedule.driver(retrySchedule), (driver) => {
        const retry = (last: Refused): Effect.Effect<A, E | Refused, R> =>
          Effect.matchEffect(driver.next(last), {
            onFailure: () => Effect.fail(last),
            onSuccess: () => Effect.catchIf(again(), isRefused, retry)
          })
        return retry(refused)
      }))

  const submit = <A, E, R>(meta: Meta, effect: Effect.Effect<A, E, R>, options?: FlowOptions<A, E>): Effect.Effect<A, E | RateLimitError, R> => {
    const read = options?.response
    // Only a call whose answer is read can be refused: the others skip the retry machinery.
    const attempts: Effect.Effect<A, E | RateLimitError, R> = read === undefined
      ? attempt(meta, options?.maxWait, effect, (open, exit) => settleThen(open, usageFrom(meta.bucket, options, exit), exit))
      : retryRefused(
        attempt(meta, options?.maxWait, effect, finishReading(meta, options ?? {}, read)),
        () => attempt(meta, options?.maxWait, effect, finishReading(meta, options ?? {}, read))
      ).pipe(Effect.catchIf(isRefused, (refused) => Effect.fail(refusedError(meta.bucket, refused, limiter.settings.retry.maxAttempts))))
    const breaker = limiter.breaker
    return breaker === undefined ? attempts : breaker.guard(meta.bucket, attempts, (exit) =>
      Exit.isFailure(exit) && Option.exists(Cause.failureOption(exit.cause), (error) => error instanceof RateLimitedByProvider))
  }

  /**
   * Admits a call whose work the caller runs, for as long as the scope: `onClose` closes the reservation when
   * the scope closes with it still open.
   */
  const hold = (
    meta: Meta,
    options: WaitOptions | undefined,
    onClose: (open: Open) => Effect.Effect<void> | undefined
  ): Effect.Effect<Open, RateLimitError, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.suspend(() => {
        const request = limiter.request(meta, options?.maxWait)
        if (Either.isLeft(request)) return request.left
        return Effect.tap(admit(request.right, restore), (open) => Effect.addFinalizer(() => onClose(open) ?? Effect.void))
      })
    )

  /** A permit's own close: once, and not after the limiter has closed. */
  const closeOnce = (open: Open, close: () => Effect.Effect<void> | undefined): Effect.Effect<void, ReservationNotFound | LimiterClosed> =>
    Effect.suspend((): Effect.Effect<void, ReservationNotFound | LimiterClosed> => {
      if (!open.open) {
        return limiter.isClosed ? Effect.fail(new LimiterClosed({})) : Effect.fail(new ReservationNotFound({ bucket: open.holder.bucket.name, id: open.id }))
      }
      return close() ?? Effect.void
    })

  const reserve = (meta: Meta, options?: WaitOptions): Effect.Effect<Permit, RateLimitError, Scope.Scope> =>
    Effect.map(hold(meta, options, (open) => tracker.release(open)), (open): Permit => ({
      id: open.id,
      bucket: open.holder.bucket.name,
      at: open.at,
      waitedMs: open.waitedMs,
      settle: (usage) =>
        Effect.flatMap(Quota.actualOf(open.holder.bucket, usage), (actual) => closeOnce(open, () => tracker.settle(open, actual))),
      release: closeOnce(open, () => tracker.release(open))
    }))

  /** Admitted before its first chunk; settled with the last usage a chunk reported, however it ends. */
  const submitStream = <A, E, R>(meta: Meta, stream: Stream.Stream<A, E, R>, options?: StreamOptions<A>): Stream.Stream<A, E | RateLimitError, R> =>
    Stream.unwrapScoped(Effect.suspend(() => {
      // Once a chunk reached the caller the provider has billed the call: it settles alike on success, failure,
      // defect or interruption, with what the chunks reported (a quota they did not report keeps its charge).
      let last: ReadonlyArray<number | undefined> = []
      return Effect.map(hold(meta, options, (open) => tracker.settle(open, last)), (open) => {
        const usageOf = options?.usageOf
        if (usageOf === undefined) return stream
        return Stream.tap(stream, (chunk) =>
          Effect.suspend(() => {
            const usage = usageOf(chunk)
            if (usage === undefined) return Effect.void
            return Effect.map(Quota.actualOf(open.holder.bucket, usage), (actual) => {
              last = actual
            })
          }))
      })
    }))

  const status = (bucket: string, usage?: Quota.Usage): Effect.Effect<LimiterStatus, RateLimitError> =>
    Effect.suspend((): Effect.Effect<LimiterStatus, RateLimitError> => {
      const entry = limiter.entry(bucket)
      if (Either.isLeft(entry)) return entry.left
      return Effect.flatMap(Quota.chargeOf(entry.right.bucket, usage), (charge) =>
        Effect.map(limiter.status(entry.right, charge), (state) => ({ ...state, bucket, queued: entry.right.scheduler.length, skewMs: entry.right.bucket.skew })))
    })

  return { submit, submitStream, reserve, status, [LimiterId]: limiter }
}

/**
 * The key of the limiter behind a service `make` built: what an adapter built on the flow (`HttpClient`) needs
 * beyond the service, its provider and buckets. Not on the public `RateLimitedService` type.
 */
export const LimiterId: unique symbol = Symbol.for("quotaflow/internal/Limiter")

/** Whether `make` built a `RateLimited` service: its limiter is then at `LimiterId`, and `submit` takes `FlowOptions`. */
export const isFlow = (service: object): service is Flow => LimiterId in service

const isRefused = (error: unknown): error is Refused => error instanceof Refused

/**
 * The settlement of a call by the usage read off its result: the effect still to run (`undefined` when it is
 * done), and the error to report after it when the usage was bad (the call then keeps its charge).
 */
export const settleBy = (
  limiter: Limiter,
  open: Open,
  usage: Either.Either<Quota.Usage | undefined, InvalidUsage>
): readonly [Effect.Effect<void> | undefined, InvalidUsage | undefined] => {
  // Every call passes here: no closure, and no tuple when it is done at once.
  if (Either.isLeft(usage)) return [limiter.tracker.settle(open, keepCharge), usage.left]
  const actual = Quota.actualOf(open.holder.bucket, usage.right)
  if (Either.isLeft(actual)) return [limiter.tracker.settle(open, keepCharge), actual.left]
  const settled = limiter.tracker.settle(open, actual.right)
  return settled === undefined ? settledNow : [settled, undefined]
}

const keepCharge: ReadonlyArray<number | undefined> = []
const settledNow = [undefined, undefined] as const
const noUsage = Either.right(undefined)

/** The caller's `actualUsage` of a result, or why it could not be read. */
export const usageOf = <A>(
  bucket: string,
  actualUsage: ((result: A) => Quota.Usage | undefined) | undefined,
  result: A
): Either.Either<Quota.Usage | undefined, InvalidUsage> =>
  actualUsage === undefined
    ? noUsage
    : Either.try({
      try: () => actualUsage(result),
      catch: (error) => new InvalidUsage({ bucket, issues: [`actualUsage threw: ${String(error)}`] })
    })

/**
 * Retries a refused call: exponential and jittered from `baseDelay`, never shorter than the hint, and never
 * longer than `maxDelay`, the hint included (the bucket is blocked no longer either: see `learn`).
 */
const retryScheduleOf = ({ baseDelay, maxAttempts, maxDelay }: Quota.Settings["retry"]): Schedule.Schedule<unknown, unknown> =>
  Schedule.exponential(Duration.millis(baseDelay)).pipe(
    Schedule.jittered,
    Schedule.zipRight(Schedule.identity<unknown>()),
    Schedule.modifyDelay((error, delay) =>
      Duration.min(
        error instanceof Refused ? Duration.max(delay, Duration.millis(error.advice.delayMs ?? 0)) : delay,
        Duration.millis(maxDelay)
      )
    ),
    Schedule.intersect(Schedule.recurs(maxAttempts - 1))
  )

/** The last refusal, as the error a caller sees once no attempt is left. */
const refusedError = (bucket: string, refused: Refused, attempts: number) =>
  new RateLimitedByProvider({
    bucket,
    status: refused.response.status,
    attempts,
    retryAfterMs: refused.advice.delayMs,
    headers: headerRecord(refused.response.headers)
  })

const headerRecord = (headers: ProviderResponse["headers"]): Record<string, string> => {
  const record: Record<string, string> = {}
  if (headers instanceof Headers) headers.forEach((value, key) => (record[key] = value))
  else for (const [key, value] of Object.entries(headers)) if (value !== undefined) record[key.toLowerCase()] = String(value)
  return record
}

export type Flow = ReturnType<typeof make>
