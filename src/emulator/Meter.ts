/**
 * One quota on one metric, enforced by either a continuously refilling token
 * bucket or a strict trailing sliding window. No I/O and no clock: every call
 * takes the current time in milliseconds, which must never go backwards.
 *
 * @example
 * import { makeMeter } from "./Meter.js"
 * const meter = makeMeter("token-bucket", { limit: 60, windowMs: 60_000 })
 * meter.waitMs(1, 0) // 0: it fits now
 * meter.add(1, 1, 0)
 */

/**
 * How a quota is enforced.
 * - `token-bucket`: capacity `limit`, refilled continuously at `limit` per `windowMs`.
 * - `sliding-window`: in any half-open interval `[s, s + windowMs)` the admitted amount is at most `limit`.
 *
 * @example
 * const algorithm: Algorithm = "sliding-window"
 */
export type Algorithm = "token-bucket" | "sliding-window"

/**
 * A limit on one metric: at most `limit` per `windowMs`.
 *
 * @example
 * const tpm: Quota = { limit: 30_000, windowMs: 60_000 }
 */
export interface Quota {
  readonly limit: number
  readonly windowMs: number
}

/**
 * The mutable state of one quota.
 *
 * @example
 * const meter: Meter = makeMeter("sliding-window", { limit: 3, windowMs: 1000 })
 * meter.add(7, 2, 0)
 * meter.used(500) // 2
 * meter.lower(7, 1, 500)
 * meter.used(500) // 1
 */
export interface Meter {
  readonly quota: Quota
  /** Amount currently in use (counted against the limit) at `now`. */
  readonly used: (now: number) => number
  /** Milliseconds from `now` until `amount` more would fit (0 if it fits now). */
  readonly waitMs: (amount: number, now: number) => number
  /** Milliseconds from `now` until nothing is in use any more. */
  readonly resetMs: (now: number) => number
  /** Charges `amount` under the admission `id`. */
  readonly add: (id: number, amount: number, now: number) => void
  /** Gives back `by` of what admission `id` was charged (a bucket is floored at empty). */
  readonly lower: (id: number, by: number, now: number) => void
}

/**
 * Builds the meter for `quota` under `algorithm`.
 *
 * @example
 * const rpm = makeMeter("token-bucket", { limit: 60, windowMs: 60_000 })
 */
export const makeMeter = (algorithm: Algorithm, quota: Quota): Meter =>
  algorithm === "token-bucket" ? tokenBucket(quota) : slidingWindow(quota)

// Amounts are kept multiplied by windowMs so that with integer times and amounts
// the bucket arithmetic is exact: it drains by exactly `limit` per millisecond.
const tokenBucket = (quota: Quota): Meter => {
  const { limit, windowMs } = quota
  const capacity = limit * windowMs
  let scaledUsed = 0
  let last: number | undefined
  const drain = (now: number) => {
    if (last === undefined || now > last) {
      if (last !== undefined) scaledUsed = Math.max(0, scaledUsed - limit * (now - last))
      last = now
    }
  }
  return {
    quota,
    used: (now) => {
      drain(now)
      return scaledUsed / windowMs
    },
    waitMs: (amount, now) => {
      drain(now)
      const excess = scaledUsed + amount * windowMs - capacity
      if (excess <= 0) return 0
      return amount > limit ? Number.POSITIVE_INFINITY : Math.ceil(excess / limit)
    },
    resetMs: (now) => {
      drain(now)
      return Math.ceil(scaledUsed / limit)
    },
    add: (_id, amount, now) => {
      drain(now)
      scaledUsed += amount * windowMs
    },
    lower: (_id, by, now) => {
      drain(now)
      scaledUsed = Math.max(0, scaledUsed - by * windowMs)
    }
  }
}

interface Entry {
  readonly id: number
  readonly at: number
  amount: number
}

const slidingWindow = (quota: Quota): Meter => {
  const { limit, windowMs } = quota
  let entries: Array<Entry> = []
  let head = 0
  let sum = 0
  const byId = new Map<number, Entry>()
  // An entry admitted at `at` counts during [at, at + windowMs).
  const expire = (now: number) => {
    while (head < entries.length && entries[head]!.at + windowMs <= now) {
      const entry = entries[head]!
      sum -= entry.amount
      byId.delete(entry.id)
      head++
    }
    if (head > 1024 && head * 2 > entries.length) {
      entries = entries.slice(head)
      head = 0
    }
  }
  return {
    quota,
    used: (now) => {
      expire(now)
      return sum
    },
    waitMs: (amount, now) => {
      expire(now)
      let inUse = sum
      if (inUse + amount <= limit) return 0
      for (let i = head; i < entries.length; i++) {
        inUse -= entries[i]!.amount
        if (inUse + amount <= limit) return entries[i]!.at + windowMs - now
      }
      return Number.POSITIVE_INFINITY
    },
    resetMs: (now) => {
      expire(now)
      return head < entries.length ? entries[entries.length - 1]!.at + windowMs - now : 0
    },
    add: (id, amount, now) => {
      expire(now)
      const entry: Entry = { id, at: now, amount }
      entries.push(entry)
      byId.set(id, entry)
      sum += amount
    },
    lower: (id, by, now) => {
      expire(now)
      const entry = byId.get(id)
      if (entry === undefined) return
      const cut = Math.min(by, entry.amount)
      entry.amount -= cut
      sum -= cut
    }
  }
}
