/**
 * An HTTP server that stands in for a provider and counts what it is sent, on one clock, whatever process sends
 * it: `GET /<bucket>?ms=100&who=w0&id=7` holds the request for `ms` milliseconds, then answers 200 with
 * `w0:<bucket>:7`. For each bucket it keeps every arrival with the number of requests in flight at that moment
 * (a request is in flight from its arrival until its answer is written or its socket closes), which tells how
 * many calls a concurrency quota let run at once and how many a rate quota let in per window.
 *
 * A call's work starts after its admission and its answer is written before the caller settles, so what the
 * server sees in flight is never more than what the limiter has admitted and not yet settled.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

/** One request as it arrived. */
export interface Arrival {
  readonly at: number
  readonly who: string
  readonly id: string
  /** Requests of the bucket in flight once this one arrived, this one included. */
  readonly inFlight: number
}

/** The busiest moment: when the most requests of a bucket were in flight, and whose they were. */
export interface Peak {
  readonly count: number
  readonly at: number
  readonly who: ReadonlyArray<string>
}

/**
 * The server.
 *
 * @example
 * ```ts
 * const audit = await AuditServer.start()
 * await fetch(`${audit.url}/slots?ms=50&who=w0&id=1`)
 * audit.peak("slots").count // 1
 * await audit.close()
 * ```
 */
export class AuditServer {
  private readonly arrivals = new Map<string, Array<Arrival>>()
  private readonly running = new Map<string, Set<string>>()
  /** Requests still held, to answer at once when the server closes. */
  private readonly held = new Set<ServerResponse>()

  private constructor(private readonly server: ReturnType<typeof createServer>, readonly url: string) {}

  static async start(): Promise<AuditServer> {
    let audit: AuditServer | undefined
    const server = createServer((request, response) => audit?.handle(request, response))
    // Keep-alive connections from many callers; the default header timeout is far longer than any test.
    server.keepAliveTimeout = 60_000
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
    const { port } = server.address() as AddressInfo
    audit = new AuditServer(server, `http://127.0.0.1:${port}`)
    return audit
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const url = new URL(request.url ?? "/", "http://audit")
    const bucket = url.pathname.slice(1)
    const who = url.searchParams.get("who") ?? "?"
    const id = url.searchParams.get("id") ?? "?"
    const ms = Number(url.searchParams.get("ms") ?? 0)
    const key = `${who}#${id}#${Math.random()}`
    let running = this.running.get(bucket)
    if (running === undefined) this.running.set(bucket, (running = new Set()))
    running.add(key)
    const arrivals = this.arrivals.get(bucket) ?? []
    this.arrivals.set(bucket, arrivals)
    arrivals.push({ at: Date.now(), who, id, inFlight: running.size })
    const set = running
    const ended = () => {
      set.delete(key)
      this.held.delete(response)
      clearTimeout(timer)
    }
    // Whichever comes first: the answer is written, or the caller went away (a killed process).
    response.once("finish", ended)
    response.once("close", ended)
    this.held.add(response)
    const timer = setTimeout(() => {
      response.writeHead(200, { "content-type": "text/plain" })
      response.end(`${who}:${bucket}:${id}`)
    }, ms)
  }

  /** Every arrival of a bucket, in order. */
  arrivalsOf(bucket: string): ReadonlyArray<Arrival> {
    return this.arrivals.get(bucket) ?? []
  }

  /** Requests of a bucket in flight now. */
  inFlight(bucket: string): number {
    return this.running.get(bucket)?.size ?? 0
  }

  /** The most requests of a bucket in flight at once, among arrivals in [from, to]. */
  peak(bucket: string, from = -Infinity, to = Infinity): Peak {
    let best: Arrival | undefined
    for (const arrival of this.arrivalsOf(bucket)) {
      if (arrival.at < from || arrival.at > to) continue
      if (best === undefined || arrival.inFlight > best.inFlight) best = arrival
    }
    if (best === undefined) return { count: 0, at: Number.NaN, who: [] }
    return { count: best.inFlight, at: best.at, who: [`${best.who}#${best.id}`] }
  }

  /**
   * The most arrivals of a bucket within any `windowMs` (arrivals less than `windowMs` apart share a window,
   * as a provider's sliding window counts them), and when that window started.
   */
  maxInWindow(bucket: string, windowMs: number): { readonly count: number; readonly from: number } {
    const times = this.arrivalsOf(bucket).map((a) => a.at)
    let best = { count: 0, from: Number.NaN }
    let first = 0
    for (let last = 0; last < times.length; last++) {
      while (times[last]! - times[first]! >= windowMs) first++
      if (last - first + 1 > best.count) best = { count: last - first + 1, from: times[first]! }
    }
    return best
  }

  /** Forgets every arrival (requests in flight stay counted). */
  reset(): void {
    this.arrivals.clear()
  }

  async close(): Promise<void> {
    for (const response of [...this.held]) response.destroy()
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }
}
