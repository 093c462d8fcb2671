/**
 * What the limiter counts, as Effect `Metric`s: read them with `Metric.value`, or export them with any Effect
 * metrics exporter. Metrics are global to the process.
 *
 * @since 0.2.0
 */
import { Metric } from "effect"

/**
 * Reservations the backend no longer knew when they were settled or released: its state was lost (a Redis
 * `FLUSHALL`, a restart without persistence) or an orphan sweep had closed them. The call still got its result.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Metrics } from "quotaflow"
 * const lost = Metric.value(Metrics.reservationsLost).pipe(Effect.map((state) => state.count))
 * ```
 * @since 0.2.0
 */
export const reservationsLost = Metric.counter("quotaflow_reservations_lost", {
  description: "Reservations the backend no longer knew at settlement (state lost or already reclaimed)",
  incremental: true
})

/**
 * Reservations open longer than `reservationTtl` that the orphan sweeper settled, keeping their charge: a
 * permit its holder never settled, or a call that ran past the TTL.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Metrics } from "quotaflow"
 * const reclaimed = Metric.value(Metrics.orphansReclaimed).pipe(Effect.map((state) => state.count))
 * ```
 * @since 0.2.0
 */
export const orphansReclaimed = Metric.counter("quotaflow_orphans_reclaimed", {
  description: "Reservations open past reservationTtl, settled by the orphan sweeper with their charge kept",
  incremental: true
})

/**
 * Settlements the backend could not take (Redis unreachable): the call got its result; the backend closes the
 * reservation itself once it answers again, or by its `reservationTtl`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { Metrics } from "quotaflow"
 * const failed = Metric.value(Metrics.settlementsFailed).pipe(Effect.map((state) => state.count))
 * ```
 * @since 0.2.0
 */
export const settlementsFailed = Metric.counter("quotaflow_settlements_failed", {
  description: "Settlements or releases the backend could not take; the call still got its result",
  incremental: true
})
