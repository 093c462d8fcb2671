/**
 * An HTTP server that rate-limits like a real LLM provider (OpenAI or Anthropic
 * style), for benchmarks, demos and end-to-end tests. Published as `quotaflow/emulator` (see `index.ts`).
 *
 * @example
 * import { Effect } from "effect"
 * import { Emulator } from "quotaflow/emulator"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const emulator = yield* Emulator.serve({ style: "openai", limits: { requests: 60, tokens: 30_000 } }, { port: 0 })
 *   yield* Effect.log(`listening on ${emulator.url}`)
 *   // ... send requests to `${emulator.url}/v1/chat/completions` ...
 *   const stats = yield* emulator.stats
 *   yield* Effect.log(`429s: ${stats.rejected429}, violations: ${stats.violations}`)
 * }))
 */
import type { HttpApp } from "@effect/platform"
import { HttpServer } from "@effect/platform"
import type { ServeError } from "@effect/platform/HttpServerError"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer, type Scope } from "effect"
import * as Http from "node:http"
import { makeApp } from "./App.js"
import { decodeConfig, type EmulatorConfig, type EmulatorConfigInput, type InvalidConfig, quotasOf } from "./Config.js"
import { type LimitStats, makeLedger } from "./Limits.js"
import { makeStore } from "./Store.js"

export { EmulatorConfig, type EmulatorConfigInput, InvalidConfig } from "./Config.js"
export type { Algorithm, Metric, Quota, Quotas } from "./Limits.js"

/**
 * The statistics served by `GET /stats`: `admitted`, `rejected429`, `rejected400`
 * (invalid input and requests larger than a limit), `violations` (admissions after
 * which an independent audit found a quota exceeded; always 0 unless enforcement
 * is broken), `charged` per metric (net of refunds) and `peak` amount in use per
 * limited metric.
 *
 * @example
 * const stats: EmulatorStats = yield* emulator.stats
 * stats.violations // 0
 */
export type EmulatorStats = LimitStats

/**
 * An emulator living in the process: its decoded config, its request handler
 * (usable without a socket) and access to its statistics.
 *
 * @example
 * const emulator: Emulator = yield* make({ limits: { requests: 3 } })
 */
export interface Emulator {
  readonly config: EmulatorConfig
  /** The whole HTTP handler; provide an `HttpServerRequest` to run it in-process. */
  readonly app: HttpApp.Default
  readonly stats: Effect.Effect<EmulatorStats>
  /** Clears all admissions, statistics, stored responses and models seen, like `POST /reset`. */
  readonly reset: Effect.Effect<void>
}

/**
 * An emulator listening on a socket.
 *
 * @example
 * const { url } = yield* serve({ style: "anthropic", limits: { requests: 50 } })
 * // url === "http://127.0.0.1:54321"
 */
export interface RunningEmulator extends Emulator {
  readonly url: string
  readonly port: number
}

/**
 * Builds an emulator without starting a server; drive `app` in-process.
 *
 * @example
 * const emulator = yield* make({ style: "openai", limits: { tokens: 1_000 } })
 * const response = yield* emulator.app.pipe(
 *   Effect.provideService(HttpServerRequest.HttpServerRequest, HttpServerRequest.fromWeb(new Request("http://emulator/stats")))
 * )
 */
export const make = (input: EmulatorConfigInput): Effect.Effect<Emulator, InvalidConfig> =>
  Effect.map(decodeConfig(input), (config) => {
    const ledger = makeLedger(quotasOf(config), config.algorithm)
    const store = makeStore()
    return {
      config,
      app: makeApp(config, ledger, store),
      stats: Effect.sync(() => ledger.stats()),
      reset: Effect.sync(() => {
        ledger.reset()
        store.reset()
      })
    }
  })

/**
 * Starts the emulator on `host` (default `127.0.0.1`) and `port` (default 0: a free
 * port) and stops it when the scope closes (open connections are dropped).
 *
 * @example
 * const emulator = yield* serve({ style: "openai", windowMs: 5_000, limits: { requests: 10, tokens: 5_000 } }, { port: 0 })
 * const res = yield* Effect.promise(() => fetch(`${emulator.url}/stats`))
 */
export const serve = (
  input: EmulatorConfigInput,
  options: { readonly port?: number; readonly host?: string } = {}
): Effect.Effect<RunningEmulator, InvalidConfig | ServeError, Scope.Scope> =>
  Effect.gen(function*() {
    const emulator = yield* make(input)
    const host = options.host ?? "127.0.0.1"
    let server: Http.Server | undefined
    const context = yield* Layer.build(
      NodeHttpServer.layer(() => (server = Http.createServer()), { port: options.port ?? 0, host })
    )
    // Runs before the server's own close, so that keep-alive and streaming connections do not hold it open.
    yield* Effect.addFinalizer(() => Effect.sync(() => server?.closeAllConnections()))
    yield* HttpServer.serveEffect(emulator.app).pipe(Effect.provide(context))
    const address = Context.get(context, HttpServer.HttpServer).address
    const port = address._tag === "TcpAddress" ? address.port : 0
    const url = address._tag === "TcpAddress" ? `http://${host}:${port}` : `http+unix://${address.path}`
    return { ...emulator, url, port }
  })
