/**
 * A child process of the Redis fault tests (`faults.test.ts`), forked like `worker.ts`: `node --import tsx`,
 * an IPC channel, its name and the audit server's address as JSON in `QUOTAFLOW_E2E`. One process serves
 * several scenarios in turn (starting one costs seconds on a small machine): `setup` builds a limiter on the
 * Redis backend for a scenario, `teardown` disposes it.
 *
 * Every call's work is a request to the audit server (see `test/support/audit.ts`), which counts how many run
 * at once across processes; every call is reported as it ends, with what it returned or how it failed: a typed
 * error (an instance of one of the library's error classes), a defect, or an interruption.
 *
 * Commands:
 * - `setup`: a limiter for the scenario; answers `set-up` once it is connected;
 * - `run`: callers per bucket that call in a loop until `stop` (after a failure a caller waits a little, as a
 *   user would, instead of spinning);
 * - `hold`: calls on a bucket whose work never ends; `held` once each is admitted;
 * - `stop`: no new calls; waits (at most `drainMs`) for the calls still running, then `stopped` with those that
 *   did not end;
 * - `teardown`: disposes the limiter; `torn-down` once done.
 */
import { Cause, Chunk, Data, Effect, Exit, Layer, ManagedRuntime } from "effect"
import {
  BackendUnavailable,
  CapacityExceeded,
  CircuitOpen,
  ConfigurationError,
  InvalidUsage,
  QueueOverflow,
  RateLimited,
  RateLimitedByProvider,
  RedisBackendLive,
  ReservationNotFound,
  UnknownBucket
} from "../../src/index.js"
import type { RedisBackendOptions } from "../../src/index.js"
import type { LimiterConfig } from "../../src/Quota.js"

/** What the parent passes in `QUOTAFLOW_E2E`. */
export interface FaultWorkerSettings {
  readonly name: string
  readonly auditUrl: string
}

/** The Redis backend's options a scenario sets (durations in milliseconds). */
export interface BackendSettings {
  readonly commandTimeoutMs?: number
  readonly reservationTtlMs?: number
  readonly onUnavailable?: RedisBackendOptions["onUnavailable"]
  readonly localShare?: number
}

/** Callers of one bucket: `callers` loops, each call's work held `workMs` by the audit server. */
export interface Load {
  readonly bucket: string
  readonly callers: number
  readonly workMs: number
}

export type FaultCommand =
  | {
    readonly type: "setup"
    readonly redisUrl: string
    readonly namespace: string
    readonly limiter: LimiterConfig
    readonly backend: BackendSettings
  }
  | { readonly type: "run"; readonly load: ReadonlyArray<Load>; readonly pauseAfterFailureMs: number }
  | { readonly type: "hold"; readonly bucket: string; readonly count: number }
  | { readonly type: "stop"; readonly drainMs: number }
  | { readonly type: "teardown"; readonly timeoutMs: number }

/** How a call ended. */
export type Outcome =
  /** It returned what its work returned. */
  | "ok"
  /** It failed with one of the library's error classes (`tag`). */
  | "typed"
  /** Its work failed (the audit server did not answer 200): a fault of the test, not of the limiter. */
  | "work-failed"
  /** A defect, an untyped failure, or an interruption. */
  | "defect"

/** One call, as it ended; times are epoch milliseconds of this machine's clock. */
export interface CallReport {
  readonly type: "call"
  readonly who: string
  readonly bucket: string
  readonly id: number
  readonly submitted: number
  /** When its work started (it was admitted), if it did. */
  readonly started?: number
  /** When its work returned successfully, if it did. */
  readonly worked?: number
  readonly ended: number
  readonly outcome: Outcome
  readonly tag?: string
  readonly message?: string
  /** What the call returned, when it did; `expected` is what its work answered. */
  readonly value?: string
  readonly expected: string
}

export type FaultReport =
  | { readonly type: "ready"; readonly pid: number }
  | { readonly type: "set-up" }
  | CallReport
  | { readonly type: "held"; readonly index: number; readonly at: number }
  | {
    readonly type: "stopped"
    /** Calls still running after `drainMs`. */
    readonly outstanding: ReadonlyArray<{ readonly bucket: string; readonly id: number; readonly submitted: number; readonly started?: number }>
  }
  | { readonly type: "torn-down"; readonly ms: number; readonly error?: string }
  | { readonly type: "error"; readonly message: string }

const settings: FaultWorkerSettings = JSON.parse(process.env.QUOTAFLOW_E2E ?? "{}")
const name = settings.name

const send = (report: FaultReport): void => {
  if (process.connected) process.send?.(report)
}

// The parent owns this process: without it, nothing is left to do.
process.on("disconnect", () => process.exit(0))

/** The audit server did not answer as it does. */
class WorkFailed extends Data.TaggedError("WorkFailed")<{ readonly message: string }> {}

const typedErrors = [
  BackendUnavailable,
  CapacityExceeded,
  CircuitOpen,
  ConfigurationError,
  InvalidUsage,
  QueueOverflow,
  RateLimitedByProvider,
  ReservationNotFound,
  UnknownBucket
]

const describe = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error))

/** Sorts a failed call's cause into a typed error of the library, a failure of the work, or a defect. */
const classify = (cause: Cause.Cause<unknown>): { outcome: Outcome; tag?: string; message: string } => {
  if (Cause.isInterruptedOnly(cause)) return { outcome: "defect", tag: "Interrupted", message: "interrupted" }
  const failures = [...Cause.failures(cause)]
  if (failures.length > 0 && Chunk.isEmpty(Cause.defects(cause))) {
    const error = failures[0]
    if (error instanceof WorkFailed) return { outcome: "work-failed", tag: "WorkFailed", message: error.message }
    if (typedErrors.some((type) => error instanceof type)) {
      return { outcome: "typed", tag: (error as { readonly _tag: string })._tag, message: describe(error) }
    }
    return { outcome: "defect", tag: "UntypedFailure", message: describe(error) }
  }
  const defect = Cause.squash(cause)
  return { outcome: "defect", tag: defect instanceof Error ? defect.name : "Defect", message: describe(defect) }
}

type Runtime = ManagedRuntime.ManagedRuntime<RateLimited.RateLimited, unknown>

let runtime: Runtime | undefined
let running = false
let nextId = 0
/** Calls not yet ended, by id. */
const open = new Map<number, { readonly bucket: string; readonly submitted: number; started?: number }>()
let wakeDrain: (() => void) | undefined

const work = (bucket: string, id: number, ms: number, onStart: () => void) =>
  Effect.tryPromise({
    try: async (signal) => {
      onStart()
      const response = await fetch(`${settings.auditUrl}/${bucket}?ms=${ms}&who=${name}&id=${id}`, { signal })
      const text = await response.text()
      if (response.status !== 200) throw new Error(`status ${response.status}`)
      return text
    },
    catch: (error) => new WorkFailed({ message: describe(error) })
  })

/** One call through the limiter, reported when it ends. */
const call = (rt: Runtime, bucket: string, workMs: number): Promise<CallReport> => {
  const id = ++nextId
  const submitted = Date.now()
  const entry: { bucket: string; submitted: number; started?: number } = { bucket, submitted }
  open.set(id, entry)
  let worked: number | undefined
  const effect = RateLimited.submit(
    { bucket },
    work(bucket, id, workMs, () => (entry.started = Date.now())).pipe(Effect.tap(() => Effect.sync(() => (worked = Date.now()))))
  )
  return rt.runPromiseExit(effect).then((exit) => {
    open.delete(id)
    if (open.size === 0) wakeDrain?.()
    const base = {
      type: "call" as const,
      who: name,
      bucket,
      id,
      submitted,
      ...(entry.started === undefined ? {} : { started: entry.started }),
      ...(worked === undefined ? {} : { worked }),
      ended: Date.now(),
      expected: `${name}:${bucket}:${id}`
    }
    const report: CallReport = Exit.isSuccess(exit)
      ? { ...base, outcome: "ok", value: exit.value }
      : { ...base, ...classify(exit.cause) }
    send(report)
    return report
  })
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const caller = async (rt: Runtime, load: Load, pauseAfterFailureMs: number) => {
  while (running && runtime === rt) {
    const report = await call(rt, load.bucket, load.workMs)
    if (report.outcome !== "ok") await sleep(pauseAfterFailureMs)
  }
}

const holdWork = (rt: Runtime, bucket: string, index: number) =>
  rt.runFork(
    RateLimited.submit(
      { bucket },
      Effect.zipRight(
        Effect.sync(() => send({ type: "held", index, at: Date.now() })),
        work(bucket, -1 - index, 600_000, () => undefined)
      )
    )
  )

const fail = (error: unknown) => send({ type: "error", message: `${name}: ${describe(error)}` })

const handle = async (command: FaultCommand): Promise<void> => {
  switch (command.type) {
    case "setup": {
      const backend = command.backend
      const layer = RateLimited.layer(command.limiter).pipe(
        Layer.provide(
          RedisBackendLive({
            url: command.redisUrl,
            namespace: command.namespace,
            ...(backend.commandTimeoutMs === undefined ? {} : { commandTimeout: backend.commandTimeoutMs }),
            ...(backend.reservationTtlMs === undefined ? {} : { reservationTtl: backend.reservationTtlMs }),
            ...(backend.onUnavailable === undefined ? {} : { onUnavailable: backend.onUnavailable }),
            ...(backend.localShare === undefined ? {} : { localShare: backend.localShare })
          })
        )
      )
      const rt: Runtime = ManagedRuntime.make(layer)
      await rt.runPromise(RateLimited.RateLimited)
      runtime = rt
      open.clear()
      return send({ type: "set-up" })
    }
    case "run": {
      const rt = runtime
      if (rt === undefined) throw new Error("run before setup")
      running = true
      for (const load of command.load) {
        for (let i = 0; i < load.callers; i++) void caller(rt, load, command.pauseAfterFailureMs).catch(fail)
      }
      return
    }
    case "hold": {
      const rt = runtime
      if (rt === undefined) throw new Error("hold before setup")
      for (let i = 0; i < command.count; i++) holdWork(rt, command.bucket, i)
      return
    }
    case "stop": {
      running = false
      if (open.size > 0) {
        await Promise.race([new Promise<void>((resolve) => (wakeDrain = resolve)), sleep(command.drainMs)])
        wakeDrain = undefined
      }
      return send({
        type: "stopped",
        outstanding: [...open].map(([id, entry]) => ({ id, ...entry }))
      })
    }
    case "teardown": {
      const rt = runtime
      runtime = undefined
      const start = Date.now()
      if (rt === undefined) return send({ type: "torn-down", ms: 0 })
      const disposed = await Promise.race([
        rt.dispose().then(() => undefined, (error: unknown) => describe(error)),
        sleep(command.timeoutMs).then(() => `not disposed within ${command.timeoutMs} ms`)
      ])
      return send({ type: "torn-down", ms: Date.now() - start, ...(disposed === undefined ? {} : { error: disposed }) })
    }
  }
}

process.on("message", (command: FaultCommand) => {
  handle(command).catch(fail)
})

send({ type: "ready", pid: process.pid })
