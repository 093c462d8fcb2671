/**
 * Published limits turned into quotas, for each way providers charge.
 */
import type { Limits } from "../../Provider.js"
import type { QuotaInput } from "../../Quota.js"

const positive = (value: number | undefined): value is number =>
  value !== undefined && Number.isInteger(value) && value > 0

/**
 * Requests per second, minute and day (the daily quota is a `fixed-window`, reset at 00:00 UTC).
 *
 * @example
 * requestQuotas({ rpm: 30, rpd: 1000 })
 * // [{ metric: "requests", limit: 30, window: "1 minute" }, { metric: "requests", limit: 1000, window: "1 day", algorithm: "fixed-window" }]
 */
export const requestQuotas = (limits: Limits): Array<QuotaInput> => [
  ...(positive(limits.rps) ? [{ metric: "requests", limit: limits.rps, window: "1 second" }] : []),
  ...(positive(limits.rpm) ? [{ metric: "requests", limit: limits.rpm, window: "1 minute" }] : []),
  ...(positive(limits.rpd)
    ? [{ metric: "requests", limit: limits.rpd, window: "1 day", algorithm: "fixed-window" as const }]
    : [])
]

/**
 * Tokens per minute and day on `metric`, with the provider's refund rule.
 *
 * @example
 * tokenQuotas("tokens", 6000, undefined, false) // [{ metric: "tokens", limit: 6000, window: "1 minute", refunds: false }]
 */
export const tokenQuotas = (
  metric: string,
  perMinute: number | undefined,
  perDay: number | undefined,
  refunds: boolean,
  algorithm?: QuotaInput["algorithm"]
): Array<QuotaInput> => [
  ...(positive(perMinute)
    ? [{ metric, limit: perMinute, window: "1 minute", refunds, ...(algorithm === undefined ? {} : { algorithm }) }]
    : []),
  ...(positive(perDay) ? [{ metric, limit: perDay, window: "1 day", algorithm: "fixed-window" as const, refunds }] : [])
]

/**
 * Images per minute.
 *
 * @example
 * imageQuotas({ ipm: 1 }) // [{ metric: "images", limit: 1, window: "1 minute" }]
 */
export const imageQuotas = (limits: Limits): Array<QuotaInput> =>
  positive(limits.ipm) ? [{ metric: "images", limit: limits.ipm, window: "1 minute" }] : []
