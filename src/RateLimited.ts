/**
 * The entry point for Effect programs: run calls under a bucket's quotas.
 *
 * A call is charged when it is admitted (its `usage`), waits in FIFO order until the charge fits, runs, and is
 * settled with what it really used. A call interrupted while waiting leaves nothing booked; a call that fails
 * or is interrupted while running keeps its charge, since the provider may have counted it.
 *
 * @since 0.1.0
 */
import { Cause, Context, Duration, Effect, Either, Exit, Layer, Option, type Scope, Stream } from "effect"
import type { FileSystem } from "@effect/platform"
import type { Backend, BackendStatus } from "./Backend.js"
import * as ConfigFile from "./ConfigFile.js"
import {
  type BackendUnavailable,
  type ConfigurationError,
  InvalidUsage,
  type RateLimitError,
  RateLimitedByProvider,
  ReservationNotFound,
  type UnknownBucket
} from "./Errors.js"
import * as Limiter from "./internal/limiter.js"
import * as Quota from "./Quota.js"

/**
 * What a call is: the bucket it runs under and what it costs (`requests` defaults to 1 where the bucket
 * limits requests).
 *
 * @example
 * ```ts
 * import type { Meta } from "quotaflow"
 * const meta: Meta = { bucket: "gpt-4o", usage: { tokens: 1800 } }
 * ```
 * @since 0.1.0
 */
export interface Meta {
  readonly bucket: string
  readonly usage?: Quota.Usage
}

/**
 * How long a call may wait for capacity before it fails with `CapacityExceeded` instead.
 *
 * @since 0.1.0
 */
export interface WaitOptions {
  readonly maxWait?: Duration.DurationInput
}

/**
 * Options of `submit`: `actualUsage` maps the call's result to what it really used, for settlement; without it
 * the charge is kept.
 *
 * @example
 * ```ts
 * import type { SubmitOptions } from "quotaflow"
 * const options: SubmitOptions<{ usage: { total_tokens: number } }> = {
 *   maxWait: "30 seconds",
 *   actualUsage: (response) => ({ tokens: response.usage.total_tokens })
 * }
 * ```
 * @since 0.1.0
 */
export interface SubmitOptions<A, E = unknown> extends WaitOptions {
  readonly actualUsage?: (result: A) => Quota.Usage | undefined
  /**
   * Reads the provider's answer off the call's outcome: the status, headers and body of its response, or of
   * the SDK error it failed with. With a `provider` configured, the limiter learns from the headers, and a
   * refusal (429, 529, 503) is retried on its schedule; the call fails with `RateLimitedByProvider` when no
   * attempt is left.
   */
  readonly response?: (exit: Exit.Exit<A, E>) => ProviderResponse | undefined
}

/**
 * What a provider answered, for `SubmitOptions.response`.
 *
 * @example
 * ```ts
 * import type { ProviderResponse } from "quotaflow"
 * const answer: ProviderResponse = { status: 429, headers: { "retry-after": "2" } }
 * ```
 * @since 0.1.0
 */
export type ProviderResponse = Limiter.ProviderResponse

/**
 * Options of `submitStream`: `usageOf` reads a usage off a chunk (the last chunk that has one wins); the stream
 * settles with it when it ends, however it ends.
 *
 * @example
 * ```ts
 * import type { StreamOptions } from "quotaflow"
 * type Chunk = { text: string; usage?: { output_tokens: number } }
 * const options: StreamOptions<Chunk> = {
 *   usageOf: (chunk) => chunk.usage && { output_tokens: chunk.usage.output_tokens }
 * }
 * ```
 * @since 0.1.0
 */
export interface StreamOptions<A> extends WaitOptions {
  readonly usageOf?: (chunk: A) => Quota.Usage | undefined
}

/**
 * A held reservation from `reserve`: settle it with the actual usage once the work is done, or release it if
 * the work never ran. Closing its scope while it is open releases it.
 *
 * @since 0.1.0
 */
export interface Permit {
  readonly id: string
  readonly bucket: string
  /** When it was admitted, in epoch milliseconds of the backend's clock. */
  readonly at: number
  readonly waitedMs: number
  /** Settles with the actual usage (without one the charge is kept). */
  readonly settle: (usage?: Quota.Usage) => Effect.Effect<void, InvalidUsage | ReservationNotFound | BackendUnavailable>
  readonly release: Effect.Effect<void, ReservationNotFound | BackendUnavailable>
}

/**
 * A bucket's state: the backend's view of every quota plus this process's queue.
 *
 * @since 0.1.0
 */
export interface LimiterStatus extends BackendStatus {
  readonly bucket: string
  /** Callers of this process waiting for admission. */
  readonly queued: number
}

/**
 * The service.
 *
 * @since 0.1.0
 */
export interface RateLimitedService {
  readonly submit: <A, E, R>(
    meta: Meta,
    effect: Effect.Effect<A, E, R>,
    options?: SubmitOptions<A, E>
  ) => Effect.Effect<A, E | RateLimitError, R>
  readonly submitStream: <A, E, R>(
    meta: Meta,
    stream: Stream.Stream<A, E, R>,
    options?: StreamOptions<A>
  ) => Stream.Stream<A, E | RateLimitError, R>
  readonly reserve: (meta: Meta, options?: WaitOptions) => Effect.Effect<Permit, RateLimitError, Scope.Scope>
  /** The bucket's state; `waitMs` is how long a call of `usage` (default one request) would wait now. */
  readonly status: (
    bucket: string,
    usage?: Quota.Usage
  ) => Effect.Effect<LimiterStatus, UnknownBucket | InvalidUsage | BackendUnavailable>
}

/**
 * The service tag.
 *
 * @since 0.1.0
 */
export class RateLimited extends Context.Tag("quotaflow/RateLimited")<RateLimited, RateLimitedService>() {}

const maxWaitMs = (options: WaitOptions | undefined): number =>
  options?.maxWait === undefined ? Infinity : Duration.toMillis(options.maxWait)

/** The last refusal, as the error a caller sees once no attempt is left. */
const refusedError = (bucket: string, refused: Limiter.Refused, attempts: number) =>
  new RateLimitedByProvider({
    bucket,
    status: refused.response.status,
    attempts,
    retryAfterMs: refused.advice.delayMs,
    headers: headerRecord(refused.response.headers)
  })

const headerRecord = (headers: ProviderResponse["headers"]): Record<string, string> => {
  const record: Record<string, string> = {}
  if (headers instanceof Headers) headers.forEach((value, key) => (record[key] = value))
  else for (const [key, value] of Object.entries(headers)) if (value !== undefined) record[key.toLowerCase()] = String(value)
  return record
}

/**
 * Builds the service over a limiter core.
 *
 * @internal
 */
export const fromLimiter = (limiter: Limiter.Limiter): RateLimitedService => {
  const admit = (meta: Meta, options: WaitOptions | undefined) =>
    Effect.suspend((): Effect.Effect<Limiter.Admission, RateLimitError> => {
      const entry = limiter.entry(meta.bucket)
      if (Either.isLeft(entry)) return entry.left
      const charge = limiter.charge(entry.right, meta.usage)
      if (Either.isLeft(charge)) return charge.left
      return limiter.acquire(entry.right, charge.right, maxWaitMs(options))
    })

  /**
   * Settles with a usage, then ends as `exit` does. A bad usage still settles (keeping the charge), so that no
   * reservation stays open, then fails. No effect runs when the backend's state is in this process.
   */
  const settleThen = <A, E>(admission: Limiter.Admission, usage: Either.Either<unknown, InvalidUsage>, exit: Exit.Exit<A, E>) => {
    const { entry, reservation } = admission
    const actual = Either.flatMap(usage, (u) => Quota.actualOf(entry.bucket, u))
    const charged = Either.getOrElse(actual, () => [])
    const outcome: Effect.Effect<A, E | InvalidUsage> = Either.isLeft(actual) ? actual.left : exit
    const settled = entry.queue.settleNow(reservation.id, charged)
    if (settled === true) return outcome
    const settle = settled === false
      ? Effect.die(new ReservationNotFound({ bucket: entry.bucket.name, id: reservation.id }))
      : limiter.settle(entry, reservation.id, charged).pipe(Effect.catchTag("ReservationNotFound", Effect.die))
    return Effect.zipRight(settle, outcome)
  }

  const usageFrom = <A, E>(bucket: string, options: SubmitOptions<A, E> | undefined, exit: Exit.Exit<A, E>) =>
    Exit.isSuccess(exit) && options?.actualUsage !== undefined
      ? Either.try({
        try: () => options.actualUsage?.(exit.value),
        catch: (error) => new InvalidUsage({ bucket, issues: [`actualUsage threw: ${String(error)}`] })
      })
      : Either.right(undefined)

  /** One attempt: admitted, run, then `finish`ed (settled) whatever its exit, uninterruptibly. */
  const attempt = <A, E, R, E2>(
    meta: Meta,
    effect: Effect.Effect<A, E, R>,
    options: WaitOptions | undefined,
    finish: (admission: Limiter.Admission, exit: Exit.Exit<A, E>) => Effect.Effect<A, E2>
  ) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(restore(admit(meta, options)), (admission) =>
        Effect.flatMap(Effect.exit(restore(effect)), (exit) => finish(admission, exit))))

  const submit = <A, E, R>(meta: Meta, effect: Effect.Effect<A, E, R>, options?: SubmitOptions<A, E>) => {
    const read = options?.response
    // Only a call whose answer is read can be refused: the others skip the retry machinery.
    const attempts: Effect.Effect<A, E | RateLimitError, R> = read === undefined
      ? attempt(meta, effect, options, (admission, exit) => settleThen(admission, usageFrom(meta.bucket, options, exit), exit))
      : limiter.retryRefused(
        attempt(meta, effect, options, (admission, exit) => {
          const response = read(exit)
          const learnt = response === undefined ? Effect.succeed(undefined) : limiter.learn(admission.entry, response, admission.charge)
          return Effect.flatMap(Effect.either(learnt), (learned): Effect.Effect<A, E | RateLimitError | Limiter.Refused> => {
            // The backend could not take what the provider said: the call still settles, keeping its charge.
            if (Either.isLeft(learned)) return settleThen(admission, Either.right(undefined), Exit.fail(learned.left))
            // A refusal keeps its charge: the provider counted it.
            return learned.right === undefined
              ? settleThen(admission, usageFrom(meta.bucket, options, exit), exit)
              : settleThen(admission, Either.right(undefined), Exit.fail(learned.right))
          })
        })
      ).pipe(
        Effect.catchIf(
          (error): error is Limiter.Refused => error instanceof Limiter.Refused,
          (refused) => Effect.fail(refusedError(meta.bucket, refused, limiter.settings.retry.maxAttempts))
        )
      )
    const breaker = limiter.breaker
    return breaker === undefined ? attempts : breaker.guard(meta.bucket, attempts, (exit) =>
      Exit.isFailure(exit) && Option.exists(Cause.failureOption(exit.cause), (error) => error instanceof RateLimitedByProvider))
  }

  const reserve = (meta: Meta, options?: WaitOptions) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const admission = yield* restore(admit(meta, options))
        const { entry, reservation } = admission
        let open = true
        const close = <E>(effect: Effect.Effect<void, E>) =>
          Effect.suspend((): Effect.Effect<void, E | ReservationNotFound> => {
            if (!open) return Effect.fail(new ReservationNotFound({ bucket: entry.bucket.name, id: reservation.id }))
            open = false
            return effect
          })
        yield* Effect.addFinalizer(() => (open ? Effect.ignore(close(limiter.release(entry, reservation.id))) : Effect.void))
        const permit: Permit = {
          id: reservation.id,
          bucket: entry.bucket.name,
          at: reservation.at,
          waitedMs: admission.waitedMs,
          settle: (usage) =>
            Effect.flatMap(Quota.actualOf(entry.bucket, usage), (actual) => close(limiter.settle(entry, reservation.id, actual))),
          release: close(limiter.release(entry, reservation.id))
        }
        return permit
      })
    )

  const submitStream = <A, E, R>(meta: Meta, stream: Stream.Stream<A, E, R>, options?: StreamOptions<A>) =>
    Stream.unwrapScoped(
      Effect.gen(function*() {
        const permit = yield* reserve(meta, options)
        const entry = yield* limiter.entry(meta.bucket)
        let last: Quota.Usage | undefined
        const observe = (chunk: A) =>
          Effect.suspend(() => {
            const usage = options?.usageOf?.(chunk)
            if (usage === undefined) return Effect.void
            return Effect.map(Quota.actualOf(entry.bucket, usage), () => {
              last = usage
            })
          })
        return stream.pipe(
          Stream.tap(observe),
          Stream.ensuring(Effect.ignore(Effect.suspend(() => permit.settle(last))))
        )
      })
    )

  const status = (bucket: string, usage?: Quota.Usage) =>
    Effect.gen(function*() {
      const entry = yield* limiter.entry(bucket)
      const charge = yield* Quota.chargeOf(entry.bucket, usage)
      const state = yield* limiter.status(entry, charge)
      return { ...state, bucket, queued: entry.queue.length }
    })

  return { submit, submitStream, reserve, status }
}

/**
 * Makes the service from a configuration; the buckets' queues live as long as the scope.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { MemoryBackendLive, RateLimited } from "quotaflow"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const limiter = yield* RateLimited.make({ buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }] } } })
 *   return yield* limiter.submit({ bucket: "chat" }, Effect.succeed("hello"))
 * })).pipe(Effect.provide(MemoryBackendLive))
 * ```
 * @since 0.1.0
 */
export const make = (config: Quota.LimiterConfig): Effect.Effect<RateLimitedService, ConfigurationError, Backend | Scope.Scope> =>
  Effect.map(Limiter.make(config), fromLimiter)

/**
 * The service as a layer over a backend (provide `MemoryBackendLive` or `RedisBackendLive`).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { MemoryBackendLive, RateLimited } from "quotaflow"
 *
 * const LimiterLive = RateLimited.layer({
 *   buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 500, window: "1 minute" }, { metric: "tokens", limit: 30_000, window: "1 minute" }] } }
 * }).pipe(Layer.provide(MemoryBackendLive))
 * ```
 * @since 0.1.0
 */
export const layer = (config: Quota.LimiterConfig): Layer.Layer<RateLimited, ConfigurationError, Backend> =>
  Layer.scoped(RateLimited, make(config))

/**
 * The service configured from a YAML or JSON file (the path, or `QUOTAFLOW_CONFIG`); a bad file fails the
 * layer with every problem listed by path.
 *
 * @example
 * ```ts
 * import { NodeFileSystem } from "@effect/platform-node"
 * import { Layer } from "effect"
 * import { MemoryBackendLive, RateLimited } from "quotaflow"
 *
 * const LimiterLive = RateLimited.layerFromFile("quotaflow.yaml").pipe(
 *   Layer.provide(MemoryBackendLive),
 *   Layer.provide(NodeFileSystem.layer)
 * )
 * ```
 * @since 0.1.0
 */
export const layerFromFile = (
  path?: string
): Layer.Layer<RateLimited, ConfigurationError, Backend | FileSystem.FileSystem> =>
  Layer.unwrapEffect(Effect.map(ConfigFile.load(path), layer))

/**
 * Runs `effect` under the bucket's quotas: waits in FIFO order until its charge fits, runs it, settles it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimited } from "quotaflow"
 *
 * const answer = RateLimited.submit(
 *   { bucket: "gpt-4o", usage: { tokens: 1800 } },
 *   Effect.succeed({ text: "hi", totalTokens: 1200 }),
 *   { actualUsage: (r) => ({ tokens: r.totalTokens }) }
 * )
 * ```
 * @since 0.1.0
 */
export const submit = <A, E, R>(
  meta: Meta,
  effect: Effect.Effect<A, E, R>,
  options?: SubmitOptions<A, E>
): Effect.Effect<A, E | RateLimitError, R | RateLimited> =>
  Effect.flatMap(RateLimited, (service) => service.submit(meta, effect, options))

/**
 * Runs a stream under the bucket's quotas: admitted before its first chunk, settled with the last usage its
 * chunks report when it ends (completed, failed or interrupted).
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { RateLimited } from "quotaflow"
 *
 * const chunks = RateLimited.submitStream(
 *   { bucket: "claude", usage: { input_tokens: 900, output_tokens: 1024 } },
 *   Stream.make({ text: "Hel" }, { text: "lo", usage: { output_tokens: 2 } }),
 *   { usageOf: (chunk) => chunk.usage }
 * )
 * ```
 * @since 0.1.0
 */
export const submitStream = <A, E, R>(
  meta: Meta,
  stream: Stream.Stream<A, E, R>,
  options?: StreamOptions<A>
): Stream.Stream<A, E | RateLimitError, R | RateLimited> =>
  Stream.unwrap(Effect.map(RateLimited, (service) => service.submitStream(meta, stream, options)))

/**
 * Waits for admission and hands the reservation to the caller, who settles or releases it; it is released
 * when the scope closes while still open.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimited } from "quotaflow"
 *
 * const program = Effect.scoped(Effect.gen(function*() {
 *   const permit = yield* RateLimited.reserve({ bucket: "gpt-4o", usage: { tokens: 2000 } })
 *   // ... call the provider ...
 *   yield* permit.settle({ tokens: 1400 })
 * }))
 * ```
 * @since 0.1.0
 */
export const reserve = (meta: Meta, options?: WaitOptions): Effect.Effect<Permit, RateLimitError, Scope.Scope | RateLimited> =>
  Effect.flatMap(RateLimited, (service) => service.reserve(meta, options))

/**
 * A bucket's state now.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { RateLimited } from "quotaflow"
 *
 * const report = Effect.map(RateLimited.status("gpt-4o", { tokens: 4000 }), (s) => `${s.queued} waiting, next fits in ${s.waitMs} ms`)
 * ```
 * @since 0.1.0
 */
export const status = (
  bucket: string,
  usage?: Quota.Usage
): Effect.Effect<LimiterStatus, UnknownBucket | InvalidUsage | BackendUnavailable, RateLimited> =>
  Effect.flatMap(RateLimited, (service) => service.status(bucket, usage))
