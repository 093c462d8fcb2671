/**
 * The Promise adapter: quotaflow for plain async code. One `ManagedRuntime` runs the limiter; a waiting caller
 * is a queue entry and a promise, nothing more.
 *
 * @since 0.1.0
 */
import { Cause, Duration, Effect, Either, Exit, Layer, ManagedRuntime } from "effect"
import type { Backend, Reservation } from "./Backend.js"
import * as MemoryBackend from "./Backend/Memory.js"
import { type ConfigurationError, InvalidUsage, ReservationNotFound } from "./Errors.js"
import type { Waiter } from "./internal/bucketQueue.js"
import * as Limiter from "./internal/limiter.js"
import * as Quota from "./Quota.js"
import type { LimiterStatus, Meta } from "./RateLimited.js"

/**
 * Options of one call.
 *
 * @since 0.1.0
 */
export interface CallOptions {
  /** Aborts a waiting call (its reservation is released) and is passed on to a running one. */
  readonly signal?: AbortSignal
  /** Fail with `CapacityExceeded` instead of waiting longer than this (`"30 seconds"` or milliseconds). */
  readonly maxWait?: Duration.DurationInput
}

/**
 * Options of `submit`.
 *
 * @since 0.1.0
 */
export interface PromiseSubmitOptions<A> extends CallOptions {
  /** The usage to settle with, read off the result; without it the charge is kept. */
  readonly actualUsage?: (result: A) => Quota.Usage | undefined
}

/**
 * A reservation held by plain async code: settle it after the work, or release it if the work never ran.
 *
 * @since 0.1.0
 */
export interface PromisePermit {
  readonly id: string
  readonly waitedMs: number
  settle(usage?: Quota.Usage): Promise<void>
  release(): Promise<void>
}

/**
 * The limiter for plain async code.
 *
 * @since 0.1.0
 */
export interface RateLimiter {
  /** Waits for admission, runs `call`, settles, and returns what `call` returned. */
  submit<A>(meta: Meta, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A>
  /** Waits for admission and hands the reservation over. */
  reserve(meta: Meta, options?: CallOptions): Promise<PromisePermit>
  /** A bucket's state; `waitMs` is how long a call of `usage` would wait now. */
  status(bucket: string, usage?: Quota.Usage): Promise<LimiterStatus>
  /** Rejects waiting calls, lets running ones finish, and frees the runtime. */
  close(): Promise<void>
}

/**
 * The configuration of `createRateLimiter`: the buckets (see `LimiterConfig`).
 *
 * @since 0.1.0
 */
export interface RateLimiterConfig extends Quota.LimiterConfig {}

const abortError = (message: string, cause?: unknown): Error => {
  const error = new Error(message, { cause })
  error.name = "AbortError"
  return error
}

/** The error of a failed exit, as the tagged error itself (an `Error` subclass), not a wrapper. */
const squash = (cause: Cause.Cause<unknown>): unknown =>
  Cause.isInterruptedOnly(cause) ? abortError("the call was interrupted") : Cause.squash(cause)

const maxWaitMs = (options: CallOptions | undefined): number =>
  options?.maxWait === undefined ? Infinity : Duration.toMillis(options.maxWait)

/**
 * Creates a limiter for plain async code. It is ready at once; a bad configuration throws a
 * `ConfigurationError` here.
 *
 * @example
 * ```ts
 * import { createRateLimiter } from "quotaflow"
 *
 * const limiter = createRateLimiter({
 *   buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 500, window: "1 minute" }, { metric: "tokens", limit: 30_000, window: "1 minute" }] } }
 * })
 * const answer = await limiter.submit(
 *   { bucket: "gpt-4o", usage: { tokens: 1800 } },
 *   async (signal) => ({ text: "hello", usage: { total_tokens: 1200 } }),
 *   { actualUsage: (response) => ({ tokens: response.usage.total_tokens }) }
 * )
 * await limiter.close()
 * ```
 * @since 0.1.0
 */
export const createRateLimiter = (
  config: RateLimiterConfig,
  backend: Layer.Layer<Backend, never> = MemoryBackend.layer
): RateLimiter => {
  const decoded = Effect.runSync(Effect.either(Quota.decodeConfig(config)))
  if (Either.isLeft(decoded)) throw decoded.left as ConfigurationError
  const runtime = ManagedRuntime.make(Limiter.layer(config).pipe(Layer.provide(backend)))
  let core: Limiter.Limiter | undefined
  const ready: Promise<Limiter.Limiter> = runtime.runPromise(Limiter.LimiterCore).then((limiter) => (core = limiter))
  const running = new Set<Promise<unknown>>()
  let closed = false

  const run = <A>(effect: Effect.Effect<A, unknown, Limiter.LimiterCore>): Promise<A> =>
    runtime.runPromiseExit(effect).then((exit) => (Exit.isSuccess(exit) ? exit.value : Promise.reject(squash(exit.cause))))

  /** Queues a caller and resolves once admitted; rejects on abort, deadline, overflow or close. */
  const admit = (limiter: Limiter.Limiter, meta: Meta, options: CallOptions | undefined) =>
    new Promise<{ entry: Limiter.Entry; reservation: Reservation; waitedMs: number }>((resolve, reject) => {
      const signal = options?.signal
      if (closed) return reject(abortError("the limiter is closed"))
      if (signal?.aborted) return reject(abortError("the call was aborted", signal.reason))
      const entry = limiter.entry(meta.bucket)
      if (Either.isLeft(entry)) return reject(entry.left)
      const charge = limiter.charge(entry.right, meta.usage)
      if (Either.isLeft(charge)) return reject(charge.left)
      const start = Date.now()
      const waitMs = maxWaitMs(options)
      const enqueue = () => {
        let queued: Waiter | undefined
        const onAbort = () => {
          if (queued && entry.right.queue.cancel(queued)) reject(abortError("the call was aborted while waiting", signal?.reason))
        }
        const waiter = limiter.enqueue(entry.right, charge.right, start + waitMs, {
          onAdmit: (reservation) => {
            signal?.removeEventListener("abort", onAbort)
            if (signal?.aborted) {
              void run(limiter.release(entry.right, reservation.id)).catch(() => undefined)
              return reject(abortError("the call was aborted", signal.reason))
            }
            resolve({ entry: entry.right, reservation, waitedMs: Date.now() - start })
          },
          onFail: (error) => {
            signal?.removeEventListener("abort", onAbort)
            reject(error)
          },
          onClosed: () => reject(abortError("the limiter was closed while the call waited"))
        })
        if (Either.isLeft(waiter)) return reject(waiter.left)
        queued = waiter.right
        signal?.addEventListener("abort", onAbort, { once: true })
      }
      if (waitMs === Infinity) enqueue()
      else run(limiter.checkWait(entry.right, charge.right, waitMs)).then(enqueue, reject)
    })

  const withCore = <A>(f: (limiter: Limiter.Limiter) => Promise<A>): Promise<A> => (core ? f(core) : ready.then(f))

  const track = <A>(promise: Promise<A>): Promise<A> => {
    running.add(promise)
    const forget = () => running.delete(promise)
    promise.then(forget, forget)
    return promise
  }

  /** Settles with a usage; a bad one still settles (keeping the charge) and is then reported. */
  const settle = (limiter: Limiter.Limiter, entry: Limiter.Entry, id: string, usage: Either.Either<unknown, InvalidUsage>) => {
    const actual = Either.flatMap(usage, (u) => Quota.actualOf(entry.bucket, u))
    return run(limiter.settle(entry, id, Either.getOrElse(actual, () => []))).then(() => {
      if (Either.isLeft(actual)) throw actual.left
    })
  }

  const submit = <A>(meta: Meta, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A> =>
    track(withCore(async (limiter) => {
      const { entry, reservation } = await admit(limiter, meta, options)
      const controller = new AbortController()
      const forward = () => controller.abort(options?.signal?.reason)
      options?.signal?.addEventListener("abort", forward, { once: true })
      let result: A
      try {
        result = await call(controller.signal)
      } catch (error) {
        await settle(limiter, entry, reservation.id, Either.right(undefined))
        throw error
      } finally {
        options?.signal?.removeEventListener("abort", forward)
      }
      const usage = Either.try({
        try: () => options?.actualUsage?.(result),
        catch: (error) => new InvalidUsage({ bucket: meta.bucket, issues: [`actualUsage threw: ${String(error)}`] })
      })
      await settle(limiter, entry, reservation.id, usage)
      return result
    }))

  const reserve = (meta: Meta, options?: CallOptions): Promise<PromisePermit> =>
    withCore(async (limiter) => {
      const { entry, reservation, waitedMs } = await admit(limiter, meta, options)
      let open = true
      const close = (f: () => Promise<void>): Promise<void> => {
        if (!open) return Promise.reject(new ReservationNotFound({ bucket: entry.bucket.name, id: reservation.id }))
        open = false
        return f()
      }
      return {
        id: reservation.id,
        waitedMs,
        settle: (usage) => close(() => settle(limiter, entry, reservation.id, Either.right(usage))),
        release: () => close(() => run(limiter.release(entry, reservation.id)))
      }
    })

  const status = (bucket: string, usage?: Quota.Usage): Promise<LimiterStatus> =>
    withCore((limiter) =>
      run(Effect.gen(function*() {
        const entry = yield* limiter.entry(bucket)
        const charge = yield* Quota.chargeOf(entry.bucket, usage)
        const state = yield* limiter.status(entry, charge)
        return { ...state, bucket, queued: entry.queue.length }
      }))
    )

  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    core?.close()
    await Promise.allSettled([...running])
    await runtime.dispose()
  }

  return { submit, reserve, status, close }
}
