/**
 * The Promise adapter: quotaflow for plain async code. One `ManagedRuntime` runs the limiter; a waiting caller
 * is a queue entry and a promise, nothing more.
 *
 * @since 0.1.0
 */
import { Cause, Duration, Effect, Either, Exit, identity, Layer, ManagedRuntime, Schedule } from "effect"
import type { Backend, Reservation } from "./Backend.js"
import * as MemoryBackend from "./Backend/Memory.js"
import * as RedisBackend from "./Backend/Redis.js"
import { type BackendUnavailable, InvalidUsage, ReservationNotFound } from "./Errors.js"
import type { Waiter } from "./internal/bucketQueue.js"
import * as Limiter from "./internal/limiter.js"
import * as Provider from "./Provider.js"
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
  /**
   * Waits for admission, runs `call`, settles, and returns what `call` returned. With a `provider` configured,
   * a fetch `Response` (or an SDK error with `status` and `headers`) is read: the limiter learns from its
   * headers, retries a refusal on its schedule (the caller sees only the final outcome), and settles with the
   * usage in a JSON body.
   */
  submit<A>(meta: Meta, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A>
  /**
   * A `fetch` for SDK clients (`new OpenAI({ fetch: limiter.fetch, maxRetries: 0 })`): each request is charged
   * by the configured provider from its JSON body and runs under the bucket of its model's family.
   */
  readonly fetch: typeof globalThis.fetch
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
export interface RateLimiterConfig extends Quota.LimiterConfig {
  /** Where quota state lives: this process (the default) or Redis, shared by every process using it. */
  readonly backend?: { readonly redis: string | RedisBackend.RedisBackendOptions; readonly namespace?: string }
  /** The bucket `fetch` uses for a model (default: the provider's family of the model, such as `gpt-4o`). */
  readonly bucketOf?: (model: string) => string
}

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
export const createRateLimiter = (config: RateLimiterConfig): RateLimiter => {
  const { backend: backendConfig, bucketOf, ...limiterConfig } = config
  const decoded = Effect.runSync(Effect.either(Quota.decodeSettings(limiterConfig)))
  if (Either.isLeft(decoded)) throw decoded.left
  const backend: Layer.Layer<Backend, BackendUnavailable> = backendConfig === undefined
    ? MemoryBackend.layer
    : RedisBackend.layer({
      ...(typeof backendConfig.redis === "string" ? { url: backendConfig.redis } : backendConfig.redis),
      ...(backendConfig.namespace === undefined ? {} : { namespace: backendConfig.namespace })
    })
  const runtime = ManagedRuntime.make(Limiter.layer(limiterConfig).pipe(Layer.provide(backend)))
  let core: Limiter.Limiter | undefined
  const ready: Promise<Limiter.Limiter> = runtime.runPromiseExit(Limiter.LimiterCore).then((exit) =>
    Exit.isSuccess(exit) ? (core = exit.value) : Promise.reject(squash(exit.cause))
  )
  // A runtime that cannot start (Redis unreachable under fail-closed) rejects every call; until one is made,
  // nobody listens, and an unheard rejection would end the process.
  ready.catch(() => undefined)
  let closed = false
  // Calls admitted or waiting; `close` waits for them to end.
  let inflight = 0
  let drained: (() => void) | undefined
  const done = () => {
    if (--inflight === 0) drained?.()
  }

  const run = <A>(effect: Effect.Effect<A, unknown, Limiter.LimiterCore>): Promise<A> =>
    runtime.runPromiseExit(effect).then((exit) => (Exit.isSuccess(exit) ? exit.value : Promise.reject(squash(exit.cause))))

  /** The bucket's entry and the charge of a call, or why it can never run. */
  const lookup = (limiter: Limiter.Limiter, meta: Meta) =>
    Either.flatMap(limiter.entry(meta.bucket), (entry) => Either.map(limiter.charge(entry, meta.usage), (charge) => ({ entry, charge })))

  /** Queues a caller; resolves with its reservation once admitted, rejects on abort, deadline, overflow or close. */
  const admit = (limiter: Limiter.Limiter, entry: Limiter.Entry, charge: ReadonlyArray<number>, options: CallOptions | undefined) => {
    const signal = options?.signal
    if (closed) return Promise.reject(abortError("the limiter is closed"))
    if (signal?.aborted) return Promise.reject(abortError("the call was aborted", signal.reason))
    const waitMs = maxWaitMs(options)
    const deadline = waitMs === Infinity ? Infinity : entry.queue.now() + waitMs
    const enqueue = (resolve: (reservation: Reservation) => void, reject: (error: unknown) => void) => {
      const onClosed = () => reject(abortError("the limiter was closed while the call waited"))
      if (signal === undefined) {
        // The common case: the queue calls the promise's own functions.
        const waiter = limiter.enqueue(entry, charge, deadline, { onAdmit: resolve, onFail: reject, onClosed })
        if (Either.isLeft(waiter)) reject(waiter.left)
        return
      }
      let queued: Waiter | undefined
      const onAbort = () => {
        if (queued && entry.queue.cancel(queued)) reject(abortError("the call was aborted while waiting", signal.reason))
      }
      const waiter = limiter.enqueue(entry, charge, deadline, {
        onAdmit: (reservation) => {
          signal.removeEventListener("abort", onAbort)
          if (!signal.aborted) return resolve(reservation)
          void run(limiter.release(entry, reservation.id)).catch(() => undefined)
          reject(abortError("the call was aborted", signal.reason))
        },
        onFail: (error) => {
          signal.removeEventListener("abort", onAbort)
          reject(error)
        },
        onClosed
      })
      if (Either.isLeft(waiter)) return reject(waiter.left)
      queued = waiter.right
      signal.addEventListener("abort", onAbort, { once: true })
    }
    if (waitMs === Infinity) return new Promise(enqueue)
    return run(limiter.checkWait(entry, charge, waitMs)).then(() => new Promise(enqueue))
  }

  const withCore = <A>(f: (limiter: Limiter.Limiter) => Promise<A>): Promise<A> => (core ? f(core) : ready.then(f))

  const track = <A>(promise: Promise<A>): Promise<A> => {
    inflight++
    promise.then(done, done)
    return promise
  }

  /**
   * Settles with a usage; a bad one still settles (keeping the charge) and is then reported. Synchronous when
   * the backend's state is in this process.
   */
  const settle = (limiter: Limiter.Limiter, entry: Limiter.Entry, id: string, usage: Either.Either<unknown, InvalidUsage>): void | Promise<void> => {
    const actual = Either.flatMap(usage, (u) => Quota.actualOf(entry.bucket, u))
    const charged = Either.getOrElse(actual, () => [])
    const report = () => {
      if (Either.isLeft(actual)) throw actual.left
    }
    return entry.queue.settleNow(id, charged) === undefined ? run(limiter.settle(entry, id, charged)).then(report) : report()
  }

  /**
   * Runs an admitted call (counted in `inflight` by the caller) when there is no provider to read: the call's
   * own promise and the `then` that settles it.
   */
  const runAdmitted = <A>(
    limiter: Limiter.Limiter,
    entry: Limiter.Entry,
    id: string,
    call: (signal: AbortSignal) => Promise<A>,
    options: PromiseSubmitOptions<A> | undefined
  ): Promise<A> =>
    attempt(call, options).then(
      (value) => {
        done()
        const settling = settle(limiter, entry, id, callerUsage(entry.bucket.name, value, options))
        return settling === undefined ? value : settling.then(() => value)
      },
      (error) => {
        done()
        const settling = settle(limiter, entry, id, Either.right(undefined))
        if (settling === undefined) throw error
        return settling.then(() => Promise.reject(error))
      }
    )

  const submit = <A>(meta: Meta, call: (signal: AbortSignal) => Promise<A>, options?: PromiseSubmitOptions<A>): Promise<A> => {
    const limiter = core
    if (limiter === undefined) return withCore(() => submit(meta, call, options))
    const breaker = limiter.breaker
    if (breaker !== undefined) {
      // The circuit counts calls whose final outcome is still a refusal.
      const attempts = Effect.tryPromise({ try: () => submitReading(meta, call, options), catch: identity })
      return run(breaker.guard(meta.bucket, attempts, (exit) => isRefusal(Exit.isSuccess(exit) ? exit.value : Cause.squash(exit.cause))))
    }
    if (limiter.provider !== undefined) return submitReading(meta, call, options)
    const entry = limiter.entry(meta.bucket)
    if (Either.isLeft(entry)) return Promise.reject(entry.left)
    const charge = limiter.charge(entry.right, meta.usage)
    if (Either.isLeft(charge)) return Promise.reject(charge.left)
    inflight++
    // Nobody ahead and a backend in this process: book now, without a promise of our own.
    const now = closed || options?.signal?.aborted === true ? undefined : entry.right.queue.tryNow(charge.right)
    if (now !== undefined) return runAdmitted(limiter, entry.right, now.id, call, options)
    return admit(limiter, entry.right, charge.right, options).then(
      (reservation) => runAdmitted(limiter, entry.right, reservation.id, call, options),
      (error) => {
        done()
        throw error
      }
    )
  }

  /** The path that waits for the runtime to start and reads the provider's answers, retrying refusals. */
  const submitReading = <A>(
    meta: Meta,
    call: (signal: AbortSignal) => Promise<A>,
    options?: PromiseSubmitOptions<A>,
    handOff?: HandOff<A>
  ): Promise<A> =>
    track(withCore(async (limiter) => {
      let retries: Schedule.ScheduleDriver<unknown, unknown> | undefined
      for (;;) {
        const { entry, charge } = Either.getOrThrowWith(lookup(limiter, meta), identity)
        const reservation = await admit(limiter, entry, charge, options)
        const outcome = await attempt(call, options).then(Either.right<A>, Either.left<unknown>)
        const answer = limiter.provider === undefined ? undefined : await providerAnswer(Either.merge(outcome))
        const learnt = answer === undefined ? Either.right(undefined) : await run(Effect.either(limiter.learn(entry, answer, charge)))
        if (Either.isLeft(learnt)) {
          // The backend could not take what the provider said: the call still settles, keeping its charge.
          await settle(limiter, entry, reservation.id, Either.right(undefined))
          throw learnt.left
        }
        const refused = learnt.right
        if (refused !== undefined) {
          // The provider counted the refused attempt: it keeps its charge.
          await settle(limiter, entry, reservation.id, Either.right(undefined))
          retries ??= runtime.runSync(Schedule.driver(limiter.retrySchedule))
          const again = await run(Effect.either(retries.next(refused)))
          if (Either.isRight(again)) continue
        } else {
          const settleLater = (usage: Quota.Usage | undefined) =>
            void Promise.resolve()
              .then(() => settle(limiter, entry, reservation.id, Either.right(usage && limitedTo(entry, usage))))
              .catch(() => undefined)
          const handedOff = Either.isRight(outcome) && options?.actualUsage === undefined
            ? handOff?.(outcome.right, settleLater)
            : undefined
          if (handedOff !== undefined) return handedOff
          const usage = Either.isRight(outcome)
            ? await usageOf(limiter, meta.bucket, outcome.right, options)
            : Either.right(undefined)
          await settle(limiter, entry, reservation.id, usage)
        }
        if (Either.isLeft(outcome)) throw outcome.left
        return outcome.right
      }
    }))

  /** The usage to settle with: the caller's `actualUsage`, else the provider's reading of a JSON response. */
  const usageOf = async <A>(limiter: Limiter.Limiter, bucket: string, result: A, options: PromiseSubmitOptions<A> | undefined) => {
    if (options?.actualUsage !== undefined) return callerUsage(bucket, result, options)
    const provider = limiter.provider
    if (provider === undefined || !(result instanceof Response) || !result.ok) return Either.right(undefined)
    if (!(result.headers.get("content-type") ?? "").includes("application/json")) return Either.right(undefined)
    const body = await result.clone().json().catch(() => undefined)
    const usage = provider.usageOf(body)
    const entry = limiter.entry(bucket)
    return Either.right(usage === undefined || Either.isLeft(entry) ? undefined : limitedTo(entry.right, usage))
  }

  const fetch: typeof globalThis.fetch = async (input, init) => {
    const limiter = core ?? await ready
    const provider = limiter.provider
    if (provider === undefined) throw new TypeError("limiter.fetch needs a provider in the configuration")
    const request = typeof init?.body === "string" ? parseJson(init.body) : undefined
    const model = typeof request === "object" && request !== null && "model" in request ? String(request.model) : undefined
    if (model === undefined) throw new TypeError("limiter.fetch needs a JSON request body with a model")
    const usage = provider.chargeOf(request, model)
    if (Either.isLeft(usage)) throw usage.left
    const bucket = bucketOf?.(model) ?? provider.family(model)
    const entry = limiter.entry(bucket)
    if (Either.isLeft(entry)) throw entry.left
    const streamUsage = Provider.streamUsageOf(provider, model)
    return submitReading(
      { bucket, usage: limitedTo(entry.right, usage.right) },
      () => globalThis.fetch(input, init),
      init?.signal ? { signal: init.signal } : undefined,
      (response, settleWith) => followStream(response, streamUsage, settleWith)
    )
  }

  const reserve = (meta: Meta, options?: CallOptions): Promise<PromisePermit> =>
    withCore(async (limiter) => {
      const { entry, charge } = Either.getOrThrowWith(lookup(limiter, meta), identity)
      const start = entry.queue.now()
      const reservation = await admit(limiter, entry, charge, options)
      const waitedMs = entry.queue.now() - start
      let open = true
      const close = (f: () => Promise<void>): Promise<void> => {
        if (!open) return Promise.reject(new ReservationNotFound({ bucket: entry.bucket.name, id: reservation.id }))
        open = false
        return f()
      }
      return {
        id: reservation.id,
        waitedMs,
        settle: (usage) => close(async () => settle(limiter, entry, reservation.id, Either.right(usage))),
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
    if (inflight > 0) await new Promise<void>((resolve) => (drained = resolve))
    await runtime.dispose()
  }

  return { submit, fetch, reserve, status, close }
}

/**
 * Takes over the settlement of a result that is still running (a streamed body): returns what the caller gets
 * and settles through `settleWith` once it ends, or returns `undefined` to settle now.
 */
type HandOff<A> = (result: A, settleWith: (usage: Quota.Usage | undefined) => void) => A | undefined

/**
 * A server-sent-events response, passed through byte for byte while its `data:` lines are read for usage:
 * `finish` gets the usage they reported once the body ends, fails or is cancelled. Anything else: `undefined`.
 */
const followStream = (
  response: Response,
  usageOf: (chunk: unknown) => Quota.Usage | undefined,
  finish: (usage: Quota.Usage | undefined) => void
): Response | undefined => {
  const streamed = (response.headers.get("content-type") ?? "").includes("text/event-stream")
  if (!response.ok || !streamed || response.body === null) return undefined
  const reader = response.body.getReader()
  const decoder = new TextDecoder()
  let partial = ""
  let usage: Quota.Usage | undefined
  let ended = false
  const end = () => {
    if (ended) return
    ended = true
    finish(usage)
  }
  const read = (text: string) => {
    const lines = (partial + text).split("\n")
    partial = lines.pop() ?? ""
    for (const line of lines) {
      if (!line.startsWith("data:")) continue
      const chunk = parseJson(line.slice(5).trim())
      if (chunk !== undefined) usage = usageOf(chunk) ?? usage
    }
  }
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read()
        if (done) {
          read(decoder.decode() + "\n")
          end()
          return controller.close()
        }
        read(decoder.decode(value, { stream: true }))
        controller.enqueue(value)
      } catch (error) {
        end()
        controller.error(error)
      }
    },
    cancel(reason) {
      end()
      return reader.cancel(reason)
    }
  })
  const followed = new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers })
  // SDKs read the URL a response came from.
  Object.defineProperty(followed, "url", { value: response.url })
  return followed
}

/** A provider's refusal, as a fetch `Response` or an SDK error carries it: 429, 529 or 503. */
const isRefusal = (value: unknown): boolean =>
  typeof value === "object" && value !== null && "status" in value && (value.status === 429 || value.status === 529 || value.status === 503)

/** What a running call sees when its caller gave no signal: one that never aborts. */
const neverAborted = new AbortController().signal

/** Calls `call` with the caller's signal; a synchronous throw becomes a rejection. */
const attempt = <A>(call: (signal: AbortSignal) => Promise<A>, options: CallOptions | undefined): Promise<A> => {
  try {
    return Promise.resolve(call(options?.signal ?? neverAborted))
  } catch (error) {
    return Promise.reject(error)
  }
}

/** The caller's `actualUsage` of a result, or why it could not be read. */
const callerUsage = <A>(
  bucket: string,
  result: A,
  options: PromiseSubmitOptions<A> | undefined
): Either.Either<Quota.Usage | undefined, InvalidUsage> => {
  const actualUsage = options?.actualUsage
  if (actualUsage === undefined) return Either.right(undefined)
  return Either.try({
    try: () => actualUsage(result),
    catch: (error) => new InvalidUsage({ bucket, issues: [`actualUsage threw: ${String(error)}`] })
  })
}

/** A provider's usage names every metric it limits; a bucket takes the ones it has quotas for. */
const limitedTo = (entry: Limiter.Entry, usage: Quota.Usage): Quota.Usage => {
  const limited = new Set(entry.bucket.quotas.map((q) => q.metric))
  return Object.fromEntries(Object.entries(usage).filter(([metric]) => limited.has(metric)))
}

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** The provider's answer in what a call returned or threw: a fetch `Response`, or an SDK error with `status`. */
const providerAnswer = async (value: unknown): Promise<Limiter.ProviderResponse | undefined> => {
  if (value instanceof Response) {
    const body = value.ok ? undefined : await value.clone().text().then(parseJson, () => undefined)
    return { status: value.status, headers: value.headers, body }
  }
  if (typeof value !== "object" || value === null || !("status" in value) || typeof value.status !== "number") return undefined
  const headers = "headers" in value && (value.headers instanceof Headers || (typeof value.headers === "object" && value.headers !== null))
    ? value.headers as Headers | Record<string, string>
    : {}
  const body = "error" in value ? { error: value.error } : undefined
  return { status: value.status, headers, body }
}
