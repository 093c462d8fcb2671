/**
 * One meter per quota algorithm: pure bookkeeping, time passed in as epoch milliseconds, no I/O.
 * The Redis backend's Lua library (`src/internal/redis/lua/meters.lua`) ports this file; keep the two in step.
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
  /** token bucket: the epoch at booking (its time while pending); sliding window: booking time; fixed window: window index. */
  mark: number
  /** sliding window: still inside the log; token bucket: charged (not pending); concurrency: still held. */
  live: boolean
  /** token bucket: everything charged up to and including this booking, and when it was charged. */
  after: number
  chargedAt: number
}

export interface Meter {
  /** The largest amount a single booking may take. */
  readonly capacity: number
  /**
   * Runs at another limit from now on (a provider reported it). What is booked stays booked: a token bucket
   * keeps the same share of its window in use, the windows keep their counts. Only a token bucket takes another
   * window and skew (the others ignore them).
   */
  retune(limit: number, windowMs: number, skew: number): void
  /**
   * Brings the meter up to `now`: a token bucket charges the bookings whose time has come, at the limit in force
   * now. Every operation on a bucket starts so (as the Lua library does), so that a booking is never charged at a
   * limit set after its time.
   */
  advance(now: number): void
  /** Earliest time `>= from` at which `amount` fits; `Infinity` when only a release can make room. */
  fitsAt(amount: number, from: number, now: number): number
  /** Books `amount` at `at` (never before `now`). */
  book(amount: number, at: number, now: number): Hold
  /** Sets a booking's amount (a refund lowers it, an excess raises it), as if it had been booked so. */
  adjust(hold: Hold, amount: number, now: number): void
  release(hold: Hold, now: number): void
  /** Raises the amount in use at `now` to at least `used` (what the provider reports; others share the key). */
  tighten(used: number, now: number): void
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
 * Token bucket as a GCRA: `tat` is the time at which every unit booked so far has drained, so the amount in use
 * at `now` is `(tat - now) / interval`. One step of arithmetic per booking.
 *
 * `tat` is kept in two parts: `since`, when the bucket last ran empty, and `owed`, the time booked since then.
 * Adding an interval to an epoch-millisecond `tat` directly would round it to the double's step at 1.8e12
 * (2^-12 ms) on every booking: at 20,000 bookings per second of 1 unit (0.05 ms each) that is 0.1% of the
 * rate, lost or, rounding the other way, overrun. `owed` is small, so its sum stays exact to far less.
 *
 * Bookings made for a time still in the future wait in `pending` and are folded into `tat` only when their
 * time comes: folded early, their debt would seem to drain before they start, and a refund in between would
 * hand out capacity the provider never gave back. `projected` is `tat` with the pending bookings folded in,
 * which is what a newcomer must fit behind.
 *
 * A refund (the provider saw the call and gives back what it did not use) lowers `tat`, floored at empty, as
 * providers do; it is skipped when the bucket ran empty after the booking (a later booking found
 * `tat <= at`: the gap absorbed the booking's debt), which `epoch` counts.
 *
 * A release (the call never ran) must leave the state it would have had without the booking:
 * `max(tat - amount, G)`, where `G` is what the charges after it alone would give. `G` is bounded above by the
 * latest charge time plus everything charged after the booking. When every later charge came at the booking's
 * own instant (an interrupted waiter) the chain is linear and the subtraction alone is exact; otherwise the
 * bound errs on the safe side and the rest drains with time.
 */
class TokenBucket implements Meter {
  capacity = 0
  private windowMs = 0
  private skew = 0
  private interval = 0
  private tolerance = 0
  private since = -Infinity
  private owed = 0
  private epoch = 0
  private pending: Array<Hold> = []
  private projected = -Infinity
  /** Everything ever charged, in units, and when the latest charge was. */
  private charged = 0
  private lastChargeAt = -Infinity

  constructor(limit: number, windowMs: number, private readonly burstMultiplier: number, skew: number) {
    this.retune(limit, windowMs, skew)
  }

  retune(limit: number, windowMs: number, skew: number): void {
    // The state is the share of a window in use, kept as time: another window (learnt from the provider)
    // scales that time, or callers would wait out the refill of the window first guessed.
    if (this.windowMs > 0 && windowMs !== this.windowMs) this.owed *= windowMs / this.windowMs
    this.windowMs = windowMs
    this.skew = skew
    this.capacity = Math.max(1, Math.floor(limit * this.burstMultiplier))
    this.interval = this.windowMs / limit
    this.tolerance = this.capacity * this.interval - this.skew
    this.project()
  }

  private get tat(): number {
    return this.since + this.owed
  }

  /** Sets `tat` to `max(tat + delta, floor)`. */
  private owe(delta: number, floor: number): void {
    if (this.tat + delta > floor) this.owed += delta
    else {
      this.since = floor
      this.owed = 0
    }
  }

  /** Adds `hold.amount` to the bucket at `at` and stamps the hold with its epoch. */
  private charge(hold: Hold, at: number): void {
    if (this.tat <= at) {
      this.epoch++
      this.since = at
      this.owed = 0
    }
    this.owed += hold.amount * this.interval
    this.charged += hold.amount
    this.lastChargeAt = Math.max(this.lastChargeAt, at)
    hold.mark = this.epoch
    hold.after = this.charged
    hold.chargedAt = at
    hold.live = true
  }

  advance(now: number): void {
    let folded = 0
    while (folded < this.pending.length && this.pending[folded].mark <= now) {
      const hold = this.pending[folded++]
      this.charge(hold, hold.mark)
    }
    if (folded > 0) {
      this.pending = this.pending.slice(folded)
      // The same sum, but added in another order: keep `projected` exactly what the folded state gives.
      this.project()
    }
  }

  private project(): void {
    this.projected = this.pending.reduce((tat, hold) => Math.max(tat, hold.mark) + hold.amount * this.interval, this.tat)
  }

  fitsAt(amount: number, from: number, now: number): number {
    this.advance(now)
    return Math.max(from, this.projected + amount * this.interval - this.tolerance)
  }

  /** A booking whose time has come is charged at once; a later one waits in `pending`. */
  book(amount: number, at: number, now: number): Hold {
    this.advance(now)
    const hold: Hold = { amount, mark: at, live: false, after: 0, chargedAt: at }
    if (at <= now) this.charge(hold, at)
    else this.pending.push(hold)
    this.project()
    return hold
  }

  adjust(hold: Hold, amount: number, now: number): void {
    this.advance(now)
    const delta = amount - hold.amount
    if (!hold.live) {
      // Still pending: nothing was charged yet, so it simply books the new amount.
      hold.amount = amount
      if (amount === 0) this.pending = this.pending.filter((h) => h !== hold)
    } else if (delta > 0) {
      // An excess is charged now, like a new booking.
      this.charge({ amount: delta, mark: now, live: false, after: 0, chargedAt: now }, now)
      hold.amount = amount
    } else if (delta < 0) {
      if (hold.mark === this.epoch) this.owe(delta * this.interval, now)
      hold.amount = amount
    }
    this.project()
  }

  release(hold: Hold, now: number): void {
    this.advance(now)
    if (!hold.live) {
      this.adjust(hold, 0, now)
      return
    }
    // Charges since the hold, all at its own instant, stack on it linearly: subtracting it is exact then.
    const later = this.charged - hold.after
    const rest = later > 0 && this.lastChargeAt > hold.chargedAt
      ? Math.min(this.tat, this.lastChargeAt + later * this.interval)
      : -Infinity
    this.owe(-hold.amount * this.interval, rest)
    hold.amount = 0
    hold.live = false
    this.project()
  }

  tighten(used: number, now: number): void {
    this.advance(now)
    const current = Math.max(0, this.tat - now) / this.interval
    if (used > current) this.charge({ amount: used - current, mark: now, live: false, after: 0, chargedAt: now }, now)
    this.project()
  }

  used(now: number): number {
    this.advance(now)
    return Math.max(0, this.projected - now) / this.interval
  }

  backlogWait(demand: number, now: number): number {
    this.advance(now)
    return Math.max(0, this.projected + demand * this.interval - this.tolerance - now)
  }
}

/**
 * Strict sliding window: in any interval of `windowMs` at most `limit` is admitted. A log of bookings in time
 * order; an entry at `t` counts for every window ending in `[t, t + windowMs)`.
 */
class SlidingWindow implements Meter {
  capacity: number
  private log: Array<Hold> = []
  private head = 0
  private total = 0

  constructor(limit: number, private readonly windowMs: number) {
    this.capacity = limit
  }

  retune(limit: number): void {
    this.capacity = limit
  }

  advance(now: number): void {
    this.prune(now)
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
    const entry: Hold = { amount, mark: at, live: true, after: 0, chargedAt: at }
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

  /** What others used is logged as one entry, no earlier than the last booking so the log stays in order. */
  tighten(used: number, now: number): void {
    this.prune(now)
    let current = 0
    for (let i = this.head; i < this.log.length && this.log[i].mark <= now; i++) current += this.log[i].amount
    const last = this.log.length > this.head ? this.log[this.log.length - 1].mark : now
    if (used > current) this.book(used - current, Math.max(now, last))
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
  capacity: number
  private readonly windows = new Map<number, number>()

  constructor(limit: number, private readonly windowMs: number) {
    this.capacity = limit
  }

  retune(limit: number): void {
    this.capacity = limit
  }

  advance(): void {}

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
    return { amount, mark: index, live: true, after: 0, chargedAt: at }
  }

  adjust(hold: Hold, amount: number, now: number): void {
    this.prune(now)
    if (hold.mark >= this.index(now)) this.windows.set(hold.mark, this.usedIn(hold.mark) + amount - hold.amount)
    hold.amount = amount
  }

  release(hold: Hold, now: number): void {
    this.adjust(hold, 0, now)
  }

  tighten(used: number, now: number): void {
    this.prune(now)
    const index = this.index(now)
    this.windows.set(index, Math.max(this.usedIn(index), used))
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

  constructor(public capacity: number) {}

  retune(limit: number): void {
    this.capacity = limit
  }

  advance(): void {}

  fitsAt(amount: number, from: number): number {
    return this.inFlight + amount <= this.capacity ? from : Infinity
  }

  book(amount: number): Hold {
    this.inFlight += amount
    return { amount, mark: 0, live: true, after: 0, chargedAt: 0 }
  }

  /** A settled call is no longer in flight, whatever it used. */
  adjust(hold: Hold): void {
    this.release(hold)
  }

  release(hold: Hold): void {
    if (hold.live) this.inFlight -= hold.amount
    hold.live = false
  }

  /** Providers report no calls in flight: nothing to learn. */
  tighten(): void {}

  used(): number {
    return this.inFlight
  }

  backlogWait(demand: number): number {
    return this.inFlight + demand <= this.capacity ? 0 : Infinity
  }
}

/**
 * The meter for a quota, at the bucket's safety ratio and burst multiplier. `skew` is how much later than
 * others a call may reach the provider (network jitter): a token bucket keeps that much refill in hand and a
 * sliding window counts each entry that much longer, so the provider never sees two calls closer together
 * than they were booked.
 */
export const makeMeter = (quota: Quota, safetyRatio: number, burstMultiplier: number, skew: number): Meter => {
  const limit = effectiveLimit(quota, safetyRatio)
  switch (quota.algorithm) {
    case "token-bucket":
      return new TokenBucket(limit, quota.windowMs, burstMultiplier, skew)
    case "sliding-window":
      return new SlidingWindow(limit, quota.windowMs + skew)
    case "fixed-window":
      return new FixedWindow(limit, quota.windowMs)
    case "concurrency":
      return new Concurrency(limit)
  }
}
