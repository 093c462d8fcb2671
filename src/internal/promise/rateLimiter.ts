/**
 * The Promise adapter: a skin over the flow of `rateLimited.ts`, AbortSignal for interruption and Promise for
 * Exit. A call whose answer the limiter reads (a provider or a circuit breaker is configured) runs the flow as
 * it is. A plain call takes the flow's own steps without a fiber: the same checks, the same scheduler ticket,
 * the same tracker and settlement, so that a caller that fits at once costs no fiber hop and a waiting one is
 * a queue entry and a promise, nothing more.
 *
 * @internal
 */
import { Cause, Context, Effect, Either, Exit, identity, Layer, ManagedRuntime, Option, type Runtime } from "effect"
import * as Runtime_ from "effect/Runtime"
import type { Backend, Reservation } from "../../Backend.js"
import * as MemoryBackend from "../../Backend/Memory.js"
import * as RedisBackend from "../../Backend/Redis.js"
import {
  type BackendUnavailable,
  type CapacityExceeded,
  ConfigurationError,
  InvalidCall,
  LimiterClosed,
  RateLimitedByProvider,
  ReservationCapacity,
  ReservationNotFound
} from "../../Errors.js"
import type { CallOptions, PromisePermit, PromiseSubmitOptions, RateLimiter, RateLimiterConfig } from "../../Promise.js"
import * as Quota from "../../Quota.js"
import type { Meta } from "../../RateLimited.js"
import type { ProviderResponse } from "../learning.js"
import * as Limiter from "../limiter.js"
import * as Flow from "../rateLimited.js"
import { MAX_OPEN, type Open } from "../reservationTracker.js"
import { decodeOptions } from "../redis/options.js"
import type { Ticket } from "../scheduler.js"
import { limitedNow } from "../provider/generation.js"
import { answerOfError, answerOfResponse, followStream, jsonBodyOf } from "./answer.js"
import { makeFetch } from "./fetch.js"

interface Core {
  readonly limiter: Limiter.Limiter
  readonly flow: Flow.Flow
}

class PromiseCore extends Context.Tag("quotaflow/internal/PromiseCore")<PromiseCore, Core>() {}

/** The core, with the runtime it runs in: kept, so that calls still settle while the runtime shuts down. */
export interface Ready extends Core {
  readonly runtime: Runtime.Runtime<never>
}

const abortError = (message: string, cause?: unknown): Error => {
  const error = new Error(message, { cause })
  error.name = "AbortError"
  return error
}

const describe = (value: unknown): string => (value === null ? "null" : typeof value === "object" ? "an object" : typeof value)

/** What a running call sees when its caller gave no signal: one that never aborts. */
const neverAborted = new AbortController().signal

/** Calls `call` with the signal; a synchronous throw becomes a rejection. */
const attempt = <A>(call: (signal: AbortSignal) => Promise<A>, signal: AbortSignal | undefined): Promise<A> => {
  try {
    return Promise.resolve(call(signal ?? neverAborted))
  } catch (error) {
    return Promise.reject(error)
  }
}

/** What is wrong with a call's function or signal, if anything. */
const checkCall = (call: unknown, options: CallOptions | undefined): InvalidCall | undefined => {
  // Every call passes here: nothing is allocated for a good one.
  if (typeof call === "function" && (options?.signal === undefined || options.signal instanceof AbortSignal)) return undefined
  const issues: Array<string> = []
  if (typeof call !== "function") issues.push(`call: expected a function (signal) => Promise, got ${describe(call)}`)
  const signal: unknown = options?.signal
  if (signal !== undefined && !(signal instanceof AbortSignal)) issues.push(`options.signal: expected an AbortSignal, got ${describe(signal)}`)
  return issues.length === 0 ? undefined : new InvalidCall({ issues })
}


/** A caller of the Promise API waiting for admission: the scheduler's ticket, resolving its promise. */
class PromiseTicket implements Ticket {
  deadline = Infinity
  prev: Ticket | undefined = undefined
  next: Ticket | undefined = undefined
  queued = false
  private readonly start: number

  constructor(
    readonly charge: ReadonlyArray<number>,
    private readonly core: Ready,
    private readonly entry: Limiter.Entry,
    private readonly signal: AbortSignal | undefined,
    private readonly resolve: (open: Open) => void,
    private readonly reject: (error: unknown) => void
  ) {
    this.start = entry.scheduler.now()
  }

  admit(reservation: Reservation): void {
    const { scheduler } = this.entry
    const open = this.core.limiter.tracker.open(this.entry, reservation, this.charge, scheduler.now() - this.start)
    const signal = this.signal
    if (signal === undefined) return this.resolve(open)
    signal.removeEventListener("abort", this)
    if (!signal.aborted) return this.resolve(open)
    const released = this.core.limiter.tracker.release(open)
    if (released !== undefined) Runtime_.runFork(this.core.runtime)(released)
    this.reject(abortError("the call was aborted", signal.reason))
  }

  fail(error: CapacityExceeded | BackendUnavailable | LimiterClosed): void {
    this.signal?.removeEventListener("abort", this)
    this.reject(error)
  }

  /** The caller's signal aborted while it waited. */
  handleEvent(): void {
    if (this.entry.scheduler.cancel(this)) this.reject(abortError("the call was aborted while waiting", this.signal?.reason))
  }
}

export const make = (config: RateLimiterConfig): RateLimiter => {
  if (typeof config !== "object" || config === null) {
    throw new ConfigurationError({ issues: [`expected a configuration object, got ${describe(config)}`] })
  }
  const { backend: backendConfig, bucketOf, ...limiterConfig } = config
  const decoded = Effect.runSync(Effect.either(Quota.decodeSettings(limiterConfig)))
  if (Either.isLeft(decoded)) throw decoded.left
  const redis: RedisBackend.RedisBackendOptions | undefined = backendConfig === undefined ? undefined : {
    ...(typeof backendConfig.redis === "string" ? { url: backendConfig.redis } : backendConfig.redis),
    ...(backendConfig.namespace === undefined ? {} : { namespace: backendConfig.namespace })
  }
  // Bad Redis options throw here, like a bad configuration, rather than failing every call later.
  const invalid = redis === undefined ? undefined : Either.getLeft(decodeOptions(redis)).pipe(Option.getOrUndefined)
  if (invalid !== undefined) throw new ConfigurationError({ issues: invalid.issues.map((issue) => `backend.redis.${issue}`) })
  const backend: Layer.Layer<Backend, BackendUnavailable | ConfigurationError> = redis === undefined
    ? MemoryBackend.layer
    : RedisBackend.layer(redis)
  const coreLayer = Layer.scoped(PromiseCore, Effect.map(Limiter.make(limiterConfig), (limiter) => ({ limiter, flow: Flow.make(limiter) })))
  const runtime = ManagedRuntime.make(coreLayer.pipe(Layer.provide(backend)))
  let core: Ready | undefined
  const ready: Promise<Ready> = runtime.runtime().then(
    (rt) => (core = { ...Context.get(rt.context, PromiseCore), runtime: rt }),
    (error: unknown) => Promise.reject(Runtime_.isFiberFailure(error) ? Cause.squash(error[Runtime_.FiberFailureCauseId]) : error)
  )
  // A runtime that cannot start (Redis unreachable under fail-closed) rejects every call; until one is made,
  // nobody listens, and an unheard rejection would end the process.
  ready.catch(() => undefined)
  let closing: Promise<void> | undefined

  /** The error of a failed exit, as the tagged error itself (an `Error` subclass), not a wrapper. */
  const errorOf = (cause: Cause.Cause<unknown>, signal: AbortSignal | undefined): unknown => {
    if (!Cause.isInterruptedOnly(cause)) return Cause.squash(cause)
    return closing !== undefined ? new LimiterClosed({}) : abortError("the call was aborted", signal?.reason)
  }

  const run = <A>(ready: Ready, effect: Effect.Effect<A, unknown>, signal?: AbortSignal): Promise<A> =>
    Runtime_.runPromiseExit(ready.runtime)(effect, signal === undefined ? undefined : { signal }).then((exit) =>
      Exit.isSuccess(exit) ? exit.value : Promise.reject(errorOf(exit.cause, signal))
    )

  /** Waits for the core; after `close`, every method rejects with `LimiterClosed`. */
  const withCore = <A>(f: (ready: Ready) => Promise<A>): Promise<A> =>
    closing !== undefined ? Promise.reject(new LimiterClosed({})) : core !== undefined ? f(core) : ready.then(f)

  /** A settlement still to run, then `then`: at once when it was done in this process. */
  const afterSettle = <A>(ready: Ready, settled: Effect.Effect<void> | undefined, then: () => A): A | Promise<A> =>
    settled === undefined ? then() : run(ready, settled).then(then)

  /** Admits a checked call: at once when it fits and nobody waits, else through a ticket. */
  const admit = (ready: Ready, request: Limiter.Request, signal: AbortSignal | undefined): Promise<Open> => {
    if (signal?.aborted) return Promise.reject(abortError("the call was aborted", signal.reason))
    const { limiter } = ready
    if (limiter.tracker.size >= MAX_OPEN) return Promise.reject(new ReservationCapacity({ maxOpen: MAX_OPEN }))
    const { entry, charge, maxWaitMs } = request
    const now = entry.scheduler.tryNow(charge)
    if (now !== undefined) return Promise.resolve(limiter.tracker.open(entry, now, charge, 0))
    const queue = () =>
      new Promise<Open>((resolve, reject) => {
        const ticket = new PromiseTicket(charge, ready, entry, signal, resolve, reject)
        // Taken now, after any status round trip: maxWait counts from when the caller joins the queue.
        if (maxWaitMs !== Infinity) ticket.deadline = entry.scheduler.now() + maxWaitMs
        const refused = entry.scheduler.enqueue(ticket)
        if (refused !== undefined) return reject(refused)
        signal?.addEventListener("abort", ticket, { once: true })
      })
    return maxWaitMs === Infinity ? queue() : run(ready, limiter.checkWait(entry, charge, maxWaitMs)).then(queue)
  }

  /** A plain call (nothing to read off its answer): admitted, run, settled. */
  const submitPlain = <A>(ready: Ready, meta: Meta, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A> => {
    const request = ready.limiter.request(meta, options?.maxWait)
    if (Either.isLeft(request)) return Promise.reject(request.left)
    const signal = options?.signal
    const { entry, charge } = request.right
    // Nobody ahead and a backend in this process: book now, without a promise of our own.
    const now = signal === undefined && ready.limiter.tracker.size < MAX_OPEN ? entry.scheduler.tryNow(charge) : undefined
    if (now !== undefined) return runOpen(ready, ready.limiter.tracker.open(entry, now, charge, 0), call, options)
    return admit(ready, request.right, signal).then((open) => runOpen(ready, open, call, options))
  }

  const runOpen = <A>(ready: Ready, open: Open, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A> =>
    attempt(call, options?.signal).then(
      (value) => {
        const [settled, invalid] = Flow.settleBy(ready.limiter, open, Flow.usageOf(open.holder.bucket.name, options?.actualUsage, value))
        return afterSettle(ready, settled, () => {
          if (invalid !== undefined) throw invalid
          return value
        })
      },
      (error) =>
        afterSettle(ready, ready.limiter.tracker.settle(open, []), () => {
          throw error
        })
    )

  /**
   * A call whose answer is read: the flow itself, with the provider's answer read off the `Response` (or SDK
   * error) `call` gives. `streamUsage` follows a streamed body, for `fetch`. When every attempt was refused,
   * the caller gets the last refusal as `call` gave it (the SDK makes its own error of it).
   */
  const submitReading = <A>(
    ready: Ready,
    meta: Meta,
    call: (signal: AbortSignal) => Promise<A>,
    options?: PromiseSubmitOptions<A>,
    streamUsage?: (chunk: unknown) => Quota.Usage | undefined
  ): Promise<A> => {
    const signal = options?.signal
    const provider = ready.limiter.provider
    let last: Exit.Exit<A, unknown> | undefined
    const read = (value: A) =>
      Effect.promise(async () => {
        const answer = value instanceof Response ? await answerOfResponse(value) : answerOfError(value)
        const body = provider !== undefined && options?.actualUsage === undefined && value instanceof Response ? await jsonBodyOf(value) : undefined
        const usage = body === undefined ? undefined : provider?.usageOf(body)
        return { value, answer, usage }
      })
    const once = Effect.tryPromise({ try: (own) => attempt(call, signal ?? own), catch: identity }).pipe(
      Effect.onExit((exit) => Effect.sync(() => (last = exit))),
      Effect.flatMap(read)
    )
    type Read = Effect.Effect.Success<typeof once>
    const limited = limitedNow(ready.limiter, meta.bucket)
    const flowOptions: Flow.FlowOptions<Read, unknown> = {
      ...(options?.maxWait === undefined ? {} : { maxWait: options.maxWait }),
      actualUsage: (r) =>
        options?.actualUsage !== undefined ? options.actualUsage(r.value) : r.usage && limited(r.usage),
      response: (exit): ProviderResponse | undefined =>
        Exit.isSuccess(exit) ? exit.value.answer : Option.getOrUndefined(Option.map(Cause.failureOption(exit.cause), answerOfError)),
      ...(streamUsage === undefined || options?.actualUsage !== undefined ? {} : {
        handOff: (r: Read, settle: (usage: Quota.Usage | undefined) => void) => {
          if (!(r.value instanceof Response)) return undefined
          const followed = followStream(r.value, streamUsage, (usage) => settle(usage && limited(usage)))
          return followed === undefined ? undefined : { ...r, value: followed as A }
        }
      })
    }
    return run(ready, ready.flow.submit(meta, once, flowOptions), signal).then(
      (r) => r.value,
      (error: unknown) => {
        if (!(error instanceof RateLimitedByProvider) || last === undefined) throw error
        const final = last
        if (Exit.isSuccess(final)) return final.value
        throw Option.getOrElse(Cause.failureOption(final.cause), () => error)
      }
    )
  }

  const submitReady = <A>(ready: Ready, meta: Meta, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A> => {
    const invalid = checkCall(call, options)
    if (invalid !== undefined) return Promise.reject(invalid)
    const reads = ready.limiter.provider !== undefined || ready.limiter.breaker !== undefined
    return reads ? submitReading(ready, meta, call, options) : submitPlain(ready, meta, call, options)
  }

  // Not through withCore: the common case makes no closure of its own.
  const submit = <A>(meta: Meta, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A> =>
    closing === undefined && core !== undefined
      ? submitReady(core, meta, call, options)
      : withCore((ready) => submitReady(ready, meta, call, options))

  const fetch = makeFetch({ withCore, submitReading, bucketOf })

  const reserve = (meta: Meta, options?: CallOptions): Promise<PromisePermit> =>
    withCore((ready) => {
      const request = ready.limiter.request(meta, options?.maxWait)
      if (Either.isLeft(request)) return Promise.reject(request.left)
      const invalid = checkCall(() => undefined, options)
      if (invalid !== undefined) return Promise.reject(invalid)
      return admit(ready, request.right, options?.signal).then((open): PromisePermit => {
        const { tracker } = ready.limiter
        /** A permit's own close: once, and not after the limiter closed (it settled the permit itself). */
        const closeOnce = (close: () => Effect.Effect<void> | undefined): Promise<void> => {
          if (!open.open) {
            return Promise.reject(
              closing !== undefined ? new LimiterClosed({}) : new ReservationNotFound({ bucket: open.holder.bucket.name, id: open.id })
            )
          }
          return Promise.resolve(afterSettle(ready, close(), () => undefined))
        }
        return {
          id: open.id,
          waitedMs: open.waitedMs,
          settle: (usage) => {
            const actual = Quota.actualOf(open.holder.bucket, usage)
            return Either.isLeft(actual) ? Promise.reject(actual.left) : closeOnce(() => tracker.settle(open, actual.right))
          },
          release: () => closeOnce(() => tracker.release(open))
        }
      })
    })

  const status: RateLimiter["status"] = (bucket, usage) => withCore((ready) => run(ready, ready.flow.status(bucket, usage)))

  const close = (): Promise<void> => (closing ??= runtime.dispose())

  return { submit, fetch, reserve, status, close }
}
