/**
 * Circuit breaking: when calls keep failing (a provider overloaded, a key blocked), stop sending them for a
 * while instead of adding load, then probe with one call before letting traffic through again.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Exit, Layer } from "effect"
import { CircuitOpen } from "./Errors.js"

/**
 * When a circuit opens and for how long.
 *
 * @example
 * ```ts
 * import type { BreakerOptions } from "quotaflow"
 * const options: BreakerOptions = { failureThreshold: 20, failureWindow: "30 seconds", openFor: "30 seconds" }
 * ```
 * @since 0.1.0
 */
export interface BreakerOptions {
  /** Failures within `failureWindow` that open the circuit (default 20). */
  readonly failureThreshold?: number
  readonly failureWindow?: Duration.DurationInput
  /** How long an open circuit refuses calls before it lets one probe through (default 30 seconds). */
  readonly openFor?: Duration.DurationInput
}

/**
 * A circuit's state.
 *
 * @since 0.1.0
 */
export type BreakerState =
  | { readonly _tag: "Closed"; readonly failures: number }
  | { readonly _tag: "Open"; readonly until: number }
  | { readonly _tag: "HalfOpen" }

/**
 * The service: circuits by key (a bucket, a model, a whole API key).
 *
 * @since 0.1.0
 */
export interface CircuitBreakerService {
  /**
   * Runs `effect` unless the circuit is open; `isFailure` decides which outcomes count against the circuit
   * (default: any failure or defect, not interruption).
   */
  readonly guard: <A, E, R>(
    key: string,
    effect: Effect.Effect<A, E, R>,
    isFailure?: (exit: Exit.Exit<A, E>) => boolean
  ) => Effect.Effect<A, E | CircuitOpen, R>
  readonly state: (key: string) => Effect.Effect<BreakerState>
}

/**
 * The service tag.
 *
 * @since 0.1.0
 */
export class CircuitBreaker extends Context.Tag("quotaflow/CircuitBreaker")<CircuitBreaker, CircuitBreakerService>() {}

interface Circuit {
  /** Times of recent failures, oldest first. */
  failures: Array<number>
  openUntil: number
  probing: boolean
}

const countsAsFailure = <A, E>(exit: Exit.Exit<A, E>): boolean => Exit.isFailure(exit) && !Exit.isInterrupted(exit)

/**
 * Makes a circuit breaker whose state lives in this process, timed by Effect's `Clock`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { CircuitBreaker } from "quotaflow"
 *
 * const program = Effect.gen(function*() {
 *   const breaker = yield* CircuitBreaker.make({ failureThreshold: 3, openFor: "10 seconds" })
 *   return yield* breaker.guard("gpt-4o", Effect.succeed("ok"))
 * })
 * ```
 * @since 0.1.0
 */
export const make = (options: BreakerOptions = {}): Effect.Effect<CircuitBreakerService> =>
  Effect.sync(() => {
    const threshold = options.failureThreshold ?? 20
    const windowMs = Duration.toMillis(options.failureWindow ?? "30 seconds")
    const openMs = Duration.toMillis(options.openFor ?? "30 seconds")
    const circuits = new Map<string, Circuit>()
    const circuitOf = (key: string): Circuit => {
      let circuit = circuits.get(key)
      if (circuit === undefined) {
        circuit = { failures: [], openUntil: -Infinity, probing: false }
        circuits.set(key, circuit)
      }
      return circuit
    }

    const stateAt = (circuit: Circuit, now: number): BreakerState => {
      if (now < circuit.openUntil) return { _tag: "Open", until: circuit.openUntil }
      if (circuit.openUntil !== -Infinity) return { _tag: "HalfOpen" }
      while (circuit.failures.length > 0 && circuit.failures[0] <= now - windowMs) circuit.failures.shift()
      return { _tag: "Closed", failures: circuit.failures.length }
    }

    /** Records an outcome: a probe decides the circuit; otherwise failures accumulate until the threshold. */
    const record = (circuit: Circuit, probe: boolean, failed: boolean, now: number): void => {
      if (probe) circuit.probing = false
      if (!failed) {
        if (probe) {
          circuit.openUntil = -Infinity
          circuit.failures = []
        }
        return
      }
      if (probe) {
        circuit.openUntil = now + openMs
        return
      }
      circuit.failures.push(now)
      while (circuit.failures[0] <= now - windowMs) circuit.failures.shift()
      if (circuit.failures.length >= threshold) {
        circuit.openUntil = now + openMs
        circuit.failures = []
      }
    }

    const guard = <A, E, R>(key: string, effect: Effect.Effect<A, E, R>, isFailure: (exit: Exit.Exit<A, E>) => boolean = countsAsFailure) =>
      Effect.flatMap(Clock.currentTimeMillis, (now): Effect.Effect<A, E | CircuitOpen, R> => {
        const circuit = circuitOf(key)
        const state = stateAt(circuit, now)
        if (state._tag === "Open") return Effect.fail(new CircuitOpen({ key, retryAfterMs: state.until - now }))
        const probe = state._tag === "HalfOpen"
        if (probe && circuit.probing) return Effect.fail(new CircuitOpen({ key, retryAfterMs: 0 }))
        if (probe) circuit.probing = true
        return Effect.onExit(effect, (exit) =>
          Effect.map(Clock.currentTimeMillis, (end) => record(circuit, probe, isFailure(exit), end)))
      })

    const state = (key: string) => Effect.map(Clock.currentTimeMillis, (now) => stateAt(circuitOf(key), now))

    return { guard, state }
  })

/**
 * The in-process circuit breaker as a layer.
 *
 * @example
 * ```ts
 * import { CircuitBreaker } from "quotaflow"
 * const BreakerLive = CircuitBreaker.layer({ failureThreshold: 20, failureWindow: "30 seconds", openFor: "30 seconds" })
 * ```
 * @since 0.1.0
 */
export const layer = (options: BreakerOptions = {}): Layer.Layer<CircuitBreaker> => Layer.effect(CircuitBreaker, make(options))
