/**
 * One call of the library (see `library.ts`) per operation, one attempt each, bounded by a timeout: the raw
 * answers of the Redis backend with the `now` (Redis clock) each call used. Retries and the failure policy live in
 * `src/Backend/Redis.ts`; tests compare these answers with `BucketState` at the same `now`.
 *
 * @internal
 */
import { Data, Effect } from "effect"
import { randomBytes } from "node:crypto"
import { Cluster, type Redis } from "ioredis"
import type { BackendStatus } from "../../Backend.js"
import type { Bucket } from "../../Quota.js"
import type { ReserveOutcome } from "../bucketState.js"
import { capacityOf, effectiveLimit } from "../meters.js"
import { scriptKeys } from "./keys.js"
import { type Call, calls, libraryCode, librarySource } from "./library.js"
import { explain } from "./luaSource.js"

/**
 * A standalone client or a Cluster.
 *
 * @example
 * ```ts
 * const client: RedisClient = new Redis({ lazyConnect: true })
 * ```
 */
export type RedisClient = Redis | Cluster

/**
 * Why a call did not answer (`new RedisFailure({ kind: "unsent", message: "no connection" })`):
 * - `unsent`: the command never reached Redis (no connection, or Redis refused it before running it); safe to retry;
 * - `unknown`: no answer in time or the connection dropped with the command in flight: it may have run;
 * - `error`: Redis answered with an error;
 * - `skipped`: not sent, because Redis did not answer a moment ago (see `skip`); not worth retrying at once.
 */
export class RedisFailure extends Data.TaggedError("RedisFailure")<{
  readonly kind: "unsent" | "unknown" | "error" | "skipped"
  readonly message: string
}> {}

/** An answer with the time (epoch ms, Redis clock) the script ran at: `{ now: 1732300000000.125, value: true }`. */
export interface Timed<A> {
  readonly now: number
  readonly value: A
}

/** `{ namespace: "quotaflow", reservationTtlMs: 600_000, commandTimeoutMs: 500 }` */
export interface StoreOptions {
  readonly namespace: string
  readonly reservationTtlMs: number
  readonly commandTimeoutMs: number
}

/**
 * The operations as single calls of the library, and loading it.
 *
 * @example
 * ```ts
 * const { now, value } = yield* store.reserve(bucket, [1, 1200], 0, token) // value: a ReserveOutcome
 * ```
 */
export interface RedisStore {
  /**
   * Books under `<Redis millisecond>-<token>`; `token` (letters and digits, at most 64, unique per reserve: see
   * `tokens`) lets a reserve whose answer was lost be released by `releaseToken` all the same. With `place`
   * (a name of the same kind, the same for every attempt of one waiting caller), a caller that is not admitted
   * keeps a place in the bucket's waiting line for `placeTtlMs`; without, it only goes where it delays nobody.
   */
  readonly reserve: (
    bucket: Bucket,
    charge: ReadonlyArray<number>,
    maxWaitMs: number,
    token: string,
    place?: { readonly name: string; readonly ttlMs: number }
  ) => Effect.Effect<Timed<ReserveOutcome>, RedisFailure>
  /** Gives up a place in the bucket's waiting line; `false` when it had none. */
  readonly leave: (bucket: Bucket, place: string) => Effect.Effect<Timed<boolean>, RedisFailure>
  /** `false` when the reservation is not open. */
  readonly settle: (bucket: Bucket, id: string, actual: ReadonlyArray<number | undefined>) => Effect.Effect<Timed<boolean>, RedisFailure>
  /** `false` when the reservation is not open. */
  readonly release: (bucket: Bucket, id: string) => Effect.Effect<Timed<boolean>, RedisFailure>
  /**
   * Releases the reservation a reserve of `token` booked, if it did; if not, leaves a tombstone so that the
   * reserve books nothing should it arrive later (a stalled connection). `false` when nothing was booked.
   */
  readonly releaseToken: (bucket: Bucket, token: string) => Effect.Effect<Timed<boolean>, RedisFailure>
  readonly status: (bucket: Bucket, demand: ReadonlyArray<number>) => Effect.Effect<Timed<BackendStatus>, RedisFailure>
  /**
   * What the provider said: block admissions for `retryAfterMs` from now (0 or `-Infinity`: no hint), and raise each
   * quota's usage to at least the reported amount (`undefined`: not reported). `BucketState.observe` with
   * `blockedUntil = now + retryAfterMs` on the Redis clock.
   */
  readonly observe: (
    bucket: Bucket,
    used: ReadonlyArray<number | undefined>,
    retryAfterMs: number
  ) => Effect.Effect<Timed<void>, RedisFailure>
  /**
   * Any other command, bounded by the same timeout: `store.command(() => client.evalsha(sha, 1, key))`. Its
   * rejection is classified like the operations' failures.
   */
  readonly command: (send: () => Promise<unknown>) => Effect.Effect<unknown, RedisFailure>
  /**
   * FUNCTION LOAD on every master, so that the first FCALL finds its function; on a server without Functions,
   * SCRIPT LOAD of every operation instead, and the store calls scripts from then on.
   */
  readonly load: Effect.Effect<void, RedisFailure>
  /**
   * After Redis failed to answer: the operations fail at once (kind `skipped`) for one command timeout, instead of
   * each waiting out its own. The first one after that asks Redis again: that is how the backend comes back to it.
   */
  readonly skip: () => void
  /** Whether the operations run as library functions (FCALL) or as scripts (EVALSHA): tests read it. */
  readonly mode: () => "function" | "script"
}

/** Server errors raised before a command runs: retrying cannot run it twice. */
const notRun = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|NOREPLICAS|OOM)\b/
/** ioredis errors raised before a command is written to the socket. */
const notSent = [
  "enableOfflineQueue options is false",
  "Connection is closed.",
  "Cluster isn't ready",
  "None of startup nodes is available",
  "Failed to refresh slots cache"
]

/**
 * Tokens for `reserve`, unique to this process and call: a random prefix, then a counter, in base 36.
 *
 * @example
 * ```ts
 * const next = tokens()
 * next() // "k3j9x0a71"
 * ```
 */
export const tokens = (): (() => string) => {
  const prefix = randomBytes(6).readUIntBE(0, 6).toString(36).padStart(10, "0")
  let n = 0
  return () => prefix + (++n).toString(36)
}

/** Sorts an ioredis rejection: `classify(new Error("Command timed out")).kind === "unknown"`. */
export const classify = (error: unknown): RedisFailure => {
  const message = error instanceof Error ? error.message : String(error)
  if (error instanceof Error && error.name === "ReplyError") {
    // An error raised in the Lua says where: the file and line (see luaSource.ts).
    return new RedisFailure({ kind: notRun.test(message) ? "unsent" : "error", message: explain(message, librarySource) })
  }
  return new RedisFailure({ kind: notSent.some((text) => message.includes(text)) ? "unsent" : "unknown", message })
}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** The server lost its script cache (restart, SCRIPT FLUSH, a node new to the cluster). */
const isNoScript = (error: unknown): boolean => messageOf(error).startsWith("NOSCRIPT")

/** The server has no such function: it lost its libraries (a restart without persistence, a new node). */
const isNoFunction = (error: unknown): boolean => /^ERR Function not found/i.test(messageOf(error))

/**
 * The server has no Functions at all (Redis 6 and older), or this user may not use them (an ACL without
 * FUNCTION LOAD, as some managed services set up).
 */
const isNoFunctions = (error: unknown): boolean =>
  /^(ERR unknown command|NOPERM)\b.*\b(fcall|function)/i.test(messageOf(error))

/** Another process loaded the same library first. */
const isLoaded = (error: unknown): boolean => /already exists/i.test(messageOf(error))

const formatNumber = (n: number): string => (n === Infinity ? "inf" : n === -Infinity ? "-inf" : String(n))

const parseNumber = (text: string): number => (text === "inf" ? Infinity : text === "-inf" ? -Infinity : Number(text))

const algorithmCode = { "token-bucket": "t", "sliding-window": "s", "fixed-window": "f", "concurrency": "c" } as const

/**
 * ARGV[1] of every script, space-separated: reservationTtlMs, the algorithms (a letter per quota), whether each
 * refunds (a digit per quota), burstMultiplier, skew, then per quota the limit it runs at (after the safety
 * ratio, as `meters.ts` derives it) and its window.
 *
 * @example
 * ```ts
 * configArg(bucket, 600_000) // "600000 tc 11 1 0 60 60000 4 0"
 * ```
 */
export const configArg = (bucket: Bucket, reservationTtlMs: number): string =>
  [
    String(reservationTtlMs),
    bucket.quotas.map((q) => algorithmCode[q.algorithm]).join(""),
    bucket.quotas.map((q) => (q.refunds ? "1" : "0")).join(""),
    String(bucket.burstMultiplier),
    String(bucket.skew),
    ...bucket.quotas.flatMap((q) => [String(effectiveLimit(q, bucket.safetyRatio)), String(q.windowMs)])
  ].join(" ")

/** The time a script ran at, from the `TIME` it ends its reply with, computed as the script computes it. */
const timeOf = (reply: ReadonlyArray<string>): number => Number(reply[reply.length - 2]) * 1000 + Number(reply[reply.length - 1]) / 1000

/** A script's reply, read for a bucket. */
type Parse<A> = (reply: ReadonlyArray<string>, bucket: Bucket) => A

const parseReserve: Parse<Timed<ReserveOutcome>> = (reply, bucket) => {
  const now = timeOf(reply)
  switch (reply[0]) {
    case "R":
      return { now, value: { _tag: "Reserved", id: reply[1], at: reply[2] === "" ? now : parseNumber(reply[2]) } }
    case "W":
      return { now, value: { _tag: "Wait", retryAfterMs: parseNumber(reply[1]) } }
    case "X":
      // Its token was released first (see `release`): its caller gave up on it, and nobody reads this answer.
      return { now, value: { _tag: "Wait", retryAfterMs: 0 } }
    default:
      return { now, value: { _tag: "TooLarge", metric: bucket.quotas[Number(reply[1])]?.metric ?? reply[1] } }
  }
}

const parseClosed: Parse<Timed<boolean>> = (reply) => ({ now: timeOf(reply), value: reply[0] === "1" })

const parseObserved: Parse<Timed<void>> = (reply) => ({ now: timeOf(reply), value: undefined })

const parseStatus: Parse<Timed<BackendStatus>> = (reply, bucket) => ({
  now: timeOf(reply),
  value: {
    open: parseNumber(reply[0]),
    booked: parseNumber(reply[1]),
    waitMs: parseNumber(reply[2]),
    quotas: bucket.quotas.map((quota, i) => {
      const used = parseNumber(reply[3 + i])
      const capacity = capacityOf(quota, bucket.safetyRatio, bucket.burstMultiplier)
      return {
        metric: quota.metric,
        algorithm: quota.algorithm,
        windowMs: quota.windowMs,
        limit: effectiveLimit(quota, bucket.safetyRatio),
        capacity,
        used,
        remaining: Math.max(0, capacity - used)
      }
    })
  }
})

const isReply = (reply: unknown): reply is ReadonlyArray<string> => {
  if (!Array.isArray(reply) || reply.length < 2) return false
  for (const item of reply) if (typeof item !== "string") return false
  return true
}

/** What Deadlines needs of a call. */
interface Expiring {
  readonly done: boolean
  deadline: number
  fail(failure: RedisFailure): void
}

/**
 * A command in flight: it ends once, with the reply, a failure, or the timeout, whichever comes first. A class
 * rather than closures: one of these is made for every command.
 */
abstract class Pending<A> implements Expiring {
  done = false
  /** When it fails for want of an answer (performance.now() ms). */
  deadline = 0

  constructor(readonly resume: (effect: Effect.Effect<A, RedisFailure>) => void) {}

  abstract answer(reply: unknown): void

  fail(failure: RedisFailure): void {
    this.end(Effect.fail(failure))
  }

  protected end(effect: Effect.Effect<A, RedisFailure>): void {
    if (this.done) return
    this.done = true
    this.resume(effect)
  }
}

/** A command other than the library's: its reply as it is. */
class Waiting extends Pending<unknown> {
  answer(reply: unknown): void {
    this.end(Effect.succeed(reply))
  }
}

/** A call of the library: its reply read by `parse`. */
class InFlight<A> extends Pending<A> {
  constructor(
    resume: (effect: Effect.Effect<A, RedisFailure>) => void,
    readonly call: Call,
    readonly bucket: Bucket,
    readonly parse: Parse<A>,
    readonly argv: Array<string | number>
  ) {
    super(resume)
  }

  answer(reply: unknown): void {
    if (this.done) return
    if (!isReply(reply)) {
      const message = `unexpected reply from ${this.call.operation}: ${JSON.stringify(reply)}`
      return this.end(Effect.fail(new RedisFailure({ kind: "error", message })))
    }
    this.end(Effect.succeed(this.parse(reply, this.bucket)))
  }
}

/** Commands per write while a burst of calls is sent (see `cork`). */
const BATCH = 8

/**
 * The calls waiting for an answer, in the order they were sent, and one timer that fails those past their
 * deadline. Every call gets the same timeout, so deadlines grow in that order: the expired calls are always at
 * the head, and the timer only ever waits for the head's deadline. Answers mostly come in that order too, so
 * answered calls leave from the head as new ones come. Cheaper than a timer per call, which a command cannot
 * afford.
 */
class Deadlines {
  private calls: Array<Expiring | undefined> = []
  private head = 0
  private timer: ReturnType<typeof setTimeout> | undefined = undefined
  private readonly sweep = () => this.expire()

  constructor(private readonly timeoutMs: number) {}

  add(call: Expiring): void {
    this.drop()
    call.deadline = performance.now() + this.timeoutMs
    this.calls.push(call)
    if (this.timer === undefined) this.arm(this.timeoutMs)
  }

  /** Lets the answered calls at the head go. */
  private drop(): void {
    const calls = this.calls
    while (this.head < calls.length && calls[this.head]!.done) calls[this.head++] = undefined
    if (this.head === calls.length) {
      calls.length = 0
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > calls.length) {
      this.calls = calls.slice(this.head)
      this.head = 0
    }
  }

  private arm(ms: number): void {
    this.timer = setTimeout(this.sweep, Math.max(1, Math.ceil(ms)))
    // The connection keeps the process alive while a call waits; this timer alone should not.
    this.timer.unref()
  }

  private expire(): void {
    this.timer = undefined
    const now = performance.now()
    for (let call = this.calls[this.head]; call !== undefined && call.deadline <= now; call = this.calls[this.head]) {
      call.fail(new RedisFailure({ kind: "unknown", message: `no answer from Redis within ${this.timeoutMs} ms` }))
      this.calls[this.head++] = undefined
    }
    this.drop()
    if (this.head < this.calls.length) this.arm(this.calls[this.head]!.deadline - now)
  }
}

interface Prepared {
  /** FCALL's (or EVALSHA's) arguments after the name: number of keys, keys, then the configuration (args[1]). */
  readonly head: ReadonlyArray<string | number>
}

/**
 * Makes the library's caller over a connected (or connecting) client.
 *
 * @example
 * ```ts
 * const store = makeStore(client, { namespace: "quotaflow", reservationTtlMs: 600_000, commandTimeoutMs: 500 })
 * ```
 */
export const makeStore = (client: RedisClient, options: StoreOptions): RedisStore => {
  const prepared = new WeakMap<Bucket, Prepared>()
  const prepare = (bucket: Bucket): Prepared => {
    let entry = prepared.get(bucket)
    if (entry === undefined) {
      const keys = scriptKeys(options.namespace, bucket)
      entry = { head: [keys.length, ...keys, configArg(bucket, options.reservationTtlMs)] }
      prepared.set(bucket, entry)
    }
    return entry
  }

  const deadlines = new Deadlines(options.commandTimeoutMs)

  // The commands that callers send within one tick leave a few at a time, in one write (writev) rather than one
  // system call each, which is most of what a command costs the client and much of what it costs Redis: the
  // connection is corked at the first command of a tick, uncorked every BATCH commands, so that Redis gets
  // work while the rest are being made, and at the end of the tick. Each command stays on its own (its own
  // reply, error and timer), unlike in a pipeline. A Cluster's connections are left alone.
  let corked: { cork(): void; uncork(): void } | undefined
  let batched = 0
  const uncork = () => {
    const stream = corked
    corked = undefined
    stream?.uncork()
  }
  const cork = () => {
    if (corked !== undefined) {
      if (++batched >= BATCH) {
        corked.uncork()
        corked.cork()
        batched = 0
      }
      return
    }
    if (client instanceof Cluster) return
    const stream = client.stream
    if (stream === undefined || !stream.writable) return
    stream.cork()
    corked = stream
    batched = 0
    process.nextTick(uncork)
  }

  const masters = (): ReadonlyArray<Redis> => (client instanceof Cluster ? client.nodes("master") : [client])

  // FCALL until a server turns out to have no Functions; scripts from then on.
  let mode: "function" | "script" = "function"

  /** FUNCTION LOAD on one node: true when the library is there now, false when the server has no Functions. */
  const loadOn = (node: Redis): Promise<boolean> =>
    node.call("FUNCTION", "LOAD", libraryCode).then(
      () => true,
      (error: unknown) => {
        if (isLoaded(error)) return true
        if (isNoFunctions(error)) return false
        throw error
      }
    )

  // One load at a time: the calls that found the library missing all wait for the same one.
  let loading: Promise<void> | undefined
  const loadAll = (): Promise<void> => {
    loading ??= (async () => {
      const loaded = await Promise.all(masters().map(loadOn))
      if (loaded.every(Boolean)) return
      mode = "script"
      await Promise.all(masters().flatMap((node) => Object.values(calls).map((call) => node.script("LOAD", call.lua))))
    })().finally(() => {
      loading = undefined
    })
    return loading
  }

  const send = (argv: Array<string | number>): Promise<unknown> =>
    mode === "function" ? client.fcall(...(argv as [string, number])) : client.evalsha(...(argv as [string, number]))

  const rejected = <A>(call: InFlight<A>, error: unknown): void => {
    if (call.done) return
    const answer = (reply: unknown) => call.answer(reply)
    const fail = (error: unknown) => call.fail(classify(error))
    if (isNoFunction(error) || isNoFunctions(error)) {
      // The server lost the library (a restart without persistence, a node new to the cluster), or never had
      // Functions: load it, or the scripts, and send the call again; it did not run.
      loadAll().then(() => {
        call.argv[0] = mode === "function" ? call.call.function : call.call.sha
        return send(call.argv).then(answer, fail)
      }, fail)
      return
    }
    if (isNoScript(error)) {
      // The server lost its script cache: EVAL loads it again.
      call.argv[0] = call.call.lua
      client.eval(...(call.argv as [string, number])).then(answer, fail)
      return
    }
    fail(error)
  }

  /**
   * One call of the library: its reply through `parse`, or a failure; a failure of kind `unknown` once
   * `commandTimeoutMs` have passed without an answer (see `Deadlines`). A caller
   * interrupted meanwhile is gone; the answer, when it comes, goes nowhere.
   */
  let skipUntil = -Infinity
  const skipped = new RedisFailure({ kind: "skipped", message: "Redis did not answer a moment ago" })

  const run = <A>(operation: Call, bucket: Bucket, args: Array<string | number>, parse: Parse<A>): Effect.Effect<A, RedisFailure> =>
    Effect.async<A, RedisFailure>((resume) => {
      if (skipUntil !== -Infinity) {
        if (performance.now() < skipUntil) return resume(Effect.fail(skipped))
        skipUntil = -Infinity
      }
      const argv = [mode === "function" ? operation.function : operation.sha, ...prepare(bucket).head, ...args]
      const call = new InFlight(resume, operation, bucket, parse, argv)
      deadlines.add(call)
      cork()
      send(argv).then(
        (reply) => call.answer(reply),
        (error: unknown) => rejected(call, error)
      )
    })

  const reserve = (
    bucket: Bucket,
    charge: ReadonlyArray<number>,
    maxWaitMs: number,
    token: string,
    place?: { readonly name: string; readonly ttlMs: number }
  ) => {
    const args: Array<string> = []
    for (let i = 0; i < bucket.quotas.length; i++) args.push(formatNumber(charge[i] ?? 0))
    args.push(formatNumber(maxWaitMs), token, place?.name ?? "", place === undefined ? "" : String(place.ttlMs))
    return run(calls.reserve, bucket, args, parseReserve)
  }

  const settle = (bucket: Bucket, id: string, actual: ReadonlyArray<number | undefined>) => {
    const args = [id]
    for (let i = 0; i < bucket.quotas.length; i++) args.push(actual[i] === undefined ? "" : formatNumber(actual[i]!))
    return run(calls.settle, bucket, args, parseClosed)
  }

  const observe = (bucket: Bucket, used: ReadonlyArray<number | undefined>, retryAfterMs: number) => {
    const args = [formatNumber(retryAfterMs)]
    for (let i = 0; i < bucket.quotas.length; i++) args.push(used[i] === undefined ? "" : formatNumber(used[i]!))
    return run(calls.observe, bucket, args, parseObserved)
  }

  const status = (bucket: Bucket, demand: ReadonlyArray<number>) =>
    run(calls.status, bucket, bucket.quotas.map((_, i) => formatNumber(demand[i] ?? 0)), parseStatus)

  const load = Effect.tryPromise({ try: loadAll, catch: classify }).pipe(
    Effect.timeoutFail({
      duration: options.commandTimeoutMs,
      onTimeout: () => new RedisFailure({ kind: "unknown", message: `FUNCTION LOAD got no answer within ${options.commandTimeoutMs} ms` })
    })
  )

  const command = (send: () => Promise<unknown>) =>
    Effect.async<unknown, RedisFailure>((resume) => {
      const waiting = new Waiting(resume)
      deadlines.add(waiting)
      send().then(
        (reply) => waiting.answer(reply),
        (error: unknown) => waiting.fail(classify(error))
      )
    })

  return {
    reserve,
    settle,
    release: (bucket, id) => run(calls.release, bucket, [id], parseClosed),
    releaseToken: (bucket, token) => run(calls.release, bucket, [`~${token}`], parseClosed),
    leave: (bucket, place) => run(calls.leave, bucket, [place], parseClosed),
    status,
    observe,
    command,
    skip: () => {
      skipUntil = performance.now() + options.commandTimeoutMs
    },
    load,
    mode: () => mode
  }
}
