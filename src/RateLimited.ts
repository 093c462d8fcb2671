/**
 * The entry point for Effect programs: run calls under a bucket's quotas.
 *
 * A call is charged when it is admitted (its `usage`), waits in FIFO order until the charge fits, runs, and is
 * settled with what it really used. A call interrupted while waiting leaves nothing booked; a call that fails
 * or is interrupted while running keeps its charge, since the provider may have counted it.
 *
 * @since 0.1.0
 */
import { Context, type Duration, Effect, type Exit, Layer, type Scope, Stream } from "effect"
import type { FileSystem } from "@effect/platform"
import type { Backend, BackendStatus } from "./Backend.js"
import * as ConfigFile from "./ConfigFile.js"
import type {
  ConfigurationError,
  InvalidUsage,
  LimiterClosed,
  RateLimitError,
  ReservationNotFound
} from "./Errors.js"
import type * as Learning from "./internal/learning.js"
import * as Limiter from "./internal/limiter.js"
import * as Flow from "./internal/rateLimited.js"
import type * as Quota from "./Quota.js"

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
export type ProviderResponse = Learning.ProviderResponse

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
  /**
   * Settles with the actual usage (without one the charge is kept). A second settle or release fails with
   * `ReservationNotFound`; one after the limiter closed (it settled the permit itself) with `LimiterClosed`.
   * A backend that cannot take it does not fail it: see `Metrics.settlementsFailed`.
   */
  readonly settle: (usage?: Quota.Usage) => Effect.Effect<void, InvalidUsage | ReservationNotFound | LimiterClosed>
  readonly release: Effect.Effect<void, ReservationNotFound | LimiterClosed>
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
  /** The time the bucket keeps for network jitter now: its `skew`, raised for a while after a provider's 429. */
  readonly skewMs: number
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
  readonly status: (bucket: string, usage?: Quota.Usage) => Effect.Effect<LimiterStatus, RateLimitError>
}

/**
 * The service tag.
 *
 * @since 0.1.0
 */
export class RateLimited extends Context.Tag("quotaflow/RateLimited")<RateLimited, RateLimitedService>() {}

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
  Effect.map(Limiter.make(config), Flow.make)

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
): Effect.Effect<LimiterStatus, RateLimitError, RateLimited> =>
  Effect.flatMap(RateLimited, (service) => service.status(bucket, usage))
