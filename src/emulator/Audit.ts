/**
 * An independent check that admissions respect a quota, written without the
 * enforcement code of `Meter.ts`, so that a bug there shows up as a violation.
 *
 * - sliding window: the plain sum of (corrected) amounts admitted in
 *   `(now - windowMs, now]` must be at most `limit` after every admission;
 * - token bucket: the admissions must fit the arrival curve of a bucket of
 *   capacity `limit` refilled at `limit / windowMs` per ms: for every earlier
 *   event time `s`, the net amount charged in `[s, now]` (refunds count as
 *   negative charges) is at most `limit + (now - s) * limit / windowMs`.
 *
 * @example
 * import { makeAudit } from "./Audit.js"
 * const audit = makeAudit("sliding-window", { limit: 2, windowMs: 1000 })
 * audit.admit(1, 2, 0)   // true: within the limit
 * audit.admit(2, 1, 10)  // false: 3 in one window is a violation
 */
import type { Algorithm, Quota } from "./Meter.js"

/**
 * The audit of one quota. `admit` returns whether the quota still holds.
 *
 * @example
 * const audit: Audit = makeAudit("token-bucket", { limit: 10, windowMs: 1000 })
 * audit.admit(1, 10, 0) // true
 * audit.correct(1, 4, 0) // 6 of the 10 given back
 */
export interface Audit {
  /** Records admission `id` of `amount` at `now`; false if the quota is now exceeded. */
  readonly admit: (id: number, amount: number, now: number) => boolean
  /** Records that admission `id` gave back `refund` at `now`. */
  readonly correct: (id: number, refund: number, now: number) => void
}

/**
 * Builds the audit of `quota` under `algorithm`.
 *
 * @example
 * const audit = makeAudit("token-bucket", { limit: 60, windowMs: 60_000 })
 */
export const makeAudit = (algorithm: Algorithm, quota: Quota): Audit =>
  algorithm === "sliding-window" ? windowAudit(quota) : curveAudit(quota)

const tolerance = (x: number) => 1e-9 * Math.max(1, Math.abs(x))

const windowAudit = ({ limit, windowMs }: Quota): Audit => {
  let log: Array<{ readonly id: number; readonly at: number; amount: number }> = []
  return {
    admit: (id, amount, now) => {
      log = log.filter((e) => e.at > now - windowMs)
      log.push({ id, at: now, amount })
      const total = log.reduce((acc, e) => acc + e.amount, 0)
      return total <= limit + tolerance(limit)
    },
    correct: (id, refund) => {
      const entry = log.find((e) => e.id === id)
      if (entry !== undefined) entry.amount = Math.max(0, entry.amount - refund)
    }
  }
}

// Network-calculus form: with C(t) the cumulative net charge, the condition
// C(now) - C(s-) <= limit + rate * (now - s) for all event times s becomes
// C(now) - rate * now - min_s (C(s-) - rate * s) <= limit.
// Everything is multiplied by windowMs and time is taken relative to the first
// event, so that integer inputs give exact integer arithmetic.
const curveAudit = ({ limit, windowMs }: Quota): Audit => {
  let origin: number | undefined
  let cumulative = 0
  let minPrefix = Number.POSITIVE_INFINITY
  const event = (delta: number, now: number) => {
    origin ??= now
    const drained = limit * (now - origin)
    minPrefix = Math.min(minPrefix, cumulative - drained)
    cumulative += delta * windowMs
    return cumulative - drained - minPrefix
  }
  return {
    admit: (_id, amount, now) => {
      const worst = event(amount, now)
      return worst <= limit * windowMs + tolerance(limit * windowMs)
    },
    correct: (_id, refund, now) => {
      event(-refund, now)
    }
  }
}
