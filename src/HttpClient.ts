/**
 * Rate limiting for `@effect/platform`'s `HttpClient`: every generation request sent through a limited client
 * (`POST` to `/chat/completions`, `/completions`, `/responses`, `/embeddings`, `/messages`) waits for its
 * charge under the bucket of its model's family, runs, and settles with the usage its response reports. Any
 * other request (`GET /models`, `count_tokens`, ...) passes through untouched.
 *
 * - The charge is the configured provider's (`chargeOf`) of the request's JSON body, under the bucket
 *   `provider.family(model)` (or `bucketOf(model)`), restricted to the metrics that bucket limits.
 * - A JSON response settles with its body's `usage`; a server-sent-events response settles when its body ends
 *   (completed, failed or interrupted) with the last usage its events reported, and keeps its charge when they
 *   reported none. A body never read is settled by the limiter's orphan sweeper (`reservationTtl`).
 * - The limiter learns from the response headers, and a refusal (429, 529, 503) is retried on the limiter's
 *   `retry` schedule; when no attempt is left the caller gets the last refusal as its response.
 * - quotaflow's own failures arrive as an `HttpClientError.RequestError` whose `cause` is the quotaflow error:
 *   reason `"Encode"` for a body that cannot be charged (`Provider.InvalidRequest`) or a limiter that cannot
 *   limit requests (`ConfigurationError`), `"Transport"` for a call the limiter did not send (`CapacityExceeded`,
 *   `QueueOverflow`, `BackendUnavailable`, `CircuitOpen`, ...).
 *
 * The limiter needs a `provider` in its configuration: it is what reads request and response bodies.
 *
 * @since 0.2.0
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import type * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import type { Layer } from "effect"
import { dual } from "effect/Function"
import type { ConfigurationError } from "./Errors.js"
import * as internal from "./internal/httpClient.js"
import type { RateLimited, RateLimitedService, WaitOptions } from "./RateLimited.js"

/**
 * Options of `layer` and `limit`: how long a request may wait (`maxWait`), the bucket of a model, and which
 * requests are charged.
 *
 * @example
 * ```ts
 * import type { LimitOptions } from "quotaflow/HttpClient"
 * const options: LimitOptions = {
 *   maxWait: "30 seconds",
 *   bucketOf: (model) => (model.startsWith("gpt-4o") ? "gpt-4o" : model)
 * }
 * ```
 * @since 0.2.0
 */
export interface LimitOptions extends WaitOptions {
  /** The bucket of a model (default: the provider's family of it, such as `gpt-4o` for `gpt-4o-2024-08-06`). */
  readonly bucketOf?: (model: string) => string
  /** Which requests are charged (default: `isGeneration`); the others pass through untouched. */
  readonly isGeneration?: (request: HttpClientRequest.HttpClientRequest) => boolean
}

/**
 * Whether a request is charged by default: a `POST` whose path ends in `/chat/completions`, `/completions`,
 * `/responses`, `/embeddings` or `/messages` (`limiter.fetch` of the Promise adapter charges by the same rule).
 *
 * @example
 * ```ts
 * import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
 * import { isGeneration } from "quotaflow/HttpClient"
 *
 * isGeneration(HttpClientRequest.post("https://api.openai.com/v1/chat/completions")) // true
 * isGeneration(HttpClientRequest.get("https://api.openai.com/v1/models")) // false
 * ```
 * @since 0.2.0
 */
export const isGeneration: (request: HttpClientRequest.HttpClientRequest) => boolean = internal.isGeneration

/**
 * The `HttpClient` of the context, limited by the `RateLimited` service of the context. Fails with a
 * `ConfigurationError` when the limiter has no provider, or an option is not a function.
 *
 * @example
 * ```ts
 * import { FetchHttpClient, HttpBody, HttpClient } from "@effect/platform"
 * import { Effect, Layer } from "effect"
 * import { MemoryBackendLive, RateLimited } from "quotaflow"
 * import * as LimitedHttpClient from "quotaflow/HttpClient"
 *
 * const LimiterLive = RateLimited.layer({
 *   provider: "openai",
 *   buckets: { "gpt-4o": { quotas: [{ metric: "requests", limit: 500, window: "1 minute" }, { metric: "tokens", limit: 30_000, window: "1 minute" }] } }
 * }).pipe(Layer.provide(MemoryBackendLive))
 *
 * const HttpClientLive = LimitedHttpClient.layer().pipe(Layer.provide(FetchHttpClient.layer), Layer.provide(LimiterLive))
 *
 * const answer = Effect.flatMap(HttpClient.HttpClient, (client) =>
 *   client.post("https://api.openai.com/v1/chat/completions", {
 *     body: HttpBody.unsafeJson({ model: "gpt-4o", max_tokens: 64, messages: [{ role: "user", content: "Hi" }] })
 *   })
 * ).pipe(Effect.provide(HttpClientLive))
 * ```
 * @since 0.2.0
 */
export const layer: (
  options?: LimitOptions
) => Layer.Layer<HttpClient.HttpClient, ConfigurationError, HttpClient.HttpClient | RateLimited> = internal.layer

/**
 * A client at hand, limited by `limiter` (for `OpenAiClient.layer({ transformClient })`, say). A limiter it
 * cannot use (no provider configured) or a bad option makes every generation request fail with a
 * `RequestError` whose `cause` is the `ConfigurationError`; `layer` reports it when it is built instead.
 *
 * @example
 * ```ts
 * import { OpenAiClient } from "@effect/ai-openai"
 * import { Effect, Layer } from "effect"
 * import { RateLimited } from "quotaflow"
 * import * as LimitedHttpClient from "quotaflow/HttpClient"
 *
 * const OpenAiLive = Layer.unwrapEffect(Effect.map(RateLimited.RateLimited, (limiter) =>
 *   OpenAiClient.layer({ transformClient: LimitedHttpClient.limit(limiter) })))
 * ```
 * @since 0.2.0
 */
export const limit: {
  (limiter: RateLimitedService, options?: LimitOptions): (client: HttpClient.HttpClient) => HttpClient.HttpClient
  (client: HttpClient.HttpClient, limiter: RateLimitedService, options?: LimitOptions): HttpClient.HttpClient
} = dual((args) => internal.isHttpClient(args[0]), internal.limit)
