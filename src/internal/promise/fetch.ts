/**
 * `limiter.fetch`: a `fetch` for SDK clients. A generation (`provider/generation.ts`: a POST to a generating
 * endpoint whose JSON body names a model) is charged by the configured provider from its body and run, through
 * the Promise adapter's reading path (the flow, with its retries and circuit breaker), under the bucket of its
 * model's family. Anything else passes straight through, uncounted: a request to another endpoint is sent as it
 * came, unread.
 *
 * The body of a generation is read whatever its type (string, bytes, `Blob`, `URLSearchParams`, a
 * `ReadableStream`, a `Request`); a one-shot body (a stream, a `Request`'s) is buffered, and every attempt sends
 * the buffered bytes.
 *
 * @internal
 */
import { Either } from "effect"
import type { PromiseSubmitOptions } from "../../Promise.js"
import * as Provider from "../../Provider.js"
import type * as Quota from "../../Quota.js"
import type { Meta } from "../../RateLimited.js"
import { charge, type GenerationBody, generationBody, isGeneration } from "../provider/generation.js"
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

/** Bodies never read: uploads, which are not JSON and may be large. */
const UNREAD_TYPES = /^(?:multipart\/|application\/octet-stream)/i

/** RequestInit as Node's fetch takes it: a streamed body needs `duplex: "half"`. */
type NodeRequestInit = RequestInit & { duplex?: "half" }

/** A generation request as `fetch` received it, ready to be charged and sent (again, for a retry). */
interface Outgoing {
  /** Its JSON body and model, when the body was read and is one. */
  readonly body: Either.Either<GenerationBody, string>
  readonly signal: AbortSignal | undefined
  readonly send: () => Promise<Response>
}

const unread = Either.left("the request body was not read")

const outgoing = async (input: string | URL | Request, init: RequestInit | undefined): Promise<Outgoing> => {
  const streamed = init?.body instanceof ReadableStream
  const withDuplex: NodeRequestInit | undefined = init !== undefined && streamed && !("duplex" in init) ? { ...init, duplex: "half" } : init
  // The Request constructor reads every body type and url fetch does, and throws fetch's TypeError for a bad one.
  const request = new Request(input, withDuplex)
  const signal = init?.signal ?? (input instanceof Request ? input.signal : undefined)
  const read = request.body !== null && !UNREAD_TYPES.test(request.headers.get("content-type") ?? "")
  const oneShot = streamed || input instanceof Request
  if (!read) {
    // Not read: sent as it came (a one-shot body, once, through the copy that holds it).
    return { body: unread, signal, send: () => globalThis.fetch(oneShot ? request : input, oneShot ? sendInit(init) : init) }
  }
  const bytes = new Uint8Array(await request.arrayBuffer())
  const body = generationBody(new TextDecoder().decode(bytes))
  const send = oneShot
    ? () => globalThis.fetch(new Request(request, { body: bytes }), sendInit(init))
    : () => globalThis.fetch(input, init)
  return { body, signal, send }
}

/** What of `init` still matters once the request is a `Request` of its own: the options Node's fetch adds. */
const sendInit = (init: RequestInit | undefined): RequestInit | undefined => {
  if (init === undefined) return undefined
  const { body: _body, duplex: _duplex, headers: _headers, method: _method, signal: _signal, ...rest } = init as NodeRequestInit
  return rest
}

/** The method and URL of a request as `fetch` would send it, read without touching its body. */
const target = (input: string | URL | Request, init: RequestInit | undefined): readonly [string, string] => [
  (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase(),
  input instanceof Request ? input.url : String(input)
]

export const makeFetch = ({ bucketOf, submitReading, withCore }: FetchDeps): typeof globalThis.fetch => (input, init) =>
  withCore(async (ready) => {
    const provider = ready.limiter.provider
    if (provider === undefined) throw new TypeError("limiter.fetch needs a provider in the configuration")
    const [method, url] = target(input, init)
    if (!isGeneration(method, url)) return globalThis.fetch(input, init)
    const request = await outgoing(input, init)
    // A body that is not JSON or names no model is not a generation's: sent uncounted.
    if (Either.isLeft(request.body)) return request.send()
    const charged = charge(ready.limiter, provider, request.body.right, bucketOf)
    if (Either.isLeft(charged)) throw charged.left
    const { meta, model } = charged.right
    return submitReading(ready, meta, request.send, request.signal ? { signal: request.signal } : undefined, Provider.streamUsageOf(provider, model))
  })
