/**
 * The entry point `quotaflow/emulator`: an HTTP server that rate-limits like a real LLM provider, for
 * benchmarks, demos and end-to-end tests. It is apart from `quotaflow` because it loads an HTTP server
 * (`@effect/platform-node`), which a program that only limits its calls has no use for.
 *
 * @since 0.1.0
 */

/**
 * The emulator: `Emulator.make` builds one to drive in-process, `Emulator.serve` starts one on a socket.
 * Needs `@effect/platform-node` installed beside quotaflow.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Emulator } from "quotaflow/emulator"
 *
 * const stats = await Effect.runPromise(Effect.scoped(Effect.gen(function*() {
 *   const emulator = yield* Emulator.serve({ style: "openai", limits: { requests: 60, tokens: 30_000 } })
 *   yield* Effect.promise(() => fetch(`${emulator.url}/stats`))
 *   return yield* emulator.stats
 * })))
 * ```
 * @since 0.1.0
 */
export * as Emulator from "./Emulator.js"
