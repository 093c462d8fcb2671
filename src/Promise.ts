/**
 * The Promise adapter: quotaflow for plain async code, a skin over the same flow as `RateLimited` (AbortSignal
 * for interruption, Promise for Exit). One `ManagedRuntime` runs the limiter; a waiting caller is a queue
 * entry and a promise, nothing more.
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import type * as RedisBackend from "./Backend/Redis.js"
import * as internal from "./internal/promise/rateLimiter.js"
import type * as Quota from "./Quota.js"
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
   * A `fetch` for SDK clients (`new OpenAI({ fetch: limiter.fetch, maxRetries: 0 })`): a generation (a POST to
   * `/chat/completions`, `/completions`, `/responses`, `/embeddings` or `/messages` whose JSON body names a model,
   * as `isGeneration` of `quotaflow/HttpClient` says) is charged by the configured provider from its body and runs
   * under the bucket of its model's family, with the retries and the breaker of `submit`; anything else (GETs,
   * token counts, moderations, batches, files, bodies without a model) passes straight through, uncounted. Every
   * body type `fetch` takes is read, a `Request` too; a one-shot body (a stream) is buffered and its bytes sent on
   * every attempt. A refusal
   * rejects with the quotaflow error, which the SDKs report as the `cause` of their `APIConnectionError`.
   *
   * @example
   * ```ts
   * import Anthropic, { APIConnectionError } from "@anthropic-ai/sdk"
   * import { CapacityExceeded, createRateLimiter } from "quotaflow"
   *
   * const limiter = createRateLimiter({ provider: "anthropic" })
   * const client = new Anthropic({ fetch: limiter.fetch, maxRetries: 0 })
   * const refusedByQuotaflow = (error: unknown) => error instanceof APIConnectionError && error.cause instanceof CapacityExceeded
   * ```
   */
  readonly fetch: typeof globalThis.fetch
  /** Waits for admission and hands the reservation over. */
  reserve(meta: Meta, options?: CallOptions): Promise<PromisePermit>
  /** A bucket's state; `waitMs` is how long a call of `usage` would wait now. */
  status(bucket: string, usage?: Quota.Usage): Promise<LimiterStatus>
  /**
   * Shuts down: admits nothing more, rejects waiting calls with `LimiterClosed`, lets running calls and held
   * permits finish within `shutdownTimeout` (then settles what is still open, keeping its charge), and closes
   * the backend. Every method called afterwards rejects with `LimiterClosed`.
   */
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
export const createRateLimiter: (config: RateLimiterConfig) => RateLimiter = internal.make
