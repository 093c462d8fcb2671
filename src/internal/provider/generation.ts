/**
 * A generation request, as both HTTP adapters (`limiter.fetch` and the HttpClient middleware) see it: which
 * requests are generations, the model a generation's JSON body names, and what it is charged (the bucket of
 * its model's family and the provider's charge, restricted to the metrics that bucket limits).
 *
 * What an adapter does with a generation whose body names no model is its own: `fetch` sends it uncounted,
 * the middleware fails it with `InvalidRequest`.
 *
 * @internal
 */
import { Either } from "effect"
import type { InvalidCall, LimiterClosed, UnknownBucket } from "../../Errors.js"
import * as Provider from "../../Provider.js"
import type * as Quota from "../../Quota.js"
import type { Meta } from "../../RateLimited.js"
import type { Limiter } from "../limiter.js"
import { isRecord, parseBody } from "./json.js"

/**
 * The endpoints that generate, and are charged: OpenAI's, Anthropic's and the many APIs that copy them. Token
 * counts (`/messages/count_tokens`, `/responses/input_tokens`), moderations, batches, files and the like end
 * otherwise, and pass uncounted.
 */
const GENERATING = /\/(?:chat\/completions|completions|responses|embeddings|messages)\/?$/

/**
 * Whether a request is a generation: a `POST` (`method` as fetch normalises it) to a URL (or a path) whose path
 * ends in `/chat/completions`, `/completions`, `/responses`, `/embeddings` or `/messages`.
 *
 * @example
 * isGeneration("POST", "https://api.openai.com/v1/chat/completions?x=1") // true
 * isGeneration("POST", "https://api.anthropic.com/v1/messages/count_tokens") // false
 */
export const isGeneration = (method: string, url: string): boolean => method === "POST" && GENERATING.test(url.replace(/[?#].*$/, ""))

/** A generation's body: the JSON object and the model it names. */
export interface GenerationBody {
  readonly body: Readonly<Record<string, unknown>>
  readonly model: string
}

/**
 * The JSON object a generation's body text is and the model it names, or why it is not one (the issue an
 * `InvalidRequest` reports).
 *
 * @example
 * generationBody('{"model":"gpt-4o","messages":[]}') // Either.right({ body: { model: "gpt-4o", messages: [] }, model: "gpt-4o" })
 * generationBody("not json") // Either.left("the request body is not JSON")
 */
export const generationBody = (text: string): Either.Either<GenerationBody, string> => {
  const body = parseBody(text)
  if (typeof body === "string") return Either.left("the request body is not JSON")
  if (!isRecord(body)) return Either.left("the request body is not a JSON object")
  const model = body["model"]
  if (typeof model !== "string" || model === "") return Either.left("the request body has no model (a string)")
  return Either.right({ body, model })
}

/** A generation charged: its bucket and charge, its model, and the usage of a response read on the bucket's metrics. */
export interface Charged {
  readonly meta: Meta
  readonly model: string
  /** A provider's usage (every metric it reports) restricted to the metrics the bucket limits when it is read. */
  readonly limited: (usage: Quota.Usage) => Quota.Usage
}

/**
 * The charge of a generation: `provider.chargeOf` of its body, under `bucketOf(model)` (default: the provider's
 * family of the model), restricted to the metrics that bucket limits; fails when the provider cannot charge the
 * body or the limiter has no such bucket.
 */
export const charge = (
  limiter: Limiter,
  provider: Provider.Provider,
  { body, model }: GenerationBody,
  bucketOf: ((model: string) => string) | undefined
): Either.Either<Charged, Provider.InvalidRequest | UnknownBucket | InvalidCall | LimiterClosed> => {
  const usage = provider.chargeOf(body, model)
  if (Either.isLeft(usage)) return Either.left(usage.left)
  const bucket = bucketOf?.(model) ?? provider.family(model)
  const entry = limiter.entry(bucket)
  if (Either.isLeft(entry)) return Either.left(entry.left)
  return Either.right({ meta: { bucket, usage: limitedTo(entry.right.bucket, usage.right) }, model, limited: limitedNow(limiter, bucket) })
}

/**
 * A provider's usage restricted to the metrics `bucket` limits as it is when the usage is read (learning may
 * have changed it since admission); the usage as it is when the bucket is gone.
 */
export const limitedNow = (limiter: Limiter, bucket: string) => (usage: Quota.Usage): Quota.Usage =>
  Either.match(limiter.entry(bucket), { onLeft: () => usage, onRight: (entry) => limitedTo(entry.bucket, usage) })

/** A provider's usage names every metric it limits; a bucket takes the ones it has quotas for. */
export const limitedTo = (bucket: Quota.Bucket, usage: Quota.Usage): Quota.Usage => {
  const limited = new Set(bucket.quotas.map((q) => q.metric))
  return Object.fromEntries(Object.entries(usage).filter(([metric]) => limited.has(metric)))
}
