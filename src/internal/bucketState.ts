/**
 * The state of one bucket: a meter per quota and the open reservations. Pure bookkeeping; `now` is passed in.
 *
 * A reservation is booked at the earliest time its charge fits every quota, never before an earlier booking
 * (FIFO across the bucket), and holds its charge on each quota until it is settled or released.
 *
 * @internal
 */
import type { BackendStatus, LocalBucket, LocalOutcome } from "../Backend.js"
import type { Bucket } from "../Quota.js"
import { effectiveLimit, type Hold, makeMeter, type Meter } from "./meters.js"

export type ReserveOutcome = LocalOutcome

interface Open {
  readonly at: number
  readonly holds: ReadonlyArray<Hold | undefined>
}

/** Longest chain of "fits on this quota, then not on that one" the earliest-time search follows. */
const MAX_ROUNDS = 64

export class BucketState implements LocalBucket {
  private readonly meters: ReadonlyArray<Meter>
  private readonly open = new Map<string, Open>()
  private lastBooked = -Infinity
  /** Nothing is admitted before this time (a provider's retry hint). */
  private blockedUntil = -Infinity
  private nextId = 1

  constructor(public bucket: Bucket) {
    this.meters = bucket.quotas.map((q) => makeMeter(q, bucket.safetyRatio, bucket.burstMultiplier, bucket.skew))
  }

  /**
   * Runs under `bucket`, the same quotas at other limits (a provider reported them; token buckets may take
   * other windows too); what is booked stays booked.
   */
  retune(bucket: Bucket): void {
    // A token bucket may take another window too: its state is a time, the share of a window in use.
    const same = (a: Bucket["quotas"][number], b: Bucket["quotas"][number] | undefined) =>
      b !== undefined && a.metric === b.metric && a.algorithm === b.algorithm &&
      (a.windowMs === b.windowMs || a.algorithm === "token-bucket")
    // Another shape of quotas under the same name is not a retuning: this state keeps what it was made for.
    if (bucket.quotas.length !== this.bucket.quotas.length || !bucket.quotas.every((q, i) => same(q, this.bucket.quotas[i]))) return
    bucket.quotas.forEach((quota, i) => this.meters[i].retune(effectiveLimit(quota, bucket.safetyRatio), quota.windowMs, bucket.skew))
    this.bucket = bucket
  }

  private advance(now: number): void {
    for (const meter of this.meters) meter.advance(now)
  }

  /** Earliest time at or after `from` at which every quota takes its amount. */
  private earliest(amounts: ReadonlyArray<number>, from: number, now: number): number {
    let at = from
    for (let round = 0; round < MAX_ROUNDS; round++) {
      let next = at
      this.meters.forEach((meter, i) => {
        if (amounts[i] > 0) next = Math.max(next, meter.fitsAt(amounts[i], next, now))
      })
      if (next === at || next === Infinity) return next
      at = next
    }
    return at
  }

  /** Books `amounts` at the earliest time they fit, unless that is more than `maxWaitMs` away. */
  reserve(amounts: ReadonlyArray<number>, now: number, maxWaitMs: number): ReserveOutcome {
    this.advance(now)
    for (let i = 0; i < this.meters.length; i++) {
      if (amounts[i] > this.meters[i].capacity) return { _tag: "TooLarge", metric: this.bucket.quotas[i].metric }
    }
    const at = this.earliest(amounts, Math.max(now, this.lastBooked, this.blockedUntil), now)
    if (at === Infinity || at - now > maxWaitMs) return { _tag: "Wait", retryAfterMs: at - now }
    return { _tag: "Reserved", id: this.book(amounts, at, now), at }
  }

  /** Books `amounts` at `at` (not before `now`) unconditionally; `reserve` decides when. */
  book(amounts: ReadonlyArray<number>, at: number, now: number): string {
    const id = `${this.nextId++}`
    this.open.set(id, { at, holds: this.meters.map((meter, i) => (amounts[i] > 0 ? meter.book(amounts[i], at, now) : undefined)) })
    this.lastBooked = Math.max(this.lastBooked, at)
    return id
  }

  /**
   * Settles a reservation with the actual usage per quota (`undefined`: keep the charge). Below the charge, a
   * quota that refunds gets the difference back; above it, the excess is charged. Returns false if not open.
   */
  settle(id: string, actual: ReadonlyArray<number | undefined>, now: number): boolean {
    this.advance(now)
    const reservation = this.open.get(id)
    if (reservation === undefined) return false
    this.open.delete(id)
    this.meters.forEach((meter, i) => {
      const hold = reservation.holds[i]
      const used = actual[i]
      if (hold === undefined) {
        // Usage on a metric the charge left at 0: charge it now (a concurrency slot is never taken after the fact).
        const charged = used !== undefined && used > 0 && this.bucket.quotas[i].algorithm !== "concurrency"
        if (charged) meter.book(used, Math.max(now, this.lastBooked), now)
        return
      }
      if (used === undefined) {
        if (this.bucket.quotas[i].algorithm === "concurrency") meter.release(hold, now)
        return
      }
      const kept = used < hold.amount && !this.bucket.quotas[i].refunds ? hold.amount : used
      meter.adjust(hold, kept, now)
    })
    return true
  }

  /** Takes a reservation back as if it had never been made. Returns false if not open. */
  release(id: string, now: number): boolean {
    this.advance(now)
    const reservation = this.open.get(id)
    if (reservation === undefined) return false
    this.open.delete(id)
    this.meters.forEach((meter, i) => {
      const hold = reservation.holds[i]
      if (hold !== undefined) meter.release(hold, now)
    })
    return true
  }

  /**
   * Learns from the provider: blocks admissions until `blockedUntil` (a 429's retry hint), and raises each
   * quota's usage to what the provider reports as used (`undefined`: nothing reported for that quota).
   */
  observe(used: ReadonlyArray<number | undefined>, blockedUntil: number, now: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, blockedUntil)
    this.meters.forEach((meter, i) => {
      const reported = used[i]
      if (reported !== undefined && Number.isFinite(reported) && reported >= 0) meter.tighten(reported, now)
    })
  }

  status(now: number, demand: ReadonlyArray<number>): BackendStatus {
    let booked = 0
    for (const reservation of this.open.values()) if (reservation.at > now) booked++
    let waitMs = Math.max(0, this.lastBooked - now, this.blockedUntil - now)
    this.meters.forEach((meter, i) => {
      if (demand[i] > 0) waitMs = Math.max(waitMs, meter.backlogWait(demand[i], now))
    })
    return {
      quotas: this.bucket.quotas.map((quota, i) => {
        const used = this.meters[i].used(now)
        const capacity = this.meters[i].capacity
        return {
          metric: quota.metric,
          algorithm: quota.algorithm,
          windowMs: quota.windowMs,
          limit: effectiveLimit(quota, this.bucket.safetyRatio),
          capacity,
          used,
          remaining: Math.max(0, capacity - used)
        }
      }),
      open: this.open.size,
      booked,
      waitMs
    }
  }
}
