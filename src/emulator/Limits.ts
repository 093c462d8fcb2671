/**
 * Enforcement of a provider's quotas over the metrics `requests`, `tokens`,
 * `input_tokens` and `output_tokens`, with statistics. No I/O and no clock:
 * callers pass the current time in milliseconds (never going backwards).
 *
 * A request is charged at admission ({@link Ledger.admit}) and settled when its
 * response ends ({@link Ledger.settle}), which gives back whatever was charged
 * beyond the final amount (Anthropic-style output correction).
 *
 * @example
 * import { makeLedger } from "./Limits.js"
 * const ledger = makeLedger({ requests: { limit: 2, windowMs: 1000 } }, "token-bucket")
 * ledger.admit({ requests: 1 }, 0)
 * ledger.admit({ requests: 1 }, 0)
 * ledger.admit({ requests: 1 }, 0) // { _tag: "RateLimited", retryAfterMs: 500, ... }
 */
import { type Audit, makeAudit } from "./Audit.js"
import { type Algorithm, makeMeter, type Meter, type Quota } from "./Meter.js"

export type { Algorithm, Quota } from "./Meter.js"

/**
 * A metric a quota can be set on.
 *
 * @example
 * const metric: Metric = "input_tokens"
 */
export type Metric = "requests" | "tokens" | "input_tokens" | "output_tokens"

/**
 * All metrics, in header order.
 *
 * @example
 * metrics.includes("tokens") // true
 */
export const metrics: ReadonlyArray<Metric> = ["requests", "tokens", "input_tokens", "output_tokens"]

/**
 * The configured quotas; a metric without an entry is not limited.
 *
 * @example
 * const quotas: Quotas = { requests: { limit: 50, windowMs: 60_000 }, input_tokens: { limit: 30_000, windowMs: 60_000 } }
 */
export type Quotas = { readonly [M in Metric]?: Quota }

/**
 * The amounts a request is charged, per metric.
 *
 * @example
 * const charge: Charge = { requests: 1, tokens: 1_200 }
 */
export type Charge = { readonly [M in Metric]?: number }

/**
 * The outcome of {@link Ledger.admit}.
 * - `Admitted`: charged; settle the `ticket` when the response ends.
 * - `RateLimited`: does not fit now; it fits again in `retryAfterMs` (the slowest quota is `metric`).
 * - `TooLarge`: can never fit, because `requested` exceeds `limit` on `metric`.
 *
 * @example
 * const decision: Decision = { _tag: "TooLarge", metric: "tokens", limit: 100, requested: 150 }
 */
export type Decision =
  | { readonly _tag: "Admitted"; readonly ticket: number }
  | {
    readonly _tag: "RateLimited"
    readonly metric: Metric
    readonly retryAfterMs: number
    readonly limit: number
    readonly used: number
    readonly requested: number
  }
  | { readonly _tag: "TooLarge"; readonly metric: Metric; readonly limit: number; readonly requested: number }

/**
 * The state of one quota at a moment: `remaining` is rounded down and
 * `resetMs` is the time until nothing is in use any more (the bucket is full).
 *
 * @example
 * const status: QuotaStatus = { limit: 60, used: 1, remaining: 59, resetMs: 1000 }
 */
export interface QuotaStatus {
  readonly limit: number
  readonly used: number
  readonly remaining: number
  readonly resetMs: number
}

/**
 * Counters since the start or the last reset. `charged` is net of refunds;
 * `peak` is the highest amount in use on each limited metric; `violations`
 * counts admissions after which the independent audit found a quota exceeded.
 *
 * @example
 * const stats: LimitStats = {
 *   admitted: 3, rejected429: 1, rejected400: 0, violations: 0,
 *   charged: { requests: 3, tokens: 900, input_tokens: 0, output_tokens: 0 },
 *   peak: { requests: 3 }
 * }
 */
export interface LimitStats {
  readonly admitted: number
  readonly rejected429: number
  readonly rejected400: number
  readonly violations: number
  readonly charged: { readonly [M in Metric]: number }
  readonly peak: { readonly [M in Metric]?: number }
}

/**
 * Quotas with their statistics.
 *
 * @example
 * const ledger: Ledger = makeLedger({ tokens: { limit: 1000, windowMs: 60_000 } }, "sliding-window")
 * const decision = ledger.admit({ requests: 1, tokens: 800 }, 0)
 * if (decision._tag === "Admitted") ledger.settle(decision.ticket, { requests: 1, tokens: 500 }, 10)
 */
export interface Ledger {
  readonly quotas: Quotas
  readonly algorithm: Algorithm
  /** Admits and charges `charge` at `now` if it fits every quota. */
  readonly admit: (charge: Charge, now: number) => Decision
  /** Ends admission `ticket`: gives back what was charged above `final` on each metric. */
  readonly settle: (ticket: number, final: Charge, now: number) => void
  /** Counts a request refused before any quota was consulted (invalid input). */
  readonly recordInvalid: () => void
  /** The state of every limited metric at `now`. */
  readonly status: (now: number) => { readonly [M in Metric]?: QuotaStatus }
  readonly stats: () => LimitStats
  /** Forgets all admissions and statistics. */
  readonly reset: () => void
}

interface Limited {
  readonly metric: Metric
  readonly meter: Meter
  readonly audit: Audit
}

/**
 * Builds a ledger enforcing `quotas` with `algorithm`.
 *
 * @example
 * const ledger = makeLedger({ requests: { limit: 50, windowMs: 60_000 } }, "token-bucket")
 */
export const makeLedger = (quotas: Quotas, algorithm: Algorithm): Ledger => {
  const build = (): Array<Limited> =>
    metrics.flatMap((metric) => {
      const quota = quotas[metric]
      return quota === undefined ? [] : [{ metric, meter: makeMeter(algorithm, quota), audit: makeAudit(algorithm, quota) }]
    })
  let limited = build()
  let open = new Map<number, Charge>()
  let nextTicket = 1
  let admitted = 0
  let rejected429 = 0
  let rejected400 = 0
  let violations = 0
  let charged = { requests: 0, tokens: 0, input_tokens: 0, output_tokens: 0 }
  let peak: { [M in Metric]?: number } = {}

  const admit = (charge: Charge, now: number): Decision => {
    for (const { meter, metric } of limited) {
      const requested = charge[metric] ?? 0
      if (requested > meter.quota.limit) {
        rejected400++
        return { _tag: "TooLarge", metric, limit: meter.quota.limit, requested }
      }
    }
    let slowest: Extract<Decision, { _tag: "RateLimited" }> | undefined
    for (const { meter, metric } of limited) {
      const requested = charge[metric] ?? 0
      const wait = meter.waitMs(requested, now)
      if (wait > 0 && (slowest === undefined || wait > slowest.retryAfterMs)) {
        const used = meter.used(now)
        slowest = { _tag: "RateLimited", metric, retryAfterMs: wait, limit: meter.quota.limit, used, requested }
      }
    }
    if (slowest !== undefined) {
      rejected429++
      return slowest
    }
    const ticket = nextTicket++
    let violated = false
    for (const { audit, meter, metric } of limited) {
      const amount = charge[metric] ?? 0
      meter.add(ticket, amount, now)
      peak[metric] = Math.max(peak[metric] ?? 0, meter.used(now))
      if (!audit.admit(ticket, amount, now)) violated = true
    }
    for (const metric of metrics) charged[metric] += charge[metric] ?? 0
    open.set(ticket, charge)
    admitted++
    if (violated) violations++
    return { _tag: "Admitted", ticket }
  }

  const settle = (ticket: number, final: Charge, now: number) => {
    const charge = open.get(ticket)
    if (charge === undefined) return
    open.delete(ticket)
    for (const metric of metrics) {
      const refund = (charge[metric] ?? 0) - (final[metric] ?? 0)
      if (refund <= 0) continue
      charged[metric] -= refund
      const entry = limited.find((l) => l.metric === metric)
      entry?.meter.lower(ticket, refund, now)
      entry?.audit.correct(ticket, refund, now)
    }
  }

  const status = (now: number) => {
    const out: { [M in Metric]?: QuotaStatus } = {}
    for (const { meter, metric } of limited) {
      const used = meter.used(now)
      const limit = meter.quota.limit
      out[metric] = { limit, used, remaining: Math.max(0, Math.floor(limit - used)), resetMs: meter.resetMs(now) }
    }
    return out
  }

  return {
    quotas,
    algorithm,
    admit,
    settle,
    recordInvalid: () => {
      rejected400++
    },
    status,
    stats: () => ({ admitted, rejected429, rejected400, violations, charged: { ...charged }, peak: { ...peak } }),
    reset: () => {
      limited = build()
      open = new Map()
      admitted = 0
      rejected429 = 0
      rejected400 = 0
      violations = 0
      charged = { requests: 0, tokens: 0, input_tokens: 0, output_tokens: 0 }
      peak = {}
    }
  }
}
