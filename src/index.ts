/**
 * quotaflow: run many callers on one LLM API key at the provider's quota, with zero 429s.
 *
 * This entry holds the library only. The provider emulator has its own, `quotaflow/emulator`, so that a program
 * that only limits its calls loads no HTTP server.
 *
 * @since 0.1.0
 */
import * as MemoryBackend from "./Backend/Memory.js"
import * as RedisBackend from "./Backend/Redis.js"

export * as Backend from "./Backend.js"
export * as CircuitBreaker from "./CircuitBreaker.js"
export * as ConfigFile from "./ConfigFile.js"
export type { BreakerOptions, BreakerState } from "./CircuitBreaker.js"
export * from "./Errors.js"
export * as Metrics from "./Metrics.js"
export * as Provider from "./Provider.js"
export * as Quota from "./Quota.js"
export type { Algorithm, BucketInput, LimiterConfig, ProviderName, QuotaInput, RetryInput, Usage } from "./Quota.js"
export * as RateLimited from "./RateLimited.js"
export type { LimiterStatus, Meta, Permit, ProviderResponse, StreamOptions, SubmitOptions, WaitOptions } from "./RateLimited.js"
export { MemoryBackend, RedisBackend }
export type { RedisBackendOptions, UnavailablePolicy } from "./Backend/Redis.js"

/**
 * The in-process backend: one process, the default.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { MemoryBackendLive, RateLimited } from "quotaflow"
 *
 * const LimiterLive = RateLimited.layer({ buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }] } } })
 *   .pipe(Layer.provide(MemoryBackendLive))
 * ```
 * @since 0.1.0
 */
export const MemoryBackendLive = MemoryBackend.layer
export { createRateLimiter } from "./Promise.js"
export type { CallOptions, PromisePermit, PromiseSubmitOptions, RateLimiter, RateLimiterConfig } from "./Promise.js"

/**
 * The Redis backend: one quota shared by many processes and machines.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { RateLimited, RedisBackendLive } from "quotaflow"
 *
 * const LimiterLive = RateLimited.layer({ buckets: { chat: { quotas: [{ metric: "requests", limit: 60, window: "1 minute" }] } } })
 *   .pipe(Layer.provide(RedisBackendLive({ url: "redis://127.0.0.1:6379", onUnavailable: "local" })))
 * ```
 * @since 0.1.0
 */
export const RedisBackendLive = RedisBackend.layer
