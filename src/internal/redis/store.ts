/**
 * One script call per operation, one attempt each, bounded by a timeout: the raw answers of the Redis
 * backend with the `now` (Redis clock) each script used. Retries and the failure policy live in
 * `src/Backend/Redis.ts`; tests compare these answers with `BucketState` at the same `now`.
 *
 * @internal
 */
import { Data, Effect } from "effect"
import { Cluster, type Redis } from "ioredis"
import type { BackendStatus } from "../../Backend.js"
import type { Bucket } from "../../Quota.js"
import type { ReserveOutcome } from "../bucketState.js"
import { capacityOf, effectiveLimit } from "../meters.js"
import { bucketKeys } from "./keys.js"
import { allScripts, type Script, scripts } from "./scripts.js"

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
 * Why a script call did not answer (`new RedisFailure({ kind: "unsent", message: "no connection" })`):
 * - `unsent`: the command never reached Redis (no connection, or Redis refused it before running it); safe to retry;
 * - `unknown`: no answer in time or the connection dropped with the command in flight: it may have run;
 * - `error`: Redis answered with an error.
 */
export class RedisFailure extends Data.TaggedError("RedisFailure")<{
  readonly kind: "unsent" | "unknown" | "error"
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
 * The operations as single script calls, and script loading.
 *
 * @example
 * ```ts
 * const { now, value } = yield* store.reserve(bucket, [1, 1200], 0) // value: a ReserveOutcome
 * ```
 */
export interface RedisStore {
  readonly reserve: (bucket: Bucket, charge: ReadonlyArray<number>, maxWaitMs: number) => Effect.Effect<Timed<ReserveOutcome>, RedisFailure>
  /** `false` when the reservation is not open. */
  readonly settle: (bucket: Bucket, id: string, actual: ReadonlyArray<number | undefined>) => Effect.Effect<Timed<boolean>, RedisFailure>
  /** `false` when the reservation is not open. */
  readonly release: (bucket: Bucket, id: string) => Effect.Effect<Timed<boolean>, RedisFailure>
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
  /** SCRIPT LOAD on every master, so that the first EVALSHA finds its script. */
  readonly loadScripts: Effect.Effect<void, RedisFailure>
}

/** Server errors raised before a command runs: retrying cannot run it twice. */
const notRun = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|NOREPLICAS)\b/
/** ioredis errors raised before a command is written to the socket. */
const notSent = [
  "enableOfflineQueue options is false",
  "Connection is closed.",
  "Cluster isn't ready",
  "None of startup nodes is available",
  "Failed to refresh slots cache"
]

/** Sorts an ioredis rejection: `classify(new Error("Command timed out")).kind === "unknown"`. */
export const classify = (error: unknown): RedisFailure => {
  const message = error instanceof Error ? error.message : String(error)
  if (error instanceof Error && error.name === "ReplyError") {
    return new RedisFailure({ kind: notRun.test(message) ? "unsent" : "error", message })
  }
  return new RedisFailure({ kind: notSent.some((text) => message.includes(text)) ? "unsent" : "unknown", message })
}

/**
 * The promise, or a failure of kind `unknown` once `ms` have passed without an answer. A plain timer rather
 * than `Effect.timeoutFail`: this runs on every command, and a timer costs no fiber.
 */
const bounded = <A>(promise: Promise<A>, ms: number): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new RedisFailure({ kind: "unknown", message: `no answer from Redis within ${ms} ms` })),
      ms
    )
    promise.then(
      (value) => {
        clearTimeout(timer)
        resolve(value)
      },
      (error: unknown) => {
        clearTimeout(timer)
        reject(error)
      }
    )
  })

const isNoScript = (error: unknown): boolean => error instanceof Error && error.message.startsWith("NOSCRIPT")

const formatNumber = (n: number): string => (n === Infinity ? "inf" : n === -Infinity ? "-inf" : String(n))

const parseNumber = (text: string): number => (text === "inf" ? Infinity : text === "-inf" ? -Infinity : Number(text))

interface Prepared {
  readonly keys: ReadonlyArray<string>
  /** KEYS, then the configuration part of ARGV. */
  readonly head: ReadonlyArray<string>
}

/**
 * Makes the script caller over a connected (or connecting) client.
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
      const keys = bucketKeys(options.namespace, bucket)
      const config = [
        String(options.reservationTtlMs),
        String(bucket.safetyRatio),
        String(bucket.burstMultiplier),
        String(bucket.skew),
        String(bucket.quotas.length),
        ...bucket.quotas.flatMap((q) => [q.metric, String(q.limit), String(q.windowMs), q.algorithm, q.refunds ? "1" : "0"])
      ]
      entry = { keys, head: [...keys, ...config] }
      prepared.set(bucket, entry)
    }
    return entry
  }

  const send = (script: Script, numKeys: number, args: Array<string>): Promise<unknown> =>
    client.evalsha(script.sha, numKeys, ...args).catch((error: unknown) =>
      // The server lost its script cache (restart, SCRIPT FLUSH, a node new to the cluster): EVAL loads it again.
      isNoScript(error) ? client.eval(script.lua, numKeys, ...args) : Promise.reject(error)
    )

  const run = (script: Script, bucket: Bucket, args: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<string>, RedisFailure> =>
    Effect.tryPromise({
      try: () => {
        const { head, keys } = prepare(bucket)
        return bounded(send(script, keys.length, [...head, ...args]), options.commandTimeoutMs)
      },
      catch: (error) => (error instanceof RedisFailure ? error : classify(error))
    }).pipe(
      Effect.flatMap((reply) =>
        Array.isArray(reply) && reply.every((item): item is string => typeof item === "string")
          ? Effect.succeed(reply)
          : Effect.fail(new RedisFailure({ kind: "error", message: `unexpected reply from the ${script.name} script: ${JSON.stringify(reply)}` }))
      )
    )

  const reserve = (bucket: Bucket, charge: ReadonlyArray<number>, maxWaitMs: number) =>
    Effect.map(
      run(scripts.reserve, bucket, [...bucket.quotas.map((_, i) => formatNumber(charge[i] ?? 0)), formatNumber(maxWaitMs)]),
      (reply): Timed<ReserveOutcome> => {
        switch (reply[0]) {
          case "R":
            return { now: parseNumber(reply[3]), value: { _tag: "Reserved", id: reply[1], at: parseNumber(reply[2]) } }
          case "W":
            return { now: parseNumber(reply[2]), value: { _tag: "Wait", retryAfterMs: parseNumber(reply[1]) } }
          default:
            return { now: parseNumber(reply[2]), value: { _tag: "TooLarge", metric: reply[1] } }
        }
      }
    )

  const closing = (script: Script) => (bucket: Bucket, args: ReadonlyArray<string>) =>
    Effect.map(run(script, bucket, args), (reply): Timed<boolean> => ({ now: parseNumber(reply[1]), value: reply[0] === "1" }))

  const settleScript = closing(scripts.settle)
  const releaseScript = closing(scripts.release)

  const status = (bucket: Bucket, demand: ReadonlyArray<number>) =>
    Effect.map(
      run(scripts.status, bucket, bucket.quotas.map((_, i) => formatNumber(demand[i] ?? 0))),
      (reply): Timed<BackendStatus> => ({
        now: parseNumber(reply[0]),
        value: {
          open: parseNumber(reply[1]),
          booked: parseNumber(reply[2]),
          waitMs: parseNumber(reply[3]),
          quotas: bucket.quotas.map((quota, i) => {
            const used = parseNumber(reply[4 + i])
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
    )

  const masters = (): ReadonlyArray<Redis> => (client instanceof Cluster ? client.nodes("master") : [client])

  const loadScripts = Effect.tryPromise({
    try: () => Promise.all(masters().flatMap((node) => allScripts.map((script) => node.script("LOAD", script.lua)))),
    catch: classify
  }).pipe(
    Effect.timeoutFail({
      duration: options.commandTimeoutMs,
      onTimeout: () => new RedisFailure({ kind: "unknown", message: `SCRIPT LOAD got no answer within ${options.commandTimeoutMs} ms` })
    }),
    Effect.asVoid
  )

  return {
    reserve,
    settle: (bucket, id, actual) => settleScript(bucket, [id, ...bucket.quotas.map((_, i) => (actual[i] === undefined ? "" : formatNumber(actual[i])))]),
    release: (bucket, id) => releaseScript(bucket, [id]),
    status,
    observe: (bucket, used, retryAfterMs) =>
      Effect.map(
        run(scripts.observe, bucket, [
          formatNumber(retryAfterMs),
          ...bucket.quotas.map((_, i) => (used[i] === undefined ? "" : formatNumber(used[i])))
        ]),
        (reply): Timed<void> => ({ now: parseNumber(reply[0]), value: undefined })
      ),
    loadScripts
  }
}
