/**
 * `limiter.fetch`: a `fetch` for SDK clients. A generation (a POST whose JSON body names a model) is charged by
 * the configured provider from its body and run, through the Promise adapter's reading path (the flow, with
 * its retries and circuit breaker), under the bucket of its model's family. Anything else passes straight
 * through, uncounted.
 *
 * The body is read whatever its type (string, bytes, `Blob`, `URLSearchParams`, a `ReadableStream`, a
 * `Request`); a one-shot body (a stream, a `Request`'s) is buffered, and every attempt sends the buffered bytes.
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

/**
 * Endpoints that take a JSON body naming a model without generating under the model's rate limits: token
 * counts (Anthropic limits them on requests per minute of their own), moderations, batches, files, fine-tuning
 * jobs, assistants and vector stores.
 */
const NOT_GENERATIONS = /\/(?:messages\/count_tokens|moderations|batches|files|uploads|fine_tuning|assistants|vector_stores)(?:\/|$)/

/** Bodies never read: uploads, which are not JSON and may be large. */
const UNREAD_TYPES = /^(?:multipart\/|application\/octet-stream)/i

/** RequestInit as Node's fetch takes it: a streamed body needs `duplex: "half"`. */
type NodeRequestInit = RequestInit & { duplex?: "half" }

/** A request as `fetch` received it, ready to be looked at and sent (again, for a retry). */
interface Outgoing {
  readonly method: string
  readonly url: URL
  /** The parsed JSON body, when the body was read and is JSON. */
  readonly json: unknown
  readonly signal: AbortSignal | undefined
  readonly send: () => Promise<Response>
}

const outgoing = async (input: string | URL | Request, init: RequestInit | undefined): Promise<Outgoing> => {
  const streamed = init?.body instanceof ReadableStream
  const withDuplex: NodeRequestInit | undefined = init !== undefined && streamed && !("duplex" in init) ? { ...init, duplex: "half" } : init
  // The Request constructor reads every body type and url fetch does, and throws fetch's TypeError for a bad one.
  const request = new Request(input, withDuplex)
  const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined)
  const method = request.method.toUpperCase()
  const url = new URL(request.url)
  const read = request.body !== null && !UNREAD_TYPES.test(request.headers.get("content-type") ?? "")
  const oneShot = streamed || input instanceof Request
  if (!read) {
    // Not read: sent as it came (a one-shot body, once, through the copy that holds it).
    return { method, url, json: undefined, signal, send: () => globalThis.fetch(oneShot ? request : input, oneShot ? sendInit(init) : init) }
  }
  const bytes = new Uint8Array(await request.arrayBuffer())
  const json = parseJson(new TextDecoder().decode(bytes))
  const send = oneShot
    ? () => globalThis.fetch(new Request(request, { body: bytes }), sendInit(init))
    : () => globalThis.fetch(input, init)
  return { method, url, json, signal, send }
}

/** What of `init` still matters once the request is a `Request` of its own: the options Node's fetch adds. */
const sendInit = (init: RequestInit | undefined): RequestInit | undefined => {
  if (init === undefined) return undefined
  const { body: _body, duplex: _duplex, headers: _headers, method: _method, signal: _signal, ...rest } = init as NodeRequestInit
  return rest
}

/** The model a generation's body names, or `undefined` for a request that is not a generation. */
const generationModel = (request: Outgoing): string | undefined => {
  if (request.method !== "POST" || NOT_GENERATIONS.test(request.url.pathname)) return undefined
  const { json } = request
  return typeof json === "object" && json !== null && "model" in json && typeof json.model === "string" && json.model !== ""
    ? json.model
    : undefined
}

export const makeFetch = ({ bucketOf, submitReading, withCore }: FetchDeps): typeof globalThis.fetch => (input, init) =>
  withCore(async (ready) => {
    const provider = ready.limiter.provider
    if (provider === undefined) throw new TypeError("limiter.fetch needs a provider in the configuration")
    const request = await outgoing(input, init)
    const model = generationModel(request)
    if (model === undefined) return request.send()
    const usage = provider.chargeOf(request.json, model)
    if (Either.isLeft(usage)) throw usage.left
    const bucket = bucketOf?.(model) ?? provider.family(model)
    const entry = ready.limiter.entry(bucket)
    if (Either.isLeft(entry)) throw entry.left
    return submitReading(
      ready,
      { bucket, usage: limitedTo(entry.right.bucket, usage.right) },
      request.send,
      request.signal ? { signal: request.signal } : undefined,
      Provider.streamUsageOf(provider, model)
    )
  })
