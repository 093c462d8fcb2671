/**
 * `limiter.fetch`: a `fetch` for SDK clients, each request charged by the configured provider from its JSON body
 * and run, through the Promise adapter's reading path, under the bucket of its model's family.
 *
 * @internal
 */
import { Either } from "effect"
import type { PromiseSubmitOptions } from "../../Promise.js"
import * as Provider from "../../Provider.js"
import type * as Quota from "../../Quota.js"
import type { Meta } from "../../RateLimited.js"
import { limitedTo, parseJson } from "./answer.js"
import type { Ready } from "./rateLimiter.js"

/** What `fetch` needs of the adapter. */
export interface FetchDeps {
  readonly withCore: <A>(f: (ready: Ready) => Promise<A>) => Promise<A>
  readonly submitReading: <A>(
    ready: Ready,
    meta: Meta,
    call: (signal: AbortSignal) => Promise<A>,
    options?: PromiseSubmitOptions<A>,
    streamUsage?: (chunk: unknown) => Quota.Usage | undefined
  ) => Promise<A>
  readonly bucketOf: ((model: string) => string) | undefined
}

export const makeFetch = ({ bucketOf, submitReading, withCore }: FetchDeps): typeof globalThis.fetch => (input, init) =>
  withCore((ready) => {
    const provider = ready.limiter.provider
    if (provider === undefined) return Promise.reject(new TypeError("limiter.fetch needs a provider in the configuration"))
    const request = typeof init?.body === "string" ? parseJson(init.body) : undefined
    const model = typeof request === "object" && request !== null && "model" in request ? String(request.model) : undefined
    if (model === undefined) return Promise.reject(new TypeError("limiter.fetch needs a JSON request body with a model"))
    const usage = provider.chargeOf(request, model)
    if (Either.isLeft(usage)) return Promise.reject(usage.left)
    const bucket = bucketOf?.(model) ?? provider.family(model)
    const entry = ready.limiter.entry(bucket)
    if (Either.isLeft(entry)) return Promise.reject(entry.left)
    return submitReading(
      ready,
      { bucket, usage: limitedTo(entry.right.bucket, usage.right) },
      () => globalThis.fetch(input, init),
      init?.signal ? { signal: init.signal } : undefined,
      Provider.streamUsageOf(provider, model)
    )
  })
