/**
 * What a provider's HTTP call is charged, from its JSON request body: the bucket of its model's family and the
 * provider's charge, restricted to the metrics that bucket limits. The HttpClient middleware charges by it;
 * `limiter.fetch` (`promise/fetch.ts`) does the same steps inline.
 *
 * @internal
 */
import { Either } from "effect"
import type { InvalidCall, LimiterClosed, UnknownBucket } from "../Errors.js"
import * as Provider from "../Provider.js"
import type * as Quota from "../Quota.js"
import type { Meta } from "../RateLimited.js"
import type { Limiter } from "./limiter.js"
import { limitedTo } from "./promise/answer.js"
import { isRecord } from "./provider/json.js"

/** A call charged: its bucket and charge, its model, and the usage of a response read on the bucket's metrics. */
export interface Charged {
  readonly meta: Meta
  readonly model: string
  /** A provider's usage (every metric it reports) restricted to the metrics the bucket limits now. */
  readonly limited: (usage: Quota.Usage) => Quota.Usage
}

export const chargeBody = (
  limiter: Limiter,
  provider: Provider.Provider,
  body: unknown,
  bucketOf: ((model: string) => string) | undefined
): Either.Either<Charged, Provider.InvalidRequest | UnknownBucket | InvalidCall | LimiterClosed> => {
  if (!isRecord(body)) return Either.left(new Provider.InvalidRequest({ provider: provider.name, issue: "the request body is not a JSON object" }))
  const model = body["model"]
  if (typeof model !== "string" || model === "") {
    return Either.left(new Provider.InvalidRequest({ provider: provider.name, issue: "the request body has no model (a string)" }))
  }
  const usage = provider.chargeOf(body, model)
  if (Either.isLeft(usage)) return Either.left(usage.left)
  const bucket = bucketOf?.(model) ?? provider.family(model)
  const entry = limiter.entry(bucket)
  if (Either.isLeft(entry)) return Either.left(entry.left)
  // The bucket as it is when the answer comes (learning may have changed it), for the metrics it limits.
  const limited = (usage: Quota.Usage): Quota.Usage =>
    Either.match(limiter.entry(bucket), { onLeft: () => usage, onRight: (entry) => limitedTo(entry.bucket, usage) })
  return Either.right({ meta: { bucket, usage: limitedTo(entry.right.bucket, usage.right) }, model, limited })
}
