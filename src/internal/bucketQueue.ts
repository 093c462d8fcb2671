/**
 * The waiting room of one bucket in this process: a FIFO of callers and one driver fiber that books the head
 * at the backend as soon as its charge fits, then the next, and so on.
 *
 * Only the head is ever booked, and only when it fits now, so capacity that comes back early (a refund at
 * settlement, a release on interruption) reaches the callers already waiting instead of freezing bookings
 * made in advance. A waiting caller costs a queue entry: no fiber and no timer of its own; the driver sleeps
 * until the head fits or a deadline passes, and is woken when the queue or the capacity changes.
 *
 * @internal
 */
import { Effect, Either } from "effect"
import type { BackendService, Reservation } from "../Backend.js"
import { type BackendUnavailable, CapacityExceeded } from "../Errors.js"
import type { Bucket } from "../Quota.js"
import type { BucketState } from "./bucketState.js"
import { DeadlineHeap } from "./deadlineHeap.js"
import type { LocalState } from "./localState.js"

export interface Waiter {
  readonly charge: ReadonlyArray<number>
  /** Epoch milliseconds after which the caller gives up; `Infinity` for none. */
  readonly deadline: number
  readonly onAdmit: (reservation: Reservation) => void
  readonly onFail: (error: CapacityExceeded | BackendUnavailable) => void
  /** The limiter shut down while the caller waited. */
  readonly onClosed: () => void
  prev: Waiter | undefined
  next: Waiter | undefined
  queued: boolean
}

export const makeWaiter = (
  charge: ReadonlyArray<number>,
  deadline: number,
  onAdmit: Waiter["onAdmit"],
  onFail: Waiter["onFail"],
  onClosed: Waiter["onClosed"]
): Waiter => ({ charge, deadline, onAdmit, onFail, onClosed, prev: undefined, next: undefined, queued: false })

export class BucketQueue {
  private head: Waiter | undefined
  private tail: Waiter | undefined
  private count = 0
  private readonly deadlines = new DeadlineHeap<Waiter>()
  /** Sum of the queued charges per quota: what stands ahead of a newcomer. */
  readonly demand: Array<number>
  private readonly wake = Effect.unsafeMakeLatch(false)
  /** A concurrency quota: settling gives its slot back even when the charge is kept. */
  private readonly hasSlots: boolean
  /** Set when the backend's state lives in this process: then booking needs no effect. */
  private readonly local: BucketState | undefined
  /** The time deadlines are kept in: the local backend's own, else the limiter's clock. */
  readonly now: () => number

  constructor(
    public bucket: Bucket,
    private readonly backend: BackendService,
    clockNow: () => number,
    local: LocalState | undefined
  ) {
    this.demand = bucket.quotas.map(() => 0)
    this.hasSlots = bucket.quotas.some((quota) => quota.algorithm === "concurrency")
    this.local = local?.stateOf(bucket)
    this.now = local?.now ?? clockNow
  }

  /**
   * Books `charge` at once when nobody waits and the backend's state is in this process; `undefined` when the
   * caller has to queue (it waits, someone is ahead, or the backend is shared).
   */
  tryNow(charge: ReadonlyArray<number>): Reservation | undefined {
    if (this.count > 0 || this.local === undefined) return undefined
    const outcome = this.local.reserve(charge, this.now(), 0)
    return outcome._tag === "Reserved" ? { id: outcome.id, bucket: this.bucket.name, at: outcome.at } : undefined
  }

  /**
   * Settles at once when the backend's state is in this process (false: `id` was not open), and lets the
   * driver look again; `undefined` when the backend has to be asked.
   */
  settleNow(id: string, actual: ReadonlyArray<number | undefined>): boolean | undefined {
    if (this.local === undefined) return undefined
    const settled = this.local.settle(id, actual, this.now())
    // Keeping the charge frees nothing but a concurrency slot: then the driver has no reason to look again.
    if (this.hasSlots || actual.some((amount) => amount !== undefined)) this.notify()
    return settled
  }

  /** Runs under the same quotas at other limits from now on (see `Limiter.learn`). */
  retune(bucket: Bucket): void {
    this.bucket = bucket
    this.local?.retune(bucket)
    this.notify()
  }

  get length(): number {
    return this.count
  }

  enqueue(waiter: Waiter): void {
    waiter.queued = true
    waiter.prev = this.tail
    if (this.tail === undefined) this.head = waiter
    else this.tail.next = waiter
    this.tail = waiter
    this.count++
    waiter.charge.forEach((amount, i) => (this.demand[i] += amount))
    if (waiter.deadline !== Infinity) this.deadlines.push(waiter.deadline, waiter)
    // Only the head is ever booked: a waiter behind it changes nothing the driver waits for, unless it brings
    // a deadline to keep.
    if (waiter === this.head || waiter.deadline !== Infinity) this.notify()
  }

  /** Takes a waiter out of the queue; false when it was no longer waiting (admitted or failed). */
  cancel(waiter: Waiter): boolean {
    if (!waiter.queued) return false
    const wasHead = waiter === this.head
    this.unlink(waiter)
    if (wasHead) this.notify()
    return true
  }

  /** The queue or the capacity changed: let the driver look again, if anyone is waiting for it to. */
  notify(): void {
    if (this.count > 0) this.wake.unsafeOpen()
  }

  /** Shuts the queue: every waiting caller is told, and nothing is admitted any more. */
  close(): void {
    while (this.head !== undefined) {
      const waiter = this.head
      this.unlink(waiter)
      waiter.onClosed()
    }
  }

  private unlink(waiter: Waiter): void {
    waiter.queued = false
    if (waiter.prev === undefined) this.head = waiter.next
    else waiter.prev.next = waiter.next
    if (waiter.next === undefined) this.tail = waiter.prev
    else waiter.next.prev = waiter.prev
    waiter.prev = waiter.next = undefined
    this.count--
    waiter.charge.forEach((amount, i) => (this.demand[i] -= amount))
  }

  /** Fails the waiters whose deadline has passed; returns the next deadline. */
  private expire(now: number): number {
    for (;;) {
      const next = this.deadlines.peek()
      if (next === undefined) return Infinity
      if (!next.queued) {
        this.deadlines.pop()
        continue
      }
      // A deadline of exactly now still gets its one look at the backend (maxWait: 0 means "only if it fits now").
      if (next.deadline >= now) return next.deadline
      this.deadlines.pop()
      this.unlink(next)
      next.onFail(new CapacityExceeded({ bucket: this.bucket.name, reason: "max-wait", retryAfterMs: 0 }))
    }
  }

  /** Admits heads while they fit; returns how long until the head may fit or a deadline passes. */
  private readonly drain: Effect.Effect<number> = Effect.gen(this, function*() {
    for (;;) {
      const now = this.now()
      const nextDeadline = this.expire(now)
      const head = this.head
      if (head === undefined) return Infinity
      const result = yield* Effect.either(this.backend.reserve(this.bucket, head.charge, 0))
      if (!head.queued) {
        // Cancelled while the backend answered: a booking made for it goes back.
        if (Either.isRight(result) && result.right._tag === "Reserved") {
          yield* Effect.ignore(this.backend.release(this.bucket, result.right.reservation.id))
        }
        continue
      }
      if (Either.isLeft(result)) {
        this.unlink(head)
        head.onFail(result.left)
      } else if (result.right._tag === "Reserved") {
        this.unlink(head)
        head.onAdmit(result.right.reservation)
      } else {
        // A backend shared with other processes is asked again every pollMs: capacity they free wakes nobody here.
        return Math.min(result.right.retryAfterMs, nextDeadline - now, this.backend.pollMs ?? Infinity)
      }
    }
  })

  /** `drain` when the backend's state is in this process: one synchronous pass, no effect per admission. */
  private drainLocal(local: BucketState): number {
    for (;;) {
      const now = this.now()
      const nextDeadline = this.expire(now)
      const head = this.head
      if (head === undefined) return Infinity
      const outcome = local.reserve(head.charge, now, 0)
      if (outcome._tag === "Wait") return Math.min(outcome.retryAfterMs, nextDeadline - now)
      this.unlink(head)
      if (outcome._tag === "Reserved") head.onAdmit({ id: outcome.id, bucket: this.bucket.name, at: outcome.at })
      else head.onFail(new CapacityExceeded({ bucket: this.bucket.name, reason: "too-large", metric: outcome.metric }))
    }
  }

  /** The driver: runs for the lifetime of the limiter. */
  readonly run: Effect.Effect<never> = Effect.gen(this, function*() {
    for (;;) {
      this.wake.unsafeClose()
      const delay = this.local === undefined ? yield* this.drain : this.drainLocal(this.local)
      if (delay === Infinity) yield* this.wake.await
      else yield* Effect.raceFirst(this.wake.await, Effect.sleep(Math.max(1, Math.ceil(delay))))
    }
  })
}
