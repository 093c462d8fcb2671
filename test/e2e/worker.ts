/**
 * A child process of the multi-process end-to-end tests, run with `node --import tsx test/e2e/worker.ts` and an
 * IPC channel (`child_process.fork`). Its settings come as JSON in the `QUOTAFLOW_E2E` environment variable
 * (see `WorkerSettings`); it builds a limiter on the Redis backend, says `ready`, then obeys the parent's
 * commands and reports every call as it ends. It exits when the parent goes away.
 *
 * Commands:
 * - `go`: sends a share of a chat workload to the emulator through `RateLimited.submit`, with `callers`
 *   concurrent callers, reporting each call, then `done`;
 * - `hold`: takes concurrency slots with calls that never finish, and reports each admission;
 * - `slots`: takes up to `count` slots of a concurrency bucket at once, polling, and reports when;
 * - `rate`: a burst of calls to the emulator under a rate quota;
 * - `wait-slot`: one call that waits for a slot without a deadline, reported when admitted;
 * - `charge`: `calls` calls at once, each charging `tokens` and doing nothing, each reported when admitted.
 */
import { Cause, Effect, Exit, Layer, ManagedRuntime, type Scope } from "effect"
import { RateLimited, RedisBackendLive } from "../../src/index.js"
import type { LimiterConfig } from "../../src/Quota.js"

/** What the parent passes in `QUOTAFLOW_E2E`. */
export interface WorkerSettings {
  readonly name: string
  readonly redisUrl: string
  readonly emulatorUrl: string
  readonly namespace: string
  readonly reservationTtlMs?: number
  readonly limiter: LimiterConfig
  /** Concurrent callers of `go` (default 32). */
  readonly callers?: number
  /**
   * Calls to make before saying ready, through `bucket` to a second emulator at `url`, with `callers` of them
   * at once: the code paths of a call are compiled and HTTP connections open before the measured run.
   */
  readonly warmup?: { readonly url: string; readonly bucket: string; readonly calls: number }
}

/** One chat call with its token counts fixed in advance. */
export interface ChatCall {
  readonly id: number
  readonly promptTokens: number
  readonly maxTokens: number
  readonly completionTokens: number
}

/** Commands from the parent. */
export type Command =
  | { readonly type: "go"; readonly calls: ReadonlyArray<ChatCall> }
  | { readonly type: "hold"; readonly bucket: string; readonly count: number }
  | { readonly type: "slots"; readonly bucket: string; readonly count: number; readonly intervalMs: number; readonly timeoutMs: number }
  | { readonly type: "rate"; readonly bucket: string; readonly calls: number }
  | { readonly type: "wait-slot"; readonly bucket: string }
  | { readonly type: "charge"; readonly bucket: string; readonly tokens: number; readonly calls: number }

/** Reports to the parent; times are epoch milliseconds of this machine's clock. */
export type Report =
  | { readonly type: "ready"; readonly pid: number }
  | {
    readonly type: "result"
    readonly id: number
    /** HTTP status, or -1 when the call failed without a response. */
    readonly status: number
    readonly submitted: number
    readonly started: number
    readonly ended: number
    readonly error?: string
  }
  | { readonly type: "done"; readonly first: number; readonly last: number }
  | { readonly type: "held"; readonly index: number; readonly at: number }
  | {
    readonly type: "slots"
    /** When each slot was taken, in order. */
    readonly taken: ReadonlyArray<number>
    /** Attempts refused before all were taken. */
    readonly refused: number
    readonly firstAttempt: number
  }
  | {
    readonly type: "rate"
    readonly statuses: ReadonlyArray<number>
    /** When each call ended, in the order of `statuses`. */
    readonly ended: ReadonlyArray<number>
    readonly first: number
  }
  | { readonly type: "wait-slot"; readonly admitted: number }
  | { readonly type: "queued"; readonly at: number }
  | { readonly type: "charged"; readonly tokens: number; readonly admitted: number }
  | { readonly type: "error"; readonly message: string }

const settings: WorkerSettings = JSON.parse(process.env.QUOTAFLOW_E2E ?? "{}")

const send = (report: Report): void => {
  if (process.connected) process.send?.(report)
}

// The parent owns this process: without it, nothing is left to do.
process.on("disconnect", () => process.exit(0))

const LimiterLive = RateLimited.layer(settings.limiter).pipe(
  Layer.provide(
    RedisBackendLive({
      url: settings.redisUrl,
      namespace: settings.namespace,
      ...(settings.reservationTtlMs === undefined ? {} : { reservationTtl: settings.reservationTtlMs })
    })
  )
)
const runtime = ManagedRuntime.make(LimiterLive)

const chatBody = (call: ChatCall) => ({
  model: "gpt-4o",
  messages: [{ role: "user", content: `Request ${call.id} from ${settings.name}` }],
  max_tokens: call.maxTokens,
  x_prompt_tokens: call.promptTokens,
  x_completion_tokens: call.completionTokens
})

/** Posts one chat completion and reads the whole answer; resolves with the status. */
const post = (body: unknown, url = settings.emulatorUrl): Effect.Effect<number, Error> =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal
      })
      await response.text()
      return response.status
    },
    catch: (error) => (error instanceof Error ? error : new Error(String(error)))
  })

const describeCause = (cause: Cause.Cause<unknown>): string => {
  const error = Cause.squash(cause)
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error)
}

/** `go`: `callers` callers take the calls in order and submit each one. */
const load = (calls: ReadonlyArray<ChatCall>) =>
  Effect.gen(function*() {
    let next = 0
    let first = Infinity
    let last = -Infinity
    const one = (call: ChatCall) =>
      Effect.gen(function*() {
        const submitted = Date.now()
        first = Math.min(first, submitted)
        let started = Number.NaN
        const exit = yield* Effect.exit(
          RateLimited.submit(
            { bucket: "chat", usage: { tokens: call.promptTokens + call.maxTokens } },
            Effect.suspend(() => {
              started = Date.now()
              return post(chatBody(call))
            })
          )
        )
        const ended = Date.now()
        last = Math.max(last, ended)
        send(
          Exit.isSuccess(exit)
            ? { type: "result", id: call.id, status: exit.value, submitted, started, ended }
            : { type: "result", id: call.id, status: -1, submitted, started, ended, error: describeCause(exit.cause) }
        )
      })
    const caller = Effect.gen(function*() {
      while (next < calls.length) yield* one(calls[next++]!)
    })
    yield* Effect.all(Array.from({ length: settings.callers ?? 32 }, () => caller), { concurrency: "unbounded", discard: true })
    send({ type: "done", first, last })
  })

/** `hold`: `count` calls on a concurrency bucket that never end. */
const hold = (bucket: string, count: number) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (index) =>
      RateLimited.submit(
        { bucket },
        Effect.zipRight(Effect.sync(() => send({ type: "held", index, at: Date.now() })), Effect.never)
      ),
    { concurrency: "unbounded", discard: true }
  )

/**
 * Takes `count` slots of a concurrency bucket at once: every `intervalMs`, asks for the missing ones with a
 * short `maxWait` (a full concurrency quota refuses at once; `maxWait: 0` would refuse even a free slot, since
 * its deadline passes before the queue asks the backend), keeps what it got, and gives all back at the end.
 * Reports what it took once it has `count` slots or `timeoutMs` has passed.
 */
const slots = (bucket: string, count: number, intervalMs: number, timeoutMs: number) =>
  Effect.scoped(
    Effect.gen(function*() {
      const firstAttempt = Date.now()
      const taken: Array<number> = []
      let refused = 0
      while (taken.length < count) {
        if (Date.now() - firstAttempt > timeoutMs) break
        const permit = yield* Effect.either(RateLimited.reserve({ bucket }, { maxWait: "200 millis" }))
        if (permit._tag === "Right") {
          taken.push(Date.now())
          continue
        }
        if (permit.left._tag !== "CapacityExceeded") return yield* Effect.fail(permit.left)
        refused++
        yield* Effect.sleep(intervalMs)
      }
      send({ type: "slots", taken, refused, firstAttempt })
    })
  )

/** A burst of `calls` calls to the emulator under a rate quota, all at once. */
const rate = (bucket: string, calls: number) =>
  Effect.gen(function*() {
    const first = Date.now()
    const ended: Array<number> = []
    const statuses = yield* Effect.forEach(
      Array.from({ length: calls }, (_, i) => i),
      (i) =>
        RateLimited.submit(
          { bucket },
          post(chatBody({ id: i, promptTokens: 10, maxTokens: 10, completionTokens: 5 }))
        ).pipe(
          Effect.catchAll(() => Effect.succeed(-1)),
          Effect.ensuring(Effect.sync(() => (ended[i] = Date.now())))
        ),
      { concurrency: "unbounded" }
    )
    send({ type: "rate", statuses, ended, first })
  })

/** One call that waits for a slot, with no deadline; reports when it is admitted. */
const waitSlot = (bucket: string) =>
  RateLimited.submit({ bucket }, Effect.sync(() => send({ type: "wait-slot", admitted: Date.now() })))

/** `calls` calls at once, each charging `tokens`; says when they are queued, then when each is admitted. */
const charge = (bucket: string, tokens: number, calls: number) =>
  Effect.gen(function*() {
    const all = yield* Effect.forkScoped(Effect.forEach(
      Array.from({ length: calls }, (_, i) => i),
      () => RateLimited.submit({ bucket, usage: { tokens } }, Effect.sync(() => send({ type: "charged", tokens, admitted: Date.now() }))),
      { concurrency: "unbounded", discard: true }
    ))
    yield* Effect.yieldNow()
    send({ type: "queued", at: Date.now() })
    yield* all.await
  })

const run = <E>(effect: Effect.Effect<void, E, RateLimited.RateLimited | Scope.Scope>): void => {
  runtime.runFork(
    Effect.scoped(effect).pipe(
      Effect.catchAllCause((cause) => Effect.sync(() => send({ type: "error", message: describeCause(cause) })))
    )
  )
}

process.on("message", (command: Command) => {
  switch (command.type) {
    case "go":
      return run(load(command.calls))
    case "hold":
      return run(hold(command.bucket, command.count))
    case "slots":
      return run(slots(command.bucket, command.count, command.intervalMs, command.timeoutMs))
    case "rate":
      return run(rate(command.bucket, command.calls))
    case "wait-slot":
      return run(waitSlot(command.bucket))
    case "charge":
      return run(charge(command.bucket, command.tokens, command.calls))
  }
})

/** Calls through the warm-up bucket to the warm-up emulator, `callers` at once. */
const warmup = (warm: NonNullable<WorkerSettings["warmup"]>) =>
  Effect.forEach(
    Array.from({ length: warm.calls }, (_, i) => i),
    (i) =>
      RateLimited.submit(
        { bucket: warm.bucket, usage: { tokens: 1_000 } },
        post(chatBody({ id: -1 - i, promptTokens: 500, maxTokens: 500, completionTokens: 100 }), warm.url)
      ),
    { concurrency: settings.callers ?? 32, discard: true }
  )

// Connects to Redis and to the emulator (and warms up) before saying ready, so that no start-up is counted in a run.
runtime.runPromise(
  Effect.gen(function*() {
    yield* RateLimited.RateLimited
    yield* Effect.tryPromise(() => fetch(`${settings.emulatorUrl}/stats`).then((response) => response.text()))
    if (settings.warmup !== undefined) yield* warmup(settings.warmup)
  })
).then(
  () => send({ type: "ready", pid: process.pid }),
  (error: unknown) => {
    send({ type: "error", message: `start-up failed: ${String(error)}` })
    process.exit(1)
  }
)
