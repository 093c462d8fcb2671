/**
 * One meter per quota algorithm: pure bookkeeping, time passed in as epoch milliseconds, no I/O.
 * The Lua scripts of the Redis backend port this file; keep the two in step.
 *
 * Every meter answers the same questions: when does an amount fit (`fitsAt`), book it (`book`), change a
 * booking's amount at settlement (`adjust`), take it back as if it never happened (`release`).
 * Bookings arrive in time order (the bucket enforces FIFO), which the window meters rely on.
 *
 * @internal
 */
import type { Quota } from "../Quota.js"

/** A booking inside one meter; what `adjust` and `release` need to find it again. */
export interface Hold {
  amount: number
  /** token bucket: the epoch at booking; sliding window: booking time; fixed window: window index. */
  readonly mark: number
  /** sliding window: whether the entry is still inside the log. */
  live: boolean
}

export interface Meter {
  /** The largest amount a single booking may take. */
  readonly capacity: number
  /** Earliest time `>= from` at which `amount` fits; `Infinity` when only a release can make room. */
  fitsAt(amount: number, from: number, now: number): number
  book(amount: number, at: number): Hold
  /** Sets a booking's amount (a refund lowers it, an excess raises it), as if it had been booked so. */
  adjust(hold: Hold, amount: number, now: number): void
  release(hold: Hold, now: number): void
  /** Amount in use at `now`, bookings in the future included. */
  used(now: number): number
  /** How long until an aggregate `demand`, booked piece by piece in FIFO order, would be admitted. */
  backlogWait(demand: number, now: number): number
}

/** The limit a quota runs at: the configured one scaled by the safety ratio, never below 1. */
export const effectiveLimit = (quota: Quota, safetyRatio: number): number =>
  Math.max(1, Math.floor(quota.limit * safetyRatio))

/** The largest single charge a quota can ever take. */
export const capacityOf = (quota: Quota, safetyRatio: number, burstMultiplier: number): number => {
  const limit = effectiveLimit(quota, safetyRatio)
  return quota.algorithm === "token-bucket" ? Math.max(1, Math.floor(limit * burstMultiplier)) : limit
}

/**
 * Token bucket as a GCRA: `tat` is the time at which every booked unit has drained, so the amount in use at
 * `now` is `(tat - now) / interval`. One number of state and one step of arithmetic per operation.
 *
 * Returning capacity is exact because the bucket is linear between idle gaps: subtracting a booking from
 * `tat` gives the state it would have had without it, unless the bucket ran empty after the booking (a later
 * booking found `tat <= at`). That gap absorbed the booking's debt, so the later state no longer depends on it
 * and nothing is subtracted; `epoch` counts the gaps to tell.
 */
class TokenBucket implements Meter {
  readonly capacity: number
  private readonly interval: number
  private readonly tolerance: number
  private tat = -Infinity
  private epoch = 0

  constructor(limit: number, windowMs: number, burstMultiplier: number) {
    this.capacity = Math.max(1, Math.floor(limit * burstMultiplier))
    this.interval = windowMs / limit
    this.tolerance = this.capacity * this.interval
  }

  fitsAt(amount: number, from: number): number {
    return Math.max(from, this.tat + amount * this.interval - this.tolerance)
  }

  book(amount: number, at: number): Hold {
    if (this.tat <= at) {
      this.epoch++
      this.tat = at
    }
    this.tat += amount * this.interval
    return { amount, mark: this.epoch, live: true }
  }

  adjust(hold: Hold, amount: number, now: number): void {
    const delta = amount - hold.amount
    hold.amount = amount
    if (delta > 0) {
      // An excess is charged now, like a new booking.
      if (this.tat <= now) {
        this.epoch++
        this.tat = now
      }
      this.tat += delta * this.interval
    } else if (delta < 0 && hold.mark === this.epoch) {
      this.tat = Math.max(now, this.tat + delta * this.interval)
    }
  }

  release(hold: Hold, now: number): void {
    this.adjust(hold, 0, now)
  }

  used(now: number): number {
    return Math.max(0, this.tat - now) / this.interval
  }

  backlogWait(demand: number, now: number): number {
    return Math.max(0, this.tat + demand * this.interval - this.tolerance - now)
  }
}

/**
 * Strict sliding window: in any interval of `windowMs` at most `limit` is admitted. A log of bookings in time
 * order; an entry at `t` counts for every window ending in `[t, t + windowMs)`.
 */
class SlidingWindow implements Meter {
  readonly capacity: number
  private log: Array<Hold> = []
  private head = 0
  private total = 0

  constructor(limit: number, private readonly windowMs: number) {
    this.capacity = limit
  }

  private prune(now: number): void {
    const horizon = now - this.windowMs
    while (this.head < this.log.length && this.log[this.head].mark <= horizon) {
      const entry = this.log[this.head++]
      this.total -= entry.amount
      entry.live = false
    }
    if (this.head > 1024 && this.head * 2 > this.log.length) {
      this.log = this.log.slice(this.head)
      this.head = 0
    }
  }

  fitsAt(amount: number, from: number, now: number): number {
    this.prune(now)
    const horizon = from - this.windowMs
    let inWindow = this.total
    let i = this.head
    for (; i < this.log.length && this.log[i].mark <= horizon; i++) inWindow -= this.log[i].amount
    if (inWindow + amount <= this.capacity) return from
    for (; i < this.log.length; i++) {
      inWindow -= this.log[i].amount
      if (inWindow + amount <= this.capacity) return Math.max(from, this.log[i].mark + this.windowMs)
    }
    // Only an amount above capacity gets here, and the bucket rejects those before asking.
    return Infinity
  }

  book(amount: number, at: number): Hold {
    const entry: Hold = { amount, mark: at, live: true }
    this.log.push(entry)
    this.total += amount
    return entry
  }

  adjust(hold: Hold, amount: number, now: number): void {
    this.prune(now)
    if (hold.live) this.total += amount - hold.amount
    hold.amount = amount
  }

  release(hold: Hold, now: number): void {
    this.adjust(hold, 0, now)
  }

  used(now: number): number {
    this.prune(now)
    return this.total
  }

  backlogWait(demand: number, now: number): number {
    if (demand <= 0) return 0
    const fullWindows = Math.ceil(demand / this.capacity) - 1
    const last = demand - fullWindows * this.capacity
    return this.fitsAt(last, now, now) - now + fullWindows * this.windowMs
  }
}

/** Windows aligned to the epoch (`floor(t / windowMs)`): what daily quotas do. */
class FixedWindow implements Meter {
  readonly capacity: number
  private readonly windows = new Map<number, number>()

  constructor(limit: number, private readonly windowMs: number) {
    this.capacity = limit
  }

  private index(t: number): number {
    return Math.floor(t / this.windowMs)
  }

  private usedIn(index: number): number {
    return this.windows.get(index) ?? 0
  }

  private prune(now: number): void {
    const current = this.index(now)
    for (const index of this.windows.keys()) if (index < current) this.windows.delete(index)
  }

  fitsAt(amount: number, from: number, now: number): number {
    this.prune(now)
    const first = this.index(from)
    for (let index = first; ; index++) {
      if (this.usedIn(index) + amount <= this.capacity) return index === first ? from : index * this.windowMs
    }
  }

  book(amount: number, at: number): Hold {
    const index = this.index(at)
    this.windows.set(index, this.usedIn(index) + amount)
    return { amount, mark: index, live: true }
  }

  adjust(hold: Hold, amount: number, now: number): void {
    this.prune(now)
    if (hold.mark >= this.index(now)) this.windows.set(hold.mark, this.usedIn(hold.mark) + amount - hold.amount)
    hold.amount = amount
  }

  release(hold: Hold, now: number): void {
    this.adjust(hold, 0, now)
  }

  used(now: number): number {
    this.prune(now)
    return this.usedIn(this.index(now))
  }

  backlogWait(demand: number, now: number): number {
    this.prune(now)
    const first = this.index(now)
    const lastBooked = Math.max(first, ...this.windows.keys())
    let left = demand
    for (let index = first; index <= lastBooked; index++) {
      const free = Math.max(0, this.capacity - this.usedIn(index))
      if (left <= free) return index === first ? 0 : index * this.windowMs - now
      left -= free
    }
    return (lastBooked + Math.ceil(left / this.capacity)) * this.windowMs - now
  }
}

/** At most `limit` in flight; a booking holds its amount until it is settled or released. */
class Concurrency implements Meter {
  private inFlight = 0

  constructor(readonly capacity: number) {}

  fitsAt(amount: number, from: number): number {
    return this.inFlight + amount <= this.capacity ? from : Infinity
  }

  book(amount: number): Hold {
    this.inFlight += amount
    return { amount, mark: 0, live: true }
  }

  /** A settled call is no longer in flight, whatever it used. */
  adjust(hold: Hold): void {
    this.release(hold)
  }

  release(hold: Hold): void {
    if (hold.live) this.inFlight -= hold.amount
    hold.live = false
  }

  used(): number {
    return this.inFlight
  }

  backlogWait(demand: number): number {
    return this.inFlight + demand <= this.capacity ? 0 : Infinity
  }
}

/** The meter for a quota, at the bucket's safety ratio and burst multiplier. */
export const makeMeter = (quota: Quota, safetyRatio: number, burstMultiplier: number): Meter => {
  const limit = effectiveLimit(quota, safetyRatio)
  switch (quota.algorithm) {
    case "token-bucket":
      return new TokenBucket(limit, quota.windowMs, burstMultiplier)
    case "sliding-window":
      return new SlidingWindow(limit, quota.windowMs)
    case "fixed-window":
      return new FixedWindow(limit, quota.windowMs)
    case "concurrency":
      return new Concurrency(limit)
  }
}
