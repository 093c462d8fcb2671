/**
 * The demo across several processes sharing one quota through Redis: this process serves the emulator and
 * forks `procs` workers (`Worker.ts`), each sending its share of the same seeded workload through its own
 * limiter on the Redis backend (the same bucket and skew as the single-process demo, one namespace per run).
 * Progress and results come back over IPC and are reported and summarized as `runDemo` does.
 *
 * Without `redisUrl` a throwaway `redis-server` is started for the run. Workers and server are stopped when
 * the run ends, fails or is interrupted.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { runMultiProcessDemo } from "./MultiProcess.js"
 *
 * const summary = await Effect.runPromise(runMultiProcessDemo({ procs: 4, calls: 300 }))
 * console.log(summary.backend.processes, summary.efficiency, summary.rejected429.emulator)
 * ```
 */
import { type ChildProcess, fork } from "node:child_process"
import { extname } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect, Fiber, Schedule, type Scope } from "effect"
import * as Emulator from "../emulator/Emulator.js"
import {
  type DemoBackend,
  DemoError,
  type DemoOptions,
  type DemoProgress,
  type DemoSummary,
  fetchStats,
  resolveOptions,
  runNamespace,
  summarize,
  validate
} from "./Demo.js"
import { throwawayRedis } from "./RedisServer.js"
import { emulatorConfig } from "./Scenario.js"
import { type ChatCall, makeWorkload } from "./Workload.js"
import type { FromWorker, ToWorker, WorkerCounts } from "./Worker.js"

/**
 * The most worker processes a run may fork.
 *
 * @example
 * ```ts
 * maxProcs // 64
 * ```
 */
export const maxProcs = 64

/**
 * What to run: the demo's options, the number of processes and where Redis is.
 *
 * @example
 * ```ts
 * const options: MultiProcessOptions = { procs: 4, redisUrl: "redis://127.0.0.1:6379", calls: 300 }
 * ```
 */
export interface MultiProcessOptions extends Omit<DemoOptions, "redis"> {
  /** Worker processes (at least 1, at most `maxProcs` and the number of calls). */
  readonly procs: number
  /** Redis shared by the workers; a throwaway `redis-server` is started when left out. */
  readonly redisUrl?: string
  /** Prefix of the run's Redis keys (default: a namespace of its own for this run). */
  readonly namespace?: string
  /** The longest wait for every worker to start and connect (default 30 s). */
  readonly startTimeoutMs?: number
}

/**
 * What a forked worker runs: its own file next to this module, with tsx when running from source.
 *
 * @example
 * ```ts
 * workerEntry() // { path: "/app/dist/demo/Worker.js", execArgv: [] }
 * ```
 */
export const workerEntry = (): { readonly path: string; readonly execArgv: ReadonlyArray<string>; readonly cwd: string | undefined } => {
  const self = fileURLToPath(import.meta.url)
  const ext = extname(self)
  const path = fileURLToPath(new URL(`./Worker${ext === ".ts" ? ".ts" : ".js"}`, import.meta.url))
  return ext === ".ts"
    ? { path, execArgv: ["--import", "tsx"], cwd: fileURLToPath(new URL("../..", import.meta.url)) }
    : { path, execArgv: [], cwd: undefined }
}

const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const child of live) child.kill("SIGKILL")
})

/** One forked worker and what it has said. */
class WorkerProcess {
  ready = false
  progress: { readonly at: number; readonly counts: WorkerCounts } | undefined
  result: Extract<FromWorker, { type: "result" }> | undefined
  failure: string | undefined
  private stderr = ""
  private readonly listeners = new Set<() => void>()
  readonly exited: Promise<void>

  constructor(readonly index: number, private readonly child: ChildProcess) {
    live.add(child)
    child.stderr?.on("data", (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString("utf8")).slice(-2_000)
    })
    child.on("message", (message: FromWorker) => {
      switch (message.type) {
        case "ready":
          this.ready = true
          break
        case "progress":
          this.progress = message
          break
        case "result":
          this.result = message
          break
        case "error":
          this.failure ??= message.message
          break
      }
      this.changed()
    })
    child.on("error", (error) => {
      this.failure ??= error.message
      this.changed()
    })
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child)
        if (this.result === undefined) {
          const tail = this.stderr.trim()
          this.failure ??= `exited (code ${code}, signal ${signal})${tail === "" ? "" : `: ${tail}`}`
        }
        this.changed()
        resolve()
      })
    })
  }

  get pid(): number | undefined {
    return this.child.pid
  }

  send(message: ToWorker): void {
    if (this.child.connected) this.child.send(message)
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private changed(): void {
    for (const listener of [...this.listeners]) listener()
  }

  /** Stops the process (SIGTERM, then SIGKILL after 2 s) and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.child
    if (child.exitCode !== null || child.signalCode !== null) return this.exited
    child.kill("SIGTERM")
    const timer = setTimeout(() => child.kill("SIGKILL"), 2_000)
    await this.exited
    clearTimeout(timer)
  }
}

const forkWorker = (index: number): Effect.Effect<WorkerProcess, DemoError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        const entry = workerEntry()
        const child = fork(entry.path, [], {
          ...(entry.cwd === undefined ? {} : { cwd: entry.cwd }),
          execArgv: [...entry.execArgv],
          stdio: ["ignore", "ignore", "pipe", "ipc"],
          serialization: "json"
        })
        return new WorkerProcess(index, child)
      },
      catch: (error) => new DemoError({ reason: "failed", message: `could not start worker ${index + 1}: ${String(error)}` })
    }),
    (worker) => Effect.promise(() => worker.stop())
  )

/** Waits until `done` holds for every worker; fails as soon as one fails, or after `timeoutMs`. */
const waitForAll = (
  workers: ReadonlyArray<WorkerProcess>,
  done: (worker: WorkerProcess) => boolean,
  what: string,
  timeoutMs?: number
): Effect.Effect<void, DemoError> =>
  Effect.async<void, DemoError>((resume) => {
    let timer: NodeJS.Timeout | undefined
    const unsubscribe: Array<() => void> = []
    const finish = (error?: DemoError) => {
      clearTimeout(timer)
      for (const off of unsubscribe) off()
      resume(error === undefined ? Effect.void : Effect.fail(error))
    }
    const check = () => {
      const failed = workers.find((worker) => worker.failure !== undefined)
      if (failed !== undefined) return finish(new DemoError({ reason: "failed", message: `worker ${failed.index + 1} failed: ${failed.failure}` }))
      if (workers.every(done)) finish()
    }
    for (const worker of workers) unsubscribe.push(worker.onChange(check))
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => finish(new DemoError({ reason: "failed", message: `the workers did not ${what} within ${timeoutMs / 1000} s` })), timeoutMs)
    }
    check()
    return Effect.sync(() => {
      clearTimeout(timer)
      for (const off of unsubscribe) off()
    })
  })

/**
 * Deals the workload out to `procs` shares, round robin, so that every share has the same mix of calls.
 *
 * @example
 * ```ts
 * shares(makeWorkload(10, 1), 3).map((share) => share.length) // [4, 3, 3]
 * ```
 */
export const shares = (calls: ReadonlyArray<ChatCall>, procs: number): ReadonlyArray<ReadonlyArray<ChatCall>> =>
  Array.from({ length: procs }, (_, i) => calls.filter((_, index) => index % procs === i))

/**
 * Runs the demo across `procs` worker processes sharing one quota through Redis and returns its summary.
 *
 * @example
 * ```ts
 * const summary = yield* runMultiProcessDemo({ procs: 3, calls: 90, windowMs: 2_000, onProgress: view.update })
 * ```
 */
export const runMultiProcessDemo = (input: MultiProcessOptions): Effect.Effect<DemoSummary, DemoError> =>
  Effect.gen(function*() {
    const options = resolveOptions(input)
    const issues = [...validate(options)]
    const { procs } = input
    if (!Number.isSafeInteger(procs) || procs < 1 || procs > maxProcs) {
      issues.push(`procs must be an integer from 1 to ${maxProcs}, got ${procs}`)
    } else if (procs > options.calls) {
      issues.push(`procs (${procs}) must be at most the number of calls (${options.calls})`)
    }
    if (issues.length > 0) return yield* new DemoError({ reason: "invalid-options", message: `invalid demo options: ${issues.join("; ")}` })
    const { algorithm, limits, style, windowMs } = options

    const redisUrl = input.redisUrl ?? (yield* Effect.map(
      Effect.mapError(throwawayRedis, (error) => new DemoError({ reason: "failed", message: error.message })),
      (redis) => redis.url
    ))
    const emulator = yield* Emulator.serve(emulatorConfig(style, algorithm, windowMs, limits), { port: 0 }).pipe(
      Effect.mapError((error) => new DemoError({ reason: "failed", message: `the emulator could not start: ${error.message}` }))
    )
    const backend: DemoBackend = { kind: "redis", url: redisUrl, processes: procs }
    if (input.onStart) yield* input.onStart({ url: emulator.url, options, backend })

    const workload = makeWorkload(options.calls, options.seed)
    const progressIntervalMs = input.progressIntervalMs ?? 100
    const namespace = input.namespace ?? runNamespace()
    const workers = yield* Effect.forEach(shares(workload, procs), (calls, index) =>
      Effect.tap(forkWorker(index), (worker) =>
        Effect.sync(() =>
          worker.send({ type: "setup", options, emulatorUrl: emulator.url, redisUrl, namespace, calls, progressIntervalMs })
        )))
    yield* waitForAll(workers, (worker) => worker.ready, "start and connect", input.startTimeoutMs ?? 30_000)

    const start = Date.now()
    for (const worker of workers) worker.send({ type: "go" })

    const countsOf = (worker: WorkerProcess) => worker.result?.counts ?? worker.progress?.counts
    const progress = Effect.sync((): DemoProgress => {
      const counts = workers.map(countsOf)
      const sum = (field: "done" | "failed" | "inFlight" | "queued" | "rejected429") =>
        counts.reduce((total, c) => total + (c?.[field] ?? 0), 0)
      // Every worker reads the same shared quotas from Redis: the latest reading stands for all.
      const latest = workers
        .flatMap((worker) => (worker.progress === undefined ? [] : [worker.progress]))
        .reduce<{ readonly at: number; readonly counts: WorkerCounts } | undefined>(
          (a, b) => (a === undefined || b.at > a.at ? b : a),
          undefined
        )
      return {
        elapsedMs: Date.now() - start,
        total: workload.length,
        done: sum("done"),
        failed: sum("failed"),
        inFlight: sum("inFlight"),
        queued: sum("queued"),
        rejected429: sum("rejected429"),
        quotas: latest?.counts.quotas ?? []
      }
    })
    const report = input.onProgress === undefined ? Effect.void : Effect.flatMap(progress, input.onProgress)
    const ticker = yield* Effect.fork(Effect.repeat(report, Schedule.spaced(`${progressIntervalMs} millis`)))
    yield* waitForAll(workers, (worker) => worker.result !== undefined, "finish")
    yield* Fiber.interrupt(ticker)
    yield* report

    const stats = yield* fetchStats(emulator.url)
    const results = workers.flatMap((worker) => (worker.result === undefined ? [] : [worker.result]))
    const finite = (values: ReadonlyArray<unknown>) => values.filter((v): v is number => typeof v === "number" && Number.isFinite(v))
    const first = Math.min(start, ...finite(results.map((r) => r.first)))
    const end = Math.max(first, ...finite(results.map((r) => r.end)))
    const totals = { requests: 0, tokens: 0, input_tokens: 0, output_tokens: 0 }
    for (const result of results) {
      for (const metric of Object.keys(totals) as Array<keyof typeof totals>) totals[metric] += result.totals[metric]
    }
    return summarize(options, backend, {
      wallMs: end - first,
      ok: results.reduce((n, r) => n + r.counts.done, 0),
      failed: results.reduce((n, r) => n + r.counts.failed, 0),
      rejected429: results.reduce((n, r) => n + r.counts.rejected429, 0),
      waits: results.flatMap((r) => r.waits),
      totals
    }, stats)
  }).pipe(Effect.scoped)
