/**
 * Every reservation this process holds open, from the moment a caller is admitted to the moment it is settled
 * or released, and the one place that closes them: exactly once, whoever asks (the call's own flow, a permit's
 * holder, the orphan sweeper, shutdown). A second close is a no-op here; the permit APIs turn it into
 * `ReservationNotFound` for their callers.
 *
 * A settle or release never fails the call that asked for it: a reservation the backend no longer knows
 * (its state was lost) is logged and counted in `Metrics.reservationsLost`, one it could not reach in
 * `Metrics.settlementsFailed`.
 *
 * @internal
 */
import { Clock, Duration, Effect, Metric, type Scope } from "effect"
import type { BackendService, Reservation } from "../Backend.js"
import type { BackendUnavailable, ReservationNotFound } from "../Errors.js"
import * as Metrics from "../Metrics.js"
import type { Bucket } from "../Quota.js"
import type { Entry } from "./limiter.js"
import { type Linked, LinkedList } from "./linkedList.js"

/** One open reservation. */
export interface Open extends Linked<Open> {
  /** The bucket: its quotas now (they may be lowered while a call runs) and its scheduler. */
  readonly holder: Entry
  readonly id: string
  /** When it may start, in epoch milliseconds of the backend's clock. */
  readonly at: number
  /** What it was charged, per quota of the bucket as it was then. */
  readonly charge: ReadonlyArray<number>
  readonly waitedMs: number
  /** When it was opened, on the limiter's clock: the orphan sweeper's reference. */
  readonly openedAt: number
  open: boolean
}

/**
 * Most reservations one process may hold open (checked at admission, so callers already waiting may pass it by
 * a little): a leak in the caller's code shows as `ReservationCapacity` instead of growing.
 */
export const MAX_OPEN = 1_000_000

export class ReservationTracker {
  /** The open records, in opening order: the order they expire in. */
  private readonly records = new LinkedList<Open>()
  /**
   * Who waits for the tracker to change: shutdown for it to empty, the sweeper for something to open. Set only
   * while they wait, so that a call that opens and closes costs no wake-up.
   */
  private whenIdle: (() => void) | undefined
  private whenBusy: (() => void) | undefined

  constructor(
    private readonly backend: BackendService,
    private readonly clock: Clock.Clock,
    /** How long a reservation may stay open before the sweeper settles it. */
    readonly ttlMs: number
  ) {}

  get size(): number {
    return this.records.size
  }

  /** Takes a booking into the tracker's keeping. */
  open(holder: Entry, reservation: Reservation, charge: ReadonlyArray<number>, waitedMs: number): Open {
    const record: Open = {
      holder,
      id: reservation.id,
      at: reservation.at,
      charge,
      waitedMs,
      openedAt: this.clock.unsafeCurrentTimeMillis(),
      open: true,
      prev: undefined,
      next: undefined
    }
    this.records.push(record)
    if (this.whenBusy !== undefined) {
      this.whenBusy()
      this.whenBusy = undefined
    }
    return record
  }

  private forget(record: Open): boolean {
    if (!record.open) return false
    record.open = false
    this.records.remove(record)
    if (this.records.size === 0 && this.whenIdle !== undefined) {
      this.whenIdle()
      this.whenIdle = undefined
    }
    return true
  }

  /**
   * Settles with the actual usage per quota (`undefined`: keep the charge). `undefined` when it is done (at
   * once, in this process), else the effect that does it. A record already closed is left alone.
   */
  settle(record: Open, actual: ReadonlyArray<number | undefined>): Effect.Effect<void> | undefined {
    if (!this.forget(record)) return undefined
    const { bucket, scheduler } = record.holder
    const local = scheduler.local
    if (local !== undefined) {
      const settled = local.settle(record.id, actual, scheduler.now())
      scheduler.freed(actual)
      return settled ? undefined : lost(bucket, record.id)
    }
    return closing(this.backend.settle(bucket, record.id, actual), bucket, record.id, () => scheduler.freed(actual))
  }

  /** Takes a booking back as if it had never been made (the call never ran). Same protocol as `settle`. */
  release(record: Open): Effect.Effect<void> | undefined {
    if (!this.forget(record)) return undefined
    const { bucket, scheduler } = record.holder
    const local = scheduler.local
    if (local !== undefined) {
      const released = local.release(record.id, scheduler.now())
      scheduler.freed(undefined)
      return released ? undefined : lost(bucket, record.id)
    }
    return closing(this.backend.release(bucket, record.id), bucket, record.id, () => scheduler.freed(undefined))
  }

  /** Settles, keeping their charge, the reservations opened before `before` (all of them by default). */
  private settleOpened(before: number, counted: boolean): Effect.Effect<void> {
    return Effect.suspend(() => {
      const due: Array<Effect.Effect<void>> = []
      for (let record = this.records.head; record !== undefined && record.openedAt <= before;) {
        const next = record.next
        const settled = this.settle(record, [])
        if (settled !== undefined) due.push(settled)
        if (counted) Metrics.orphansReclaimed.unsafeUpdate(1, [])
        record = next
      }
      return due.length === 0 ? Effect.void : Effect.all(due, { concurrency: 16, discard: true })
    })
  }

  /**
   * The orphan sweeper: sleeps until the oldest open reservation is `ttlMs` old (records only get younger
   * behind it), settles every one that old with its charge kept, so that a concurrency slot always comes back,
   * even from a permit its holder forgot; with nothing open it waits for something to be, then `ttlMs`. Runs on the
   * limiter's `Clock`, so `TestClock` drives it.
   */
  readonly sweep: Effect.Effect<never> = Effect.forever(Effect.suspend(() => {
    const oldest = this.records.head
    // With nothing open, nothing can be due before ttlMs from when something opens: waking for each call that
    // opens and settles in a moment would cost a fiber run per call.
    if (oldest === undefined) return Effect.zipRight(this.untilBusy, Effect.sleep(Duration.millis(this.ttlMs)))
    return Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const dueIn = oldest.openedAt + this.ttlMs - now
      if (dueIn > 0) return Effect.sleep(Duration.millis(dueIn))
      return Effect.zipRight(
        Effect.logWarning(`quotaflow: settling reservations open longer than ${this.ttlMs} ms (reservationTtl), keeping their charge`),
        this.settleOpened(now - this.ttlMs, true)
      )
    })
  }))

  private readonly untilBusy = Effect.async<void>((resume) => {
    if (this.records.size > 0) return resume(Effect.void)
    this.whenBusy = () => resume(Effect.void)
    return Effect.sync(() => (this.whenBusy = undefined))
  })

  private readonly untilIdle = Effect.async<void>((resume) => {
    if (this.records.size === 0) return resume(Effect.void)
    this.whenIdle = () => resume(Effect.void)
    return Effect.sync(() => (this.whenIdle = undefined))
  })

  /**
   * Shutdown: waits up to `timeoutMs` for every open reservation to be settled or released by its call, then
   * settles what is left, keeping its charge.
   */
  drain(timeoutMs: number): Effect.Effect<void> {
    return Effect.zipRight(
      // Finalizers run uninterruptibly: the wait is made interruptible so that the timeout can end it.
      Effect.timeoutOption(Effect.interruptible(this.untilIdle), Duration.millis(timeoutMs)),
      this.settleOpened(Infinity, false)
    )
  }
}

/**
 * Runs a backend's settle or release: a reservation it does not know is logged and counted, one it could not
 * reach is counted; either way the caller carries on. The scheduler hears of the capacity in every case.
 */
const closing = (
  effect: Effect.Effect<void, ReservationNotFound | BackendUnavailable>,
  bucket: Bucket,
  id: string,
  freed: () => void
): Effect.Effect<void> =>
  effect.pipe(
    Effect.catchAll((error) =>
      error._tag === "ReservationNotFound"
        ? lost(bucket, id)
        : Effect.zipRight(
          Metric.increment(Metrics.settlementsFailed),
          Effect.logWarning(`quotaflow: bucket ${bucket.name}: reservation ${id} could not be closed: ${error.message}`)
        )
    ),
    Effect.ensuring(Effect.sync(freed))
  )

const lost = (bucket: Bucket, id: string): Effect.Effect<void> =>
  Effect.zipRight(
    Metric.increment(Metrics.reservationsLost),
    Effect.logWarning(`quotaflow: bucket ${bucket.name}: reservation ${id} was no longer known to the backend (its state was lost)`)
  )

export const make = (backend: BackendService, ttlMs: number): Effect.Effect<ReservationTracker, never, Scope.Scope> =>
  Effect.gen(function*() {
    const tracker = new ReservationTracker(backend, yield* Effect.clock, ttlMs)
    yield* Effect.forkScoped(tracker.sweep)
    return tracker
  })
