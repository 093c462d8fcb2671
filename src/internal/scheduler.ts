/**
 * The scheduler of one bucket in this process: a FIFO of waiting callers and one driver fiber that books the
 * head at the backend as soon as its charge fits, then the next, and so on.
 *
 * Only the head is ever booked, and only when it fits now, so capacity that comes back early (a refund at
 * settlement, a release on interruption) reaches the callers already waiting instead of freezing bookings
 * made in advance. A waiting caller costs a queue entry: no fiber and no timer of its own; the driver sleeps
 * until the head fits or a deadline passes, and is woken when the queue or the capacity changes.
 *
 * On a backend shared with other processes (`SharedLine`), the head stands in the bucket's line there, so that
 * the oldest waiter of any process goes first, and the driver is woken when another process makes room.
 *
 * The hand-over is synchronous: the driver takes a ticket out of the queue and calls its `admit` in one step,
 * so a reservation is always either in a ticket's hands or given back by the driver (a ticket cancelled
 * while the backend answered), never in between.
 *
 * @internal
 */
import { Effect, Either } from "effect"
import type { BackendService, LocalBucket, Reservation, SharedLine } from "../Backend.js"
import { type BackendUnavailable, CapacityExceeded, LimiterClosed, QueueOverflow } from "../Errors.js"
import type { Bucket } from "../Quota.js"
import { DeadlineHeap } from "./deadlineHeap.js"
import { type Linked, LinkedList } from "./linkedList.js"

/** A caller waiting for admission: what it costs, until when it waits, and how it hears back. */
export interface Ticket extends Linked<Ticket> {
  readonly charge: ReadonlyArray<number>
  /** Epoch milliseconds (the scheduler's clock) after which the caller gives up; `Infinity` for none. */
  deadline: number
  /** Takes the booking: from here on the ticket's owner settles or releases it. */
  readonly admit: (reservation: Reservation) => void
  readonly fail: (error: CapacityExceeded | BackendUnavailable | LimiterClosed) => void
  queued: boolean
  /** Presented to a shared line (see `SharedLine`): it holds a place there until admitted or it leaves. */
  placed?: boolean
}

export class Scheduler {
  /** The waiting callers, in arrival order. */
  private readonly queue = new LinkedList<Ticket>()
  private closed = false
  private readonly deadlines = new DeadlineHeap<Ticket>()
  /** Sum of the queued charges per quota: what stands ahead of a newcomer. */
  readonly demand: Array<number>
  private readonly wake = Effect.unsafeMakeLatch(false)
  /** A concurrency quota: settling gives its slot back even when the charge is kept. */
  private hasSlots: boolean
  /** Set when the backend's state lives in this process: then booking needs no effect. */
  readonly local: LocalBucket | undefined
  /** Set when the backend keeps a line across processes: this queue's head stands in it. */
  private readonly line: SharedLine | undefined
  /** Tickets that gave up a place in the shared line: the driver tells the backend. */
  private readonly leaving: Array<Ticket> = []
  readonly unwatch: () => void
  /** The time deadlines are kept in: the local backend's own, else the limiter's clock. */
  readonly now: () => number

  constructor(public bucket: Bucket, private readonly backend: BackendService, clockNow: () => number) {
    this.demand = bucket.quotas.map(() => 0)
    this.hasSlots = bucket.quotas.some((quota) => quota.algorithm === "concurrency")
    this.local = backend.local?.bucket(bucket)
    this.now = backend.local?.now ?? clockNow
    this.line = backend.line
    // Room another process made (a settle, a release, the oldest waiter admitted) wakes the driver.
    this.unwatch = this.line?.watch(bucket, () => this.notify()) ?? (() => {})
  }

  /**
   * Books `charge` at once when nobody waits and the backend's state is in this process; `undefined` when the
   * caller has to queue (it waits, someone is ahead, the backend is shared, or the scheduler is closed).
   */
  tryNow(charge: ReadonlyArray<number>): Reservation | undefined {
    if (this.queue.size > 0 || this.local === undefined || this.closed) return undefined
    const outcome = this.local.reserve(charge, this.now(), 0)
    return outcome._tag === "Reserved" ? { id: outcome.id, bucket: this.bucket.name, at: outcome.at } : undefined
  }

  /** Capacity came back (a settle or a release): let the driver look again, unless nothing can have changed. */
  freed(actual: ReadonlyArray<number | undefined> | undefined): void {
    // Keeping the charge frees nothing but a concurrency slot.
    if (actual === undefined || this.hasSlots || actual.some((amount) => amount !== undefined)) this.notify()
  }

  /** Runs under the same quotas at other limits from now on (see `Learning`). */
  retune(bucket: Bucket): void {
    this.bucket = bucket
    this.hasSlots = bucket.quotas.some((quota) => quota.algorithm === "concurrency")
    this.local?.retune(bucket)
    this.notify()
  }

  get length(): number {
    return this.queue.size
  }

  /** Queues a ticket; a closed scheduler, or a queue of `maxQueue` tickets, refuses it. */
  enqueue(ticket: Ticket): LimiterClosed | QueueOverflow | undefined {
    if (this.closed) return new LimiterClosed({})
    if (this.queue.size >= this.bucket.maxQueue) return new QueueOverflow({ bucket: this.bucket.name, maxQueue: this.bucket.maxQueue })
    ticket.queued = true
    this.queue.push(ticket)
    ticket.charge.forEach((amount, i) => (this.demand[i] += amount))
    if (ticket.deadline !== Infinity) this.deadlines.push(ticket.deadline, ticket)
    // Only the head is ever booked: a ticket behind it changes nothing the driver waits for, unless it brings
    // a deadline to keep.
    if (ticket === this.queue.head || ticket.deadline !== Infinity) this.notify()
    return undefined
  }

  /** Takes a ticket out of the queue; false when it was no longer waiting (admitted or failed). */
  cancel(ticket: Ticket): boolean {
    if (!ticket.queued) return false
    const wasHead = ticket === this.queue.head
    this.unlink(ticket)
    if (wasHead) this.notify()
    return true
  }

  /** The queue or the capacity changed: let the driver look again, if anyone is waiting for it to. */
  notify(): void {
    if (this.queue.size > 0 || this.leaving.length > 0) this.wake.unsafeOpen()
  }

  /** Shuts the scheduler: every waiting caller is told, and nothing is admitted any more. */
  close(): void {
    this.closed = true
    this.unwatch()
    while (this.queue.head !== undefined) {
      const ticket = this.queue.head
      this.unlink(ticket)
      ticket.fail(new LimiterClosed({}))
    }
  }

  /** Takes a ticket out of the queue; unless it is admitted, its place in a shared line goes too. */
  private unlink(ticket: Ticket, admitted = false): void {
    ticket.queued = false
    this.queue.remove(ticket)
    ticket.charge.forEach((amount, i) => (this.demand[i] -= amount))
    if (ticket.placed === true && !admitted) {
      this.leaving.push(ticket)
      this.wake.unsafeOpen()
    }
  }

  /** Tells the shared line of the places given up. */
  readonly leaveLine: Effect.Effect<void> = Effect.suspend(() => {
    const line = this.line
    if (line === undefined || this.leaving.length === 0) return Effect.void
    return Effect.forEach(this.leaving.splice(0), (ticket) => line.leave(this.bucket, ticket), { discard: true })
  })

  /**
   * Fails the tickets whose deadline has passed, once the head has had its look at the backend (a deadline of
   * now, `maxWait: 0`, means "only if it fits now", not "never"); returns the next deadline.
   */
  private expire(now: number, headWaitMs: number): number {
    for (;;) {
      const next = this.deadlines.peek()
      if (next === undefined) return Infinity
      if (!next.queued) {
        this.deadlines.pop()
        continue
      }
      if (next.deadline >= now) return next.deadline
      this.deadlines.pop()
      const wasHead = next === this.queue.head
      this.unlink(next)
      const retryAfterMs = wasHead && headWaitMs !== Infinity ? headWaitMs : undefined
      next.fail(new CapacityExceeded({ bucket: this.bucket.name, reason: "max-wait", ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }))
    }
  }

  /** Admits heads while they fit; returns how long until the head may fit or a deadline passes. */
  private readonly drain: Effect.Effect<number> = Effect.gen(this, function*() {
    for (;;) {
      yield* this.leaveLine
      const head = this.queue.head
      if (head === undefined) return Infinity
      if (this.line !== undefined) head.placed = true
      const result = yield* Effect.either(this.backend.reserve(this.bucket, head.charge, 0, head))
      if (!head.queued) {
        // Cancelled while the backend answered: a booking made for it goes back.
        if (Either.isRight(result) && result.right._tag === "Reserved") {
          yield* Effect.ignore(this.backend.release(this.bucket, result.right.reservation.id))
        }
        continue
      }
      if (Either.isLeft(result)) {
        this.unlink(head)
        head.fail(result.left)
      } else if (result.right._tag === "Reserved") {
        this.unlink(head, true)
        head.admit(result.right.reservation)
      } else {
        const now = this.now()
        const nextDeadline = this.expire(now, result.right.retryAfterMs)
        if (this.queue.head !== head) continue
        // A wake-up from the shared line may be lost: it is asked again every pollMs all the same.
        return Math.min(result.right.retryAfterMs, nextDeadline - now, this.line?.pollMs ?? Infinity)
      }
    }
  })

  /** `drain` when the backend's state is in this process: one synchronous pass, no effect per admission. */
  private drainLocal(local: LocalBucket): number {
    for (;;) {
      const head = this.queue.head
      if (head === undefined) return Infinity
      const now = this.now()
      const outcome = local.reserve(head.charge, now, 0)
      if (outcome._tag === "Wait") {
        const nextDeadline = this.expire(now, outcome.retryAfterMs)
        if (this.queue.head !== head) continue
        return Math.min(outcome.retryAfterMs, nextDeadline - now)
      }
      this.unlink(head)
      if (outcome._tag === "Reserved") head.admit({ id: outcome.id, bucket: this.bucket.name, at: outcome.at })
      else head.fail(new CapacityExceeded({ bucket: this.bucket.name, reason: "too-large", metric: outcome.metric }))
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
