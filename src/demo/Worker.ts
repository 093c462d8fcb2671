/**
 * One worker process of the multi-process demo, forked by `MultiProcess.ts` with an IPC channel. The parent
 * sends `setup` (the options, the emulator, the Redis namespace and this worker's share of the workload); the
 * worker builds its limiter on the Redis backend, connects to Redis and to the emulator, says `ready`, waits for
 * `go`, then sends its calls through the limiter, reporting `progress` every interval and a `result` at the end.
 *
 * It leaves when the parent goes away, and ignores Ctrl-C (the parent stops it).
 *
 * @example
 * ```ts
 * import { fork } from "node:child_process"
 * const child = fork("dist/demo/Worker.js", [], { stdio: ["ignore", "ignore", "pipe", "ipc"] })
 * child.send({ type: "setup", ... })
 * ```
 */
import { Cause, Clock, Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { layer as RedisBackendLive } from "../Backend/Redis.js"
import * as RateLimited from "../RateLimited.js"
import { type CallCounters, DemoError, endpointOf, limiterProgress, makeCounters, runCalls } from "./Calls.js"
import type { DemoProgress, ResolvedDemoOptions } from "./Demo.js"
import { type DemoMetric, limiterConfig } from "./Scenario.js"
import type { ChatCall } from "./Workload.js"

/**
 * Messages from the parent.
 *
 * @example
 * ```ts
 * const go: ToWorker = { type: "go" }
 * ```
 */
export type ToWorker =
  | {
    readonly type: "setup"
    readonly options: ResolvedDemoOptions
    readonly emulatorUrl: string
    readonly redisUrl: string
    readonly namespace: string
    readonly calls: ReadonlyArray<ChatCall>
    readonly progressIntervalMs: number
  }
  | { readonly type: "go" }

/**
 * What one worker has counted; times are epoch milliseconds.
 *
 * @example
 * ```ts
 * const counts: WorkerCounts = { done: 10, failed: 0, inFlight: 2, queued: 30, rejected429: 0, quotas: [] }
 * ```
 */
export type WorkerCounts = Omit<DemoProgress, "elapsedMs" | "total">

/**
 * Messages to the parent.
 *
 * @example
 * ```ts
 * const ready: FromWorker = { type: "ready" }
 * ```
 */
export type FromWorker =
  | { readonly type: "ready" }
  | { readonly type: "progress"; readonly at: number; readonly counts: WorkerCounts }
  | {
    readonly type: "result"
    readonly counts: WorkerCounts
    readonly waits: ReadonlyArray<number>
    readonly totals: { readonly [M in DemoMetric]: number }
    /** When the first call was submitted and the last one ended (epoch ms; infinite when there were none). */
    readonly first: number
    readonly end: number
  }
  | { readonly type: "error"; readonly message: string }

const send = (message: FromWorker, then?: () => void): void => {
  if (process.connected && process.send !== undefined) process.send(message, undefined, {}, () => then?.())
  else then?.()
}

const describe = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? error.message : String(error)
}

const work = (setup: Extract<ToWorker, { type: "setup" }>, go: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const { options } = setup
    const limiter = yield* RateLimited.make(
      limiterConfig(options.style, options.algorithm, options.windowMs, options.limits, options.skewMs)
    )
    const counters: CallCounters = makeCounters()
    const counts = Effect.map(limiterProgress(limiter, options), ({ queued, quotas }): WorkerCounts => ({
      done: counters.done,
      failed: counters.failed,
      inFlight: counters.inFlight,
      queued,
      rejected429: counters.rejected429,
      quotas
    }))
    // Asks Redis (and loads its function library) and opens a connection to the emulator before saying ready, so that no
    // start-up is counted in the run.
    yield* counts
    yield* Effect.tryPromise({
      try: () => fetch(`${setup.emulatorUrl}/stats`).then((response) => response.text()),
      catch: (error) => new DemoError({ reason: "failed", message: `the emulator does not answer: ${String(error)}` })
    })
    send({ type: "ready" })
    yield* Deferred.await(go)

    const ticker = yield* Effect.fork(
      Effect.repeat(
        Effect.flatMap(counts, (c) => Effect.flatMap(Clock.currentTimeMillis, (at) => Effect.sync(() => send({ type: "progress", at, counts: c })))),
        Schedule.spaced(`${setup.progressIntervalMs} millis`)
      )
    )
    yield* runCalls(limiter, endpointOf(options.style, setup.emulatorUrl), options.style, setup.calls, counters)
    yield* Fiber.interrupt(ticker)
    const final = yield* counts
    return {
      type: "result",
      counts: final,
      waits: counters.waits,
      totals: counters.totals,
      first: counters.first,
      end: counters.end
    } satisfies FromWorker
  }).pipe(
    Effect.scoped,
    Effect.provide(
      Layer.mapError(
        RedisBackendLive({ url: setup.redisUrl, namespace: setup.namespace }),
        (error) => new DemoError({ reason: "failed", message: `Redis at ${setup.redisUrl}: ${error.message}` })
      )
    )
  )

if (process.send !== undefined) {
  const go = Effect.runSync(Deferred.make<void>())
  let started = false
  // The parent owns this process: without it, nothing is left to do. Ctrl-C reaches the parent too, which stops us.
  process.on("disconnect", () => process.exit(0))
  process.on("SIGINT", () => {})
  process.on("message", (message: ToWorker) => {
    if (message.type === "go") {
      Effect.runSync(Deferred.succeed(go, undefined))
      return
    }
    if (started) return
    started = true
    Effect.runPromiseExit(work(message, go)).then((exit) => {
      if (exit._tag === "Success") send(exit.value, () => process.disconnect())
      else send({ type: "error", message: describe(exit.cause) }, () => process.exit(1))
    })
  })
}
