/**
 * What the Effect service and the Promise adapter share: the configured buckets, their queues, and the steps
 * of one call (charge, wait for admission, settle or release). Lookups and charges are synchronous so the
 * Promise adapter can queue a caller without starting a fiber for it.
 *
 * @internal
 */
import { Clock, Context, Effect, Either, Layer } from "effect"
import { Backend, type BackendService, type BackendStatus, type Reservation } from "../Backend.js"
import { type BackendUnavailable, CapacityExceeded, type InvalidUsage, QueueOverflow, type ReservationNotFound, UnknownBucket } from "../Errors.js"
import * as Quota from "../Quota.js"
import { BucketQueue, makeWaiter, type Waiter } from "./bucketQueue.js"
import { capacityOf } from "./meters.js"

export interface Entry {
  readonly bucket: Quota.Bucket
  readonly queue: BucketQueue
  readonly capacities: ReadonlyArray<number>
}

export interface Admission {
  readonly entry: Entry
  readonly reservation: Reservation
  readonly waitedMs: number
}

/** How a caller waiting through the callback API hears back. */
export interface Listener {
  readonly onAdmit: (reservation: Reservation) => void
  readonly onFail: (error: CapacityExceeded | QueueOverflow | BackendUnavailable) => void
  readonly onClosed: () => void
}

export class Limiter {
  private readonly entries = new Map<string, Entry>()

  constructor(buckets: ReadonlyMap<string, Quota.Bucket>, readonly backend: BackendService) {
    for (const bucket of buckets.values()) {
      this.entries.set(bucket.name, {
        bucket,
        queue: new BucketQueue(bucket, backend),
        capacities: bucket.quotas.map((q) => capacityOf(q, bucket.safetyRatio, bucket.burstMultiplier))
      })
    }
  }

  get queues(): ReadonlyArray<BucketQueue> {
    return [...this.entries.values()].map((entry) => entry.queue)
  }

  entry(name: string): Either.Either<Entry, UnknownBucket> {
    const entry = this.entries.get(name)
    return entry === undefined ? Either.left(new UnknownBucket({ bucket: name, known: [...this.entries.keys()] })) : Either.right(entry)
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
    return Effect.gen(this, function*() {
      const start = yield* Clock.currentTimeMillis
      yield* this.checkWait(entry, charge, maxWaitMs)
      const reservation = yield* Effect.async<Reservation, CapacityExceeded | QueueOverflow | BackendUnavailable>((resume) => {
        const queued = this.enqueue(entry, charge, start + maxWaitMs, {
          onAdmit: (reservation) => resume(Effect.succeed(reservation)),
          onFail: (error) => resume(Effect.fail(error)),
          onClosed: () => resume(Effect.interrupt)
        })
        if (Either.isLeft(queued)) return resume(Effect.fail(queued.left))
        return Effect.sync(() => entry.queue.cancel(queued.right))
      })
      const now = yield* Clock.currentTimeMillis
      return { entry, reservation, waitedMs: now - start }
    })
  }

  settle(entry: Entry, id: string, actual: ReadonlyArray<number | undefined>): Effect.Effect<void, ReservationNotFound | BackendUnavailable> {
    return this.backend.settle(entry.bucket, id, actual).pipe(Effect.ensuring(Effect.sync(() => entry.queue.notify())))
  }

  release(entry: Entry, id: string): Effect.Effect<void, ReservationNotFound | BackendUnavailable> {
    return this.backend.release(entry.bucket, id).pipe(Effect.ensuring(Effect.sync(() => entry.queue.notify())))
  }

  close(): void {
    for (const queue of this.queues) queue.close()
  }
}

/** Decodes the configuration and starts one driver per bucket for the lifetime of the scope. */
export const make = (config: unknown) =>
  Effect.gen(function*() {
    const buckets = yield* Quota.decodeConfig(config)
    const limiter = new Limiter(buckets, yield* Backend)
    for (const queue of limiter.queues) yield* Effect.forkScoped(queue.run)
    yield* Effect.addFinalizer(() => Effect.sync(() => limiter.close()))
    return limiter
  })

/** The limiter core as a service, for the Promise adapter. */
export class LimiterCore extends Context.Tag("quotaflow/internal/Limiter")<LimiterCore, Limiter>() {}

export const layer = (config: unknown) => Layer.scoped(LimiterCore, make(config))
