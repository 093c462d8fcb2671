/**
 * The Redis backend: quota state shared by every process that talks to the same Redis (standalone or Cluster).
 * Each operation is one call (FCALL) of a Lua function library the backend loads, one round trip, on the
 * server's clock (`TIME`); servers without Functions (before Redis 7) run the same code as scripts. The library
 * ports the memory backend's math, so both backends give the same answers.
 *
 * When Redis does not answer, `onUnavailable` decides: `fail-closed` (default) fails with `BackendUnavailable`,
 * `fail-open` admits and counts it in `failOpenAdmissions`, `local` admits against an in-memory share of each
 * quota (`localShare`) until Redis answers again. Every call is bounded: each attempt by `commandTimeout`,
 * retries by a bounded, jittered exponential schedule.
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Either, Layer, Metric, Schedule, type Scope } from "effect"
import { Cluster, Redis, type RedisOptions } from "ioredis"
import { Backend, type BackendService, type BackendStatus, type ReserveResult } from "../Backend.js"
import { BackendUnavailable, CapacityExceeded, type ConfigurationError, ReservationNotFound } from "../Errors.js"
import { BucketState, type ReserveOutcome } from "../internal/bucketState.js"
import { capacityOf } from "../internal/meters.js"
import { makeBreaker } from "../internal/redis/breaker.js"
import * as Options from "../internal/redis/options.js"
import { makeLines } from "../internal/redis/line.js"
import { classify, makeStore, RedisFailure, type Timed, tokens } from "../internal/redis/store.js"
import type { Bucket } from "../Quota.js"

/**
 * What the backend does when Redis does not answer (after retries):
 * - `fail-closed`: fail with `BackendUnavailable`;
 * - `fail-open`: admit at once, counted in `failOpenAdmissions`;
 * - `local`: admit against this process's share (`localShare`) of each quota, kept in memory.
 *
 * @example
 * ```ts
 * import type { RedisBackend } from "quotaflow"
 * const policy: RedisBackend.UnavailablePolicy = "local"
 * ```
 * @since 0.1.0
 */
export type UnavailablePolicy = "fail-closed" | "fail-open" | "local"

/**
 * Retries of a call Redis did not run (no connection, a server still loading, a cluster resharding):
 * exponential from `base` by `factor`, jittered (80%..120%), each delay capped at `maxDelay`, at most `times`.
 * A reserve that may have run (no answer in time) is never retried, so that it cannot book twice.
 *
 * @example
 * ```ts
 * import type { RedisBackend } from "quotaflow"
 * const retry: RedisBackend.RetryOptions = { times: 3, base: "10 millis", maxDelay: "100 millis" }
 * ```
 * @since 0.1.0
 */
export interface RetryOptions {
  /** Retries after the first attempt (default 2). */
  readonly times?: number
  /** The first delay (default 20 ms). */
  readonly base?: Duration.DurationInput
  /** Growth of the delay per retry (default 2). */
  readonly factor?: number
  /** The longest delay (default 200 ms). */
  readonly maxDelay?: Duration.DurationInput
}

/**
 * Options of the Redis backend. The connection is, in this order of precedence: `client` (an ioredis `Redis`
 * you own), `cluster` (an ioredis `Cluster` you own), `url` (`redis://`, `rediss://`, with user, password and
 * db), or `connection` (ioredis options: host, port, password, db, tls...), by default `localhost:6379`.
 * A connection the backend creates is opened in the layer's scope and closed with it; one you pass is
 * connected if it is not yet, and left open. Either way the backend opens one more, a copy of it, to subscribe to
 * the buckets' wake-ups (see `pollInterval`), and closes it with the scope. Create yours with `enableOfflineQueue: false`, otherwise
 * commands issued while it is disconnected run late, when it reconnects.
 *
 * @example
 * ```ts
 * import type { RedisBackend } from "quotaflow"
 * const options: RedisBackend.RedisBackendOptions = {
 *   url: "rediss://:secret@redis.internal:6380/2",
 *   namespace: "billing",
 *   reservationTtl: "5 minutes",
 *   onUnavailable: "local",
 *   localShare: 0.25
 * }
 * ```
 * @since 0.1.0
 */
export interface RedisBackendOptions {
  readonly url?: string
  readonly client?: Redis
  readonly cluster?: Cluster
  readonly connection?: RedisOptions
  /** Prefix of every key, so that several limiters can share one Redis (default `"quotaflow"`). */
  readonly namespace?: string
  /**
   * A reservation never settled nor released (its process died) is closed after this long: its concurrency
   * slot comes back; what it booked on rate quotas stays booked, since the call may have run (default 10 minutes).
   */
  readonly reservationTtl?: Duration.DurationInput
  /** Default `"fail-closed"`. */
  readonly onUnavailable?: UnavailablePolicy
  /** With `onUnavailable: "local"`: the fraction of every limit this process may use on its own, in (0, 1] (default 1). */
  readonly localShare?: number
  readonly retry?: RetryOptions
  /** The longest wait for one answer from Redis (default 500 ms). */
  readonly commandTimeout?: Duration.DurationInput
  /** The longest wait for the connection at start (default 2 seconds). */
  readonly connectTimeout?: Duration.DurationInput
  /**
   * How often a caller waiting for capacity asks Redis again when no wake-up came (default 500 ms). Room that
   * another process makes (a settle, a release, an expired orphan, the oldest waiter admitted) is published to
   * the waiting processes at once; this poll is the safety net for a wake-up lost on the way. A waiting
   * caller's place in the bucket's line lasts two polls and a command timeout without its process asking.
   */
  readonly pollInterval?: Duration.DurationInput
}

/**
 * Calls admitted without Redis under `onUnavailable: "fail-open"`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { RedisBackend } from "quotaflow"
 * const admittedBlind = Metric.value(RedisBackend.failOpenAdmissions).pipe(Effect.map((state) => state.count))
 * ```
 * @since 0.1.0
 */
export const failOpenAdmissions = Metric.counter("quotaflow_redis_fail_open_admissions", {
  description: "Calls admitted without Redis under the fail-open policy",
  incremental: true
})

/**
 * Calls admitted against the local share under `onUnavailable: "local"`.
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { RedisBackend } from "quotaflow"
 * const admittedLocally = Metric.value(RedisBackend.localAdmissions).pipe(Effect.map((state) => state.count))
 * ```
 * @since 0.1.0
 */
export const localAdmissions = Metric.counter("quotaflow_redis_local_admissions", {
  description: "Calls admitted against this process's local share while Redis was unavailable",
  incremental: true
})

/** Most closings one process keeps owing Redis; past it, reservationTtl closes them in Redis. */
const MAX_OWED = 100_000

const LOCAL = "local:"
const OPEN = "open:"

interface Settings extends Options.Settings {
  readonly schedule: Schedule.Schedule<unknown, RedisFailure>
}

/** The decoded options (see `decodeOptions`), and the retry schedule they describe. */
const settingsOf = (options: Options.Settings): Settings => ({
  ...options,
  schedule: Schedule.exponential(Duration.millis(options.retry.baseMs), options.retry.factor).pipe(
    Schedule.jittered,
    Schedule.modifyDelay((_, delay) => Duration.min(delay, Duration.millis(options.retry.maxDelayMs))),
    Schedule.intersect(Schedule.recurs(options.retry.times))
  )
})

type Client = Redis | Cluster

const notFound = (bucket: Bucket, id: string) => Effect.fail(new ReservationNotFound({ bucket: bucket.name, id }))

const unsent = (failure: RedisFailure): boolean => failure.kind === "unsent"
const sentOrNot = (failure: RedisFailure): boolean => failure.kind === "unsent" || failure.kind === "unknown"

/** The effect's failure to `onFailure`, its success to `onSuccess`, as `Effect.matchEffect` does. */
const match = <A, E, A2, E2, R2, A3, E3, R3>(
  self: Effect.Effect<A, E>,
  onFailure: (e: E) => Effect.Effect<A2, E2, R2>,
  onSuccess: (a: A) => Effect.Effect<A3, E3, R3>
): Effect.Effect<A2 | A3, E2 | E3, R2 | R3> =>
  // Not Effect.matchEffect: it costs about twice as much on every call, and the answer is the same.
  Effect.flatMap(
    Effect.either(self),
    (answer): Effect.Effect<A2 | A3, E2 | E3, R2 | R3> => (Either.isLeft(answer) ? onFailure(answer.left) : onSuccess(answer.right))
  )

const createClient = (options: RedisBackendOptions, settings: Settings): Redis => {
  const redisOptions: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: Math.ceil(settings.connectTimeoutMs),
    retryStrategy: (times) => Math.min(25 * 2 ** Math.min(times, 5), 500),
    ...options.connection,
    lazyConnect: true
  }
  return options.url !== undefined ? new Redis(options.url, redisOptions) : new Redis(redisOptions)
}

const closeClient = (client: Client): Effect.Effect<void> =>
  Effect.tryPromise(() => client.quit()).pipe(
    Effect.timeout(200),
    Effect.ignore,
    Effect.ensuring(Effect.sync(() => client.disconnect()))
  )

/** The connection for the lifetime of the scope; fails only when it cannot connect and the policy is fail-closed. */
const connect = (options: RedisBackendOptions, settings: Settings): Effect.Effect<Client, BackendUnavailable, Scope.Scope> =>
  Effect.gen(function*() {
    const client: Client = options.client ?? options.cluster ??
      (yield* Effect.acquireRelease(
        Effect.sync(() => {
          const created = createClient(options, settings)
          // Failures reach the callers through their commands; without a listener ioredis prints every one.
          created.on("error", () => {})
          return created
        }),
        closeClient
      ))
    if (client.status === "wait") {
      const connected = yield* Effect.tryPromise({ try: () => client.connect(), catch: classify }).pipe(
        Effect.timeoutFail({
          duration: settings.connectTimeoutMs,
          onTimeout: () => new RedisFailure({ kind: "unknown", message: `no connection within ${settings.connectTimeoutMs} ms` })
        }),
        Effect.either
      )
      if (connected._tag === "Left") {
        if (settings.policy === "fail-closed") {
          return yield* Effect.fail(new BackendUnavailable({ cause: `cannot connect to Redis: ${connected.left.message}` }))
        }
        yield* Effect.logWarning(`Redis is unavailable at start (${connected.left.message}); running ${settings.policy} until it answers`)
      }
    }
    return client
  })

/**
 * Makes a Redis backend in a scope: connects, loads the function library, and closes the connection it created when
 * the scope closes. Bad options fail with `ConfigurationError`, every one named, before anything connects.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Backend, Quota, RedisBackend } from "quotaflow"
 *
 * const program = Effect.gen(function*() {
 *   const backend = yield* RedisBackend.make({ url: "redis://127.0.0.1:6379", namespace: "demo" })
 *   const buckets = yield* Quota.decodeConfig({ buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }] } } })
 *   return yield* backend.reserve(buckets.get("chat")!, [1], 0)
 * }).pipe(Effect.scoped)
 * ```
 * @since 0.1.0
 */
export const make = (
  options: RedisBackendOptions = {}
): Effect.Effect<BackendService, BackendUnavailable | ConfigurationError, Scope.Scope> =>
  Effect.gen(function*() {
    // Before anything connects: a misspelled policy must not run as another one.
    const settings = settingsOf(yield* Options.decodeOptions(options))
    const client = yield* connect(options, settings)
    const store = makeStore(client, settings)
    yield* Effect.ignore(store.load)

    /** Remembers that Redis did not answer, so that calls skip it for a while (see `store.skip`). */
    const noted = (failure: RedisFailure): Effect.Effect<never, RedisFailure> =>
      failure.kind === "unsent" || failure.kind === "unknown"
        ? Effect.zipRight(Effect.sync(store.skip), Effect.fail(failure))
        : Effect.fail(failure)

    /**
     * One call with retries; `retryUnknown` when running it twice is harmless. `uncertain` reads the answer of a
     * retry that came after an attempt that may have run. Everything but the first attempt is made only once it
     * failed: the retry schedule, and the tracking of what the attempts may have done.
     */
    const call = <A>(
      effect: Effect.Effect<A, RedisFailure>,
      retryUnknown: boolean,
      uncertain?: (answer: A) => A
    ): Effect.Effect<A, RedisFailure> =>
      Effect.catchAll(effect, (first) => {
        const retryable = retryUnknown ? sentOrNot : unsent
        if (!retryable(first)) return noted(first)
        let unknown = first.kind === "unknown"
        const attempt = Effect.tapError(effect, (failure) => Effect.sync(() => (unknown ||= failure.kind === "unknown")))
        // The first failure goes through the schedule as it would have inside Effect.retry.
        let replayed = false
        const again = Effect.suspend(() => (replayed ? attempt : ((replayed = true), Effect.fail(first))))
        const retried = Effect.catchAll(Effect.retry(again, { schedule: settings.schedule, while: retryable }), noted)
        return uncertain === undefined ? retried : Effect.map(retried, (answer) => (unknown ? uncertain(answer) : answer))
      })

    const unavailable = (failure: RedisFailure) => new BackendUnavailable({ cause: failure.message })

    const locals = new Map<string, BucketState>()
    const localOf = (bucket: Bucket): BucketState => {
      let state = locals.get(bucket.name)
      if (state === undefined) {
        state = new BucketState({ ...bucket, safetyRatio: bucket.safetyRatio * settings.localShare })
        locals.set(bucket.name, state)
      }
      return state
    }
    let openIds = 0

    const tooLarge = (bucket: Bucket, charge: ReadonlyArray<number>): CapacityExceeded | undefined => {
      const i = bucket.quotas.findIndex((q, i) => (charge[i] ?? 0) > capacityOf(q, bucket.safetyRatio, bucket.burstMultiplier))
      return i < 0 ? undefined : new CapacityExceeded({ bucket: bucket.name, reason: "too-large", metric: bucket.quotas[i].metric })
    }

    const fromOutcome = (bucket: Bucket, outcome: ReserveOutcome, prefix: string): Effect.Effect<ReserveResult, CapacityExceeded> => {
      switch (outcome._tag) {
        case "Reserved":
          return Effect.succeed({ _tag: "Reserved", reservation: { id: prefix + outcome.id, bucket: bucket.name, at: outcome.at } })
        case "Wait":
          return Effect.succeed({ _tag: "Wait", retryAfterMs: outcome.retryAfterMs })
        case "TooLarge":
          return Effect.fail(new CapacityExceeded({ bucket: bucket.name, reason: "too-large", metric: outcome.metric }))
      }
    }

    /**
     * What Redis still owes this process, by bucket and id: the release of a reserve whose answer was lost (it
     * may have booked, under a token only this process knows), and settles or releases that could not reach
     * it. `repair` sends them again until Redis answers, whatever the answer: each is safe to run twice.
     */
    const owed = new Map<string, { readonly bucket: Bucket; readonly close: Effect.Effect<unknown, RedisFailure> }>()
    const owe = (bucket: Bucket, id: string, close: Effect.Effect<unknown, RedisFailure>): void => {
      if (owed.size < MAX_OWED) owed.set(`${bucket.name}\u0000${id}`, { bucket, close })
    }
    const repair = Effect.suspend(() =>
      Effect.forEach(
        [...owed],
        ([key, { close }]) => Effect.match(close, { onFailure: () => undefined, onSuccess: () => owed.delete(key) }),
        { concurrency: 16, discard: true }
      )
    )
    // Once a command timeout has passed (calls skip Redis that long after it failed to answer), and once more
    // before the connection closes.
    yield* Effect.forkScoped(Effect.forever(Effect.zipRight(Effect.sleep(settings.commandTimeoutMs), repair)))
    yield* Effect.addFinalizer(() => Effect.timeout(repair, settings.commandTimeoutMs).pipe(Effect.ignore))

    const nextToken = tokens()

    const lines = makeLines(client, settings, (bucket, place) => call(store.leave(bucket, place), true), closeClient)
    yield* Effect.addFinalizer(() => lines.close)

    const releaseInRedis = (bucket: Bucket, id: string) =>
      Effect.catchAll(call(store.release(bucket, id), true), () => Effect.sync(() => owe(bucket, id, store.release(bucket, id))))

    /**
     * A reserve that reached Redis books even if its caller is interrupted meanwhile: the call runs
     * uninterruptibly (bounded by the command timeout and the retry schedule), then a booking is given back if
     * the caller was interrupted in the meantime. The call forks no fiber, so nothing of it is interrupted early.
     */
    const reserveInRedis = (bucket: Bucket, charge: ReadonlyArray<number>, maxWaitMs: number, waiter?: object) =>
      Effect.uninterruptibleMask((restore) => {
        const token = nextToken()
        const place = waiter === undefined ? undefined : lines.placeOf(waiter)
        return match(
          call(store.reserve(bucket, charge, maxWaitMs, token, place), false),
          (failure) => {
            // No answer in time, or the connection dropped: it may run yet (a stalled server runs it when it
            // resumes). It is given back by its token, which leaves a tombstone if it has not run.
            if (failure.kind === "unknown") owe(bucket, `~${token}`, store.releaseToken(bucket, token))
            return restore(reserveWithout(bucket, charge, maxWaitMs, failure))
          },
          ({ value }): Effect.Effect<ReserveResult, CapacityExceeded | BackendUnavailable> => {
            // Admitted or refused, the waiter's place is gone from the line.
            if (waiter !== undefined && value._tag !== "Wait") lines.forget(waiter)
            if (value._tag !== "Reserved") return fromOutcome(bucket, value, "")
            const reserved: ReserveResult = { _tag: "Reserved", reservation: { id: value.id, bucket: bucket.name, at: value.at } }
            // Interrupted meanwhile: restore ends here, and the booking goes back. (Effect.onInterrupt does the same
            // at several times the cost, on every call.)
            return Effect.catchAllCause(
              restore(Effect.succeed(reserved)),
              (cause) => Effect.zipRight(releaseInRedis(bucket, value.id), Effect.failCause(cause))
            )
          }
        )
      })

    const reserveWithout = (bucket: Bucket, charge: ReadonlyArray<number>, maxWaitMs: number, failure: RedisFailure) =>
      Effect.gen(function*() {
        if (settings.policy === "fail-closed") return yield* Effect.fail(unavailable(failure))
        const exceeded = tooLarge(bucket, charge)
        if (exceeded !== undefined) return yield* Effect.fail(exceeded)
        const now = yield* Clock.currentTimeMillis
        if (settings.policy === "fail-open") {
          yield* Metric.increment(failOpenAdmissions)
          const result: ReserveResult = { _tag: "Reserved", reservation: { id: `${OPEN}${++openIds}`, bucket: bucket.name, at: now } }
          return result
        }
        const outcome = localOf(bucket).reserve(charge, now, maxWaitMs)
        if (outcome._tag === "TooLarge") {
          return yield* Effect.fail(
            new BackendUnavailable({ cause: `${failure.message}; the charge on "${outcome.metric}" is larger than this process's local share` })
          )
        }
        if (outcome._tag === "Reserved") yield* Metric.increment(localAdmissions)
        return yield* fromOutcome(bucket, outcome, LOCAL)
      })

    /** Whether an id is not Redis's: a fallback's (closed in this process's local state, or nowhere). */
    const isFallback = (id: string) => id.startsWith(OPEN) || id.startsWith(LOCAL)

    /** Settle or release of a fallback id: in this process's local state, or (fail-open ids) nowhere. */
    const closeFallback = (
      bucket: Bucket,
      id: string,
      local: (state: BucketState, id: string, now: number) => boolean
    ): Effect.Effect<void, ReservationNotFound> => {
      if (id.startsWith(OPEN)) return Effect.void
      return Effect.flatMap(Clock.currentTimeMillis, (now) =>
        local(localOf(bucket), id.slice(LOCAL.length), now) ? Effect.void : notFound(bucket, id))
    }

    // An attempt that may have run and a retry that finds nothing open: the first one closed it.
    const closedAnyway = (answer: Timed<boolean>): Timed<boolean> => ({ now: answer.now, value: true })
    /** Settle or release in Redis; one that cannot reach it is owed (see `repair`), and fails as the policy says. */
    const closeInRedis = (
      bucket: Bucket,
      id: string,
      remote: Effect.Effect<Timed<boolean>, RedisFailure>
    ): Effect.Effect<void, ReservationNotFound | BackendUnavailable> =>
      match(
        call(remote, true, closedAnyway),
        (failure) => {
          owe(bucket, id, remote)
          return settings.policy === "fail-closed" ? Effect.fail(unavailable(failure)) : Effect.void
        },
        ({ value }) => (value ? Effect.void : notFound(bucket, id))
      )

    const statusWithout = (bucket: Bucket, demand: ReadonlyArray<number>, failure: RedisFailure) =>
      Effect.gen(function*() {
        if (settings.policy === "fail-closed") return yield* Effect.fail(unavailable(failure))
        const now = yield* Clock.currentTimeMillis
        // fail-open knows nothing: it reports an empty bucket.
        const state = settings.policy === "local" ? localOf(bucket) : new BucketState(bucket)
        return state.status(now, demand)
      })

    return Backend.of({
      line: lines.line,
      breaker: (options) => makeBreaker(client, store, settings.namespace, options),
      reserve: reserveInRedis,
      settle: (bucket, id, actual) =>
        isFallback(id)
          ? closeFallback(bucket, id, (state, local, now) => state.settle(local, actual, now))
          : closeInRedis(bucket, id, store.settle(bucket, id, actual)),
      release: (bucket, id) =>
        isFallback(id)
          ? closeFallback(bucket, id, (state, local, now) => state.release(local, now))
          : closeInRedis(bucket, id, store.release(bucket, id)),
      observe: (bucket, used, blockForMs) =>
        // Not retried when it may have run: a second sliding-window entry would count the usage twice.
        match(
          call(store.observe(bucket, used, blockForMs), false),
          (failure) =>
            settings.policy === "fail-closed"
              ? Effect.fail(unavailable(failure))
              : settings.policy === "local"
              ? Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => localOf(bucket).observe(used, now + blockForMs, now)))
              : Effect.void,
          () => Effect.void
        ),
      status: (bucket, demand) =>
        match(
          call(store.status(bucket, demand), true),
          (failure) => statusWithout(bucket, demand, failure),
          ({ value }): Effect.Effect<BackendStatus> => Effect.succeed(value)
        )
    })
  })

/**
 * The Redis backend as a layer: the connection is acquired when the layer is built and closed when its scope
 * closes. Fails with `BackendUnavailable` when Redis cannot be reached at start and the policy is fail-closed,
 * and with `ConfigurationError` when an option is bad.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { RateLimited, RedisBackend } from "quotaflow"
 *
 * const LimiterLive = RateLimited.layer({
 *   buckets: { chat: { quotas: [{ metric: "requests", limit: 500, window: "1 minute" }] } }
 * }).pipe(Layer.provide(RedisBackend.layer({ url: "redis://127.0.0.1:6379", onUnavailable: "local", localShare: 0.5 })))
 *
 * const program = RateLimited.submit({ bucket: "chat" }, Effect.succeed("hi")).pipe(Effect.provide(LimiterLive))
 * ```
 * @since 0.1.0
 */
export const layer = (options: RedisBackendOptions = {}): Layer.Layer<Backend, BackendUnavailable | ConfigurationError> =>
  Layer.scoped(Backend, make(options))
